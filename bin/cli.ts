/**
 * The CLI in one module: oclif's `execute` and every command, listed explicitly
 * (package.json `oclif.commands` strategy "explicit"; scripts/manifest.js fails the build
 * when this list and the files in bin/commands/ disagree). The build bundles this file with
 * its imports into dist/bin/cli.bundle.js (scripts/bundle.js), so that a start reads one
 * file instead of a few hundred: a cron job starts from a cold page cache.
 */
export { execute } from '@oclif/core/execute';
import type { Config } from '@oclif/core/config';
import { printUsageError, unknownCommand } from './usage';
import Backup from './commands/backup';
import BackupsList from './commands/backups/list';
import BackupsProtect from './commands/backups/protect';
import ConfigShow from './commands/config/show';
import ConfigValidate from './commands/config/validate';
import DaemonCommand from './commands/daemon';
import HelpCommand from './commands/help';
import History from './commands/history';
import Install from './commands/install';
import Monitor from './commands/monitor';
import MonitoringMaintenance from './commands/monitoring/maintenance';
import NotificationsList from './commands/notifications/list';
import NotifyTest from './commands/notify/test';
import PluginsList from './commands/plugins/list';
import Restore from './commands/restore';
import Rollback from './commands/rollback';
import StateRebuild from './commands/state/rebuild';
import Status from './commands/status';
import Uninstall from './commands/uninstall';
import Update from './commands/update';

export const COMMANDS = {
  backup: Backup,
  'backups:list': BackupsList,
  'backups:protect': BackupsProtect,
  'config:show': ConfigShow,
  'config:validate': ConfigValidate,
  daemon: DaemonCommand,
  help: HelpCommand,
  history: History,
  install: Install,
  monitor: Monitor,
  'monitoring:maintenance': MonitoringMaintenance,
  'notifications:list': NotificationsList,
  'notify:test': NotifyTest,
  'plugins:list': PluginsList,
  restore: Restore,
  rollback: Rollback,
  'state:rebuild': StateRebuild,
  status: Status,
  uninstall: Uninstall,
  update: Update,
};

/**
 * oclif's command_not_found hook (package.json `oclif.hooks`): a misspelled command gets the
 * tool's own usage error, with the nearest command, and exit code 2.
 */
export async function commandNotFound(opts: { id: string; argv?: string[]; config: Config }): Promise<true> {
  const words = [...opts.id.split(':'), ...(opts.argv ?? []).filter((a) => !a.startsWith('-'))];
  printUsageError(unknownCommand(words, opts.config.commandIDs, opts.config.bin), (opts.argv ?? []).includes('--json'));
  process.exitCode = 2;
  return Promise.resolve(true);
}
