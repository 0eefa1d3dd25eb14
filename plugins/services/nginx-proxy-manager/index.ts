/**
 * Built-in service plugin `nginx-proxy-manager`: Nginx Proxy Manager's data folder (its
 * nginx config, certificates' metadata and, by default, its SQLite database), the
 * letsencrypt folder and, when it runs on MariaDB/MySQL, the database's folder.
 *
 * Its own logic: the SQLite database is copied consistently first (SQLite's online backup in
 * bounded steps, under one read transaction, stopped at the service's deadline; see ./copy.ts),
 * checked, and archived under the live file's own name, so that a restore puts it where NPM
 * reads it; the live file, its -wal/-shm/-journal and the logs are left out. A lock keeps a
 * second backup of the same service from copying at the same time; the copy (in this plugin's
 * data folder) is removed after the archive.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupPath, PluginContext, ServiceConfig, ServicePlugin, ServicePluginDefinition } from '../../../core/plugins/contract';
import { copySqlite, takeLock } from './copy';

interface NpmService extends ServiceConfig {
  data_dir: string;
  letsencrypt_dir?: string;
  database_dir?: string;
}

const plugin: ServicePluginDefinition = {
  name: 'nginx-proxy-manager',
  kind: 'service',
  version: '1.1.0',
  apiVersion: '^1.5.0',
  description: 'Nginx Proxy Manager: its data and database folders, with a consistent copy of its SQLite database',
  serviceSchema: {
    properties: {
      data_dir: {
        type: 'string',
        minLength: 1,
        'x-path': true,
        description: 'the folder mounted at /data in the container (holds database.sqlite, nginx/, …)',
      },
      letsencrypt_dir: { type: 'string', minLength: 1, 'x-path': true, description: 'the folder mounted at /etc/letsencrypt' },
      database_dir: {
        type: 'string',
        minLength: 1,
        'x-path': true,
        description: "MariaDB/MySQL's data folder, when NPM uses one instead of SQLite",
      },
    },
    required: ['data_dir'],
  },
  create(ctx: PluginContext): ServicePlugin {
    const copyDir = (s: NpmService): string => path.join(ctx.dataDir, s.name);
    const sqlite = (s: NpmService): string => path.join(s.data_dir, 'database.sqlite');
    const copyOf = (s: NpmService): string => path.join(copyDir(s), 'database.sqlite');
    // per service: the lock's release, and the copy while it runs (afterBackup waits for it to stop)
    const held = new Map<string, { release(): void; copying: Promise<unknown> }>();
    // only by the run that holds the lock (a refused run leaves the other's copy alone)
    const cleanUp = (s: NpmService): void => {
      if (!held.has(s.name)) return;
      fs.rmSync(copyOf(s), { force: true });
      held.get(s.name)?.release();
      held.delete(s.name);
    };
    return {
      backupSources(service, op) {
        const s = service as NpmService;
        const paths: BackupPath[] = [{ path: s.data_dir, required: true }];
        if (s.letsencrypt_dir) paths.push({ path: s.letsencrypt_dir, required: false });
        if (s.database_dir) paths.push({ path: s.database_dir, required: true });
        const live = sqlite(s);
        const hasSqlite = fs.existsSync(live);
        if (!hasSqlite && !s.database_dir && fs.existsSync(s.data_dir))
          op.logger.warn(`${live} is missing and no database_dir is set: NPM's settings live in one of them`);
        return {
          // the checked copy, archived as <data_dir>/database.sqlite: a restore puts it where NPM reads it
          paths: hasSqlite || op.dryRun ? [...paths, { path: copyOf(s), required: !op.dryRun }] : paths,
          storeAs: hasSqlite || op.dryRun ? [{ path: copyOf(s), as: live }] : [],
          // the live database (torn while written, and its -wal/-shm belong to the live file only); logs are not worth keeping
          exclude: [live, `${live}-journal`, `${live}-wal`, `${live}-shm`, path.join(s.data_dir, 'logs')],
        };
      },
      async beforeBackup(service, op) {
        const s = service as NpmService;
        const live = sqlite(s);
        if (!fs.existsSync(live)) return;
        fs.mkdirSync(copyDir(s), { recursive: true, mode: 0o700 });
        // one copy of this service at a time, also across processes (a run that outlived its deadline, say)
        const release = takeLock(path.join(copyDir(s), 'lock'), s.name);
        fs.rmSync(copyOf(s), { force: true });
        const copying = copySqlite(live, copyOf(s), op);
        held.set(s.name, { release, copying });
        try {
          const r = await copying;
          op.logger.info(`copied ${live} consistently (${r.pages} pages, ${r.bytes} bytes, integrity checked)`);
        } catch (e) {
          cleanUp(s);
          throw e;
        }
      },
      async afterBackup(service) {
        const s = service as NpmService;
        // a copy cut short by the deadline stops at its next step: wait for that before letting go of the lock
        await held.get(s.name)?.copying.catch(() => undefined);
        cleanUp(s);
      },
    };
  },
};

export default plugin;
