/**
 * Built-in service plugin `caddy`: the Caddy web server.
 *
 * - Backup: the folder of the Caddyfile (with what it imports) and Caddy's data folder (its
 *   certificates and keys); before the archive, `caddy validate` checks the config when caddy
 *   is installed here (a config that does not validate is archived all the same, with a warning).
 * - Safe update: snapshot = an archive of the config and data folders; update = the service's
 *   `update.command` (for example upgrading the caddy package), then `caddy validate`, then a
 *   reload; rollback = the folders restored and caddy reloaded.
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

/** Folders a rollback never empties. */
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
        if (problem) op.logger.warn(`${s.caddyfile} does not validate (archived all the same): ${problem}`);
      },
      updater: {
        async describeUpdate(service) {
          const s = service as CaddyService;
          const cmds = (s.update?.command ?? []).map((c) => (Array.isArray(c) ? c.join(' ') : c));
          return {
            snapshot: `archive ${configDir(s)} and ${s.data_dir}`,
            update: `${cmds.length ? `${cmds.join('; ')}; then ` : ''}${s.caddy} validate --config ${s.caddyfile}; then ${(s.reload_command ?? [s.caddy, 'reload', '--config', s.caddyfile]).join(' ')}`,
            rollback: `restore ${configDir(s)} and ${s.data_dir} from the archive, reload`,
          };
        },
        async snapshot(service, name, op) {
          const s = service as CaddyService;
          fs.mkdirSync(snapshotDir, { recursive: true, mode: 0o700 });
          const sources = [configDir(s), s.data_dir].filter((p) => fs.existsSync(p));
          const a = await ctx.archive.create({ sources, dest: path.join(snapshotDir, `${s.name}_${name}.tar.zst`), signal: op.signal });
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
          const v = await ctx.archive.verify(d.archive, { size: d.size, sha256: d.sha256 }, op.signal);
          if (!v.ok) throw new Error(`the snapshot archive ${d.archive} is damaged: ${v.error}`);
          // exactly as they were (a system folder such as /etc is never emptied: its files are only written back)
          for (const dir of d.sources) {
            if (SYSTEM_ROOTS.has(path.resolve(dir)) || !fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) continue;
            for (const n of fs.readdirSync(dir)) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
          }
          await ctx.archive.extract(d.archive, op.signal);
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
            await ctx.http({ url: `${s.admin_url.replace(/\/$/, '')}/config/`, signal: op.signal, timeoutMs: 5000 });
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
