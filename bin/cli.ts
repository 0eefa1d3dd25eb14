/**
 * The CLI in one module: oclif's `execute` and every command, listed explicitly
 * (package.json `oclif.commands` strategy "explicit"; scripts/manifest.js fails the build
 * when this list and the files in bin/commands/ disagree). The build bundles this file with
 * its imports into dist/bin/cli.bundle.js (scripts/bundle.js), so that a start reads one
 * file instead of a few hundred: a cron job starts from a cold page cache.
 */
export { execute } from '@oclif/core/execute';
import Backup from './commands/backup';
import BackupsList from './commands/backups/list';
import BackupsProtect from './commands/backups/protect';
import ConfigShow from './commands/config/show';
import ConfigValidate from './commands/config/validate';
import History from './commands/history';
import NotificationsList from './commands/notifications/list';
import NotifyTest from './commands/notify/test';
import PluginsList from './commands/plugins/list';
import Rollback from './commands/rollback';
import Status from './commands/status';
import Update from './commands/update';

export const COMMANDS = {
  backup: Backup,
  'backups:list': BackupsList,
  'backups:protect': BackupsProtect,
  'config:show': ConfigShow,
  'config:validate': ConfigValidate,
  history: History,
  'notifications:list': NotificationsList,
  'notify:test': NotifyTest,
  'plugins:list': PluginsList,
  rollback: Rollback,
  status: Status,
  update: Update,
};
