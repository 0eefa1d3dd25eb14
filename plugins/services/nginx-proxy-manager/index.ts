/**
 * Built-in service plugin `nginx-proxy-manager`: Nginx Proxy Manager's data folder (its
 * nginx config, certificates' metadata and, by default, its SQLite database), the
 * letsencrypt folder and, when it runs on MariaDB/MySQL, the database's folder.
 *
 * Its own logic: the SQLite database is copied consistently first (SQLite's online backup,
 * into this plugin's data folder, which is archived with the rest) so that a write during the
 * backup cannot leave a torn copy; logs are left out.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupPath, PluginContext, ServiceConfig, ServicePlugin, ServicePluginDefinition } from '../../../core/plugins/contract';

interface NpmService extends ServiceConfig {
  data_dir: string;
  letsencrypt_dir?: string;
  database_dir?: string;
}

const plugin: ServicePluginDefinition = {
  name: 'nginx-proxy-manager',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.3.0',
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
    return {
      backupSources(service, op) {
        const s = service as NpmService;
        const paths: BackupPath[] = [{ path: s.data_dir, required: true }];
        if (s.letsencrypt_dir) paths.push({ path: s.letsencrypt_dir, required: false });
        if (s.database_dir) paths.push({ path: s.database_dir, required: true });
        if (fs.existsSync(sqlite(s)) || op.dryRun) paths.push({ path: copyDir(s), required: false });
        else if (!s.database_dir && fs.existsSync(s.data_dir))
          op.logger.warn(`${sqlite(s)} is missing and no database_dir is set: NPM's settings live in one of them`);
        return {
          paths,
          // the live database is archived as its consistent copy; logs are not worth keeping
          exclude: [
            path.join(s.data_dir, 'database.sqlite'),
            path.join(s.data_dir, 'database.sqlite-journal'),
            path.join(s.data_dir, 'logs'),
          ],
        };
      },
      async beforeBackup(service, op) {
        const s = service as NpmService;
        if (!fs.existsSync(sqlite(s))) return;
        fs.mkdirSync(copyDir(s), { recursive: true, mode: 0o700 });
        const target = path.join(copyDir(s), 'database.sqlite');
        const { default: Database } = (await import('better-sqlite3')) as unknown as {
          default: new (f: string, o?: object) => { backup(t: string): Promise<unknown>; close(): void };
        };
        const db = new Database(sqlite(s), { readonly: true, fileMustExist: true });
        try {
          await db.backup(`${target}.partial`);
          fs.renameSync(`${target}.partial`, target);
          op.logger.info(`copied ${sqlite(s)} consistently to ${target}`);
        } finally {
          db.close();
        }
      },
    };
  },
};

export default plugin;
