// Example service plugin (plain CommonJS, no build step): runs a dump command before the
// archive is made, so that a database is backed up as a consistent dump file, then
// archives the dump folder plus any other paths. Copy it into
// /etc/homelab-autopilot/plugins.d/ (owned by root, not writable by group or others).
//
// services:
//   - name: wiki-db
//     type: dump
//     dump_dir: /var/backups/wiki-db            # archived; the dump command writes here
//     dump_command: [pg_dump, --file=/var/backups/wiki-db/wiki.sql, wiki]
//     password_file: /etc/homelab-autopilot/secrets/wiki-db   # given to the command as $DUMP_PASSWORD
//     paths: [/etc/wiki]                        # optional, archived too

/** @type {import('homelab-autopilot/dist/core/plugins/contract').ServicePluginDefinition} */
module.exports = {
  name: 'dump',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  description: 'Runs a dump command (pg_dump, mysqldump, sqlite3 .backup …) before archiving its output folder',
  serviceSchema: {
    properties: {
      dump_dir: { type: 'string', minLength: 1, 'x-path': true, description: 'the folder the dump command writes into (archived)' },
      dump_command: {
        type: 'array',
        minItems: 1,
        items: { type: 'string' },
        description: 'the command and its arguments, run without a shell',
      },
      password: { type: 'string', 'x-secret': true, description: 'passed to the command as $DUMP_PASSWORD' },
      paths: { type: 'array', default: [], items: { type: 'string', 'x-path': true } },
    },
    required: ['dump_dir', 'dump_command'],
  },
  optionsSchema: {
    properties: { default_timeout: { type: 'integer', minimum: 1, default: 3600, description: 'seconds a dump may take' } },
    additionalProperties: false,
  },
  create(ctx) {
    const fs = require('node:fs');
    return {
      backupSources(service) {
        return {
          paths: [{ path: service.dump_dir, required: true }, ...service.paths.map((p) => ({ path: p, required: true }))],
        };
      },
      async beforeBackup(service, op) {
        fs.mkdirSync(service.dump_dir, { recursive: true, mode: 0o700 });
        const [cmd, ...args] = service.dump_command;
        op.logger.info(`dumping ${service.name} with ${cmd}`);
        const res = await ctx.exec(cmd, args, {
          env: { DUMP_PASSWORD: service.password, DUMP_DIR: service.dump_dir },
          timeoutMs: ctx.options.default_timeout * 1000,
          signal: op.signal,
        });
        if (res.code !== 0) throw new Error(`${cmd} exited with ${res.code}: ${res.stderr.trim().split('\n').pop() || 'no message'}`);
        ctx.store.set(`last_dump.${service.name}`, new Date().toISOString());
      },
    };
  },
};
