/**
 * Built-in service plugin `caddy`: the Caddy web server.
 *
 * - Backup: the folder of the Caddyfile (with what it imports) and Caddy's data folder (its
 *   certificates and keys); before the archive, `caddy validate` checks the config when caddy
 *   is installed here (a config that does not validate is archived all the same, with a warning).
 * - Safe update: snapshot = an archive of the config and data folders (never our own state
 *   folder, wherever it sits); update = the service's `update.command` (for example upgrading
 *   the caddy package), then `caddy validate`, then a reload; rollback = the snapshot verified,
 *   every file it recorded written back over what is there (nothing is deleted: the folders may
 *   hold files that are not caddy's), and caddy reloaded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  OperationContext,
  PluginContext,
  ServiceConfig,
  ServicePlugin,
  ServicePluginDefinition,
} from '../../../core/plugins/contract';

/** Folders that are never snapshotted whole (a Caddyfile directly inside one is taken alone). */
const SYSTEM_ROOTS = new Set([
  '/',
  '/bin',
  '/boot',
  '/etc',
  '/home',
  '/lib',
  '/lib64',
  '/opt',
  '/root',
  '/srv',
  '/usr',
  '/var',
  '/var/lib',
  '/tmp',
]);

interface CaddyService extends ServiceConfig {
  caddyfile: string;
  data_dir: string;
  caddy: string;
  adapter: string;
  reload_command?: string[];
  systemd_unit?: string;
  admin_url: string;
  update?: { command?: (string | string[])[] };
}

const plugin: ServicePluginDefinition = {
  name: 'caddy',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.3.0',
  description: 'Caddy: backs up the Caddyfile and its data, validates with `caddy validate`, reloads; safe updates',
  serviceSchema: {
    properties: {
      caddyfile: {
        type: 'string',
        minLength: 1,
        'x-path': true,
        default: '/etc/caddy/Caddyfile',
        description: 'the Caddyfile; its whole folder is backed up',
      },
      data_dir: {
        type: 'string',
        minLength: 1,
        'x-path': true,
        default: '/var/lib/caddy',
        description: "Caddy's data (certificates, keys): $XDG_DATA_HOME/caddy",
      },
      caddy: { type: 'string', minLength: 1, default: 'caddy', description: 'the caddy binary' },
      adapter: { type: 'string', pattern: '^[a-z0-9]+$', default: 'caddyfile' },
      reload_command: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        minItems: 1,
        description: 'how to reload (default: caddy reload --config <caddyfile> --adapter <adapter>)',
      },
      systemd_unit: {
        type: 'string',
        pattern: '^[A-Za-z0-9@._][A-Za-z0-9@._-]*$',
        description: 'the unit whose state the `running` health check asks (systemctl is-active)',
      },
      admin_url: {
        type: 'string',
        pattern: '^https?://',
        default: 'http://localhost:2019',
        description: "caddy's admin API: the `running` health check asks it when no systemd_unit is set",
      },
    },
  },
  create(ctx: PluginContext): ServicePlugin {
    // the Caddyfile's folder (with what it imports), or the Caddyfile alone when it sits in a system folder such as /etc
    const configDir = (s: CaddyService): string =>
      SYSTEM_ROOTS.has(path.dirname(path.resolve(s.caddyfile))) ? s.caddyfile : path.dirname(s.caddyfile);
    const has = async (s: CaddyService, op: OperationContext): Promise<boolean> =>
      (await ctx.exec(s.caddy, ['version'], { signal: op.signal, timeoutMs: 20_000 }).catch(() => null))?.code === 0;
    const validate = async (s: CaddyService, op: OperationContext): Promise<string | null> => {
      const r = await ctx.exec(s.caddy, ['validate', '--config', s.caddyfile, '--adapter', s.adapter], {
        signal: op.signal,
        timeoutMs: 60_000,
      });
      return r.code === 0 ? null : `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-3).join(' | ') || `exit ${r.code}`;
    };
    const reload = async (s: CaddyService, op: OperationContext): Promise<void> => {
      const argv = s.reload_command ?? [s.caddy, 'reload', '--config', s.caddyfile, '--adapter', s.adapter];
      const r = await ctx.exec(argv[0], argv.slice(1), { signal: op.signal, timeoutMs: 60_000 });
      if (r.code !== 0)
        throw new Error(`${argv.join(' ')} exited ${r.code}: ${`${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-2).join(' | ')}`);
    };
    const snapshotDir = path.join(ctx.dataDir, 'snapshots');
    // <state_dir>/plugins/caddy: the state folder is two levels up
    const stateDir = path.resolve(ctx.dataDir, '..', '..');
    return {
      backupSources(service) {
        const s = service as CaddyService;
        return {
          paths: [
            { path: configDir(s), required: true },
            { path: s.data_dir, required: false },
          ],
        };
      },
      async beforeBackup(service, op) {
        const s = service as CaddyService;
        if (!(await has(s, op))) {
          op.logger.info(`${s.caddy} is not installed here: the Caddyfile is archived without validation`);
          return;
        }
        const problem = await validate(s, op);
        if (!problem) return;
        // a warning of the result (its --json and its alert), not only a log line
        const message = `${s.caddyfile} does not validate (archived all the same): ${problem}`;
        if (op.warn) op.warn(message);
        else op.logger.warn(message);
      },
      updater: {
        async describeUpdate(service) {
          const s = service as CaddyService;
          const cmds = (s.update?.command ?? []).map((c) => (Array.isArray(c) ? c.join(' ') : c));
          return {
            snapshot: `archive ${configDir(s)} and ${s.data_dir}`,
            update: `${cmds.length ? `${cmds.join('; ')}; then ` : ''}${s.caddy} validate --config ${s.caddyfile}; then ${(s.reload_command ?? [s.caddy, 'reload', '--config', s.caddyfile]).join(' ')}`,
            rollback: `write back the files of ${configDir(s)} and ${s.data_dir} from the archive (deleting nothing), reload`,
          };
        },
        async snapshot(service, name, op) {
          const s = service as CaddyService;
          fs.mkdirSync(snapshotDir, { recursive: true, mode: 0o700 });
          const inside = (p: string, dir: string): boolean => p !== dir && p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
          const wanted = [configDir(s), s.data_dir].map((p) => path.resolve(p)).filter((p) => fs.existsSync(p));
          // a data folder inside the Caddyfile's folder is archived once, with it
          const sources = wanted.filter((p, i) => wanted.indexOf(p) === i && !wanted.some((o) => inside(p, o)));
          // our own state (the database, this snapshot) may sit inside those folders: it is never part of a snapshot
          const exclude = [stateDir];
          const dest = path.join(snapshotDir, `${s.name}_${name}.tar.zst`);
          const a = await ctx.archive.create({ sources, exclude, dest, signal: op.signal });
          return {
            id: name,
            time: new Date().toISOString(),
            description: sources.join(', '),
            data: { archive: a.path, size: a.size, sha256: a.sha256, sources },
          };
        },
        async update(service, op) {
          const s = service as CaddyService;
          for (const c of s.update?.command ?? []) {
            // a string is split into words, quotes kept together (use the list form for anything subtler)
            const argv = Array.isArray(c) ? c : (c.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^(["'])(.*)\1$/, '$2'));
            const r = await ctx.exec(argv[0], argv.slice(1), {
              signal: op.signal,
              timeoutMs: op.deadline ? Math.max(1000, op.deadline - Date.now()) : 1800_000,
            });
            if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
          }
          if (await has(s, op)) {
            const problem = await validate(s, op);
            if (problem) throw new Error(`caddy validate: ${problem}`);
          }
          await reload(s, op);
          return { changed: true, summary: `${(s.update?.command ?? []).length ? 'updated, ' : ''}validated and reloaded` };
        },
        async rollback(service, snap, op) {
          const s = service as CaddyService;
          const d = snap.data as { archive: string; size: number; sha256: string; sources: string[] };
          // verified before anything is touched: a missing or damaged snapshot changes nothing
          if (typeof d?.archive !== 'string' || !fs.existsSync(d.archive))
            throw new Error(`the snapshot archive ${String(d?.archive)} is missing: nothing was restored`);
          const v = await ctx.archive.verify(d.archive, { size: d.size, sha256: d.sha256 }, op.signal);
          if (!v.ok) throw new Error(`the snapshot archive ${d.archive} is damaged (${v.error}): nothing was restored`);
          // only what the snapshot recorded is written back, over what is there; no folder is emptied (the
          // Caddyfile's folder may hold other files, our own state among them), so files the update added stay
          await ctx.archive.extract(d.archive, op.signal);
          op.logger.info(`restored ${d.sources.join(' and ')} from ${d.archive} (${v.entries ?? 0} entries)`);
          await reload(s, op);
        },
        async deleteSnapshot(_s, snap) {
          const a = (snap.data as { archive?: string } | undefined)?.archive;
          if (a) fs.rmSync(a, { force: true });
        },
        async isRunning(service, op) {
          const s = service as CaddyService;
          if (s.systemd_unit)
            return (
              (await ctx.exec('systemctl', ['is-active', '--quiet', s.systemd_unit], { signal: op.signal, timeoutMs: 20_000 })).code === 0
            );
          // caddy's admin endpoint answers while it runs
          try {
            // read with GET: a POST with no body is a config change caddy refuses (400)
            await ctx.http({ url: `${s.admin_url.replace(/\/$/, '')}/config/`, method: 'GET', signal: op.signal, timeoutMs: 5000 });
            return true;
          } catch {
            return false;
          }
        },
      },
    };
  },
};

export default plugin;
