import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { type ListedBackup, listBackups } from '../../../core/queries';
import { BaseCommand } from '../../base';
import { formatAge, formatBytes, localTime, table } from '../../render';

export default class BackupsList extends BaseCommand<typeof BackupsList> {
  static override summary = 'List the backup archives recorded in state, newest first.';
  static override description =
    'Shows each archive with its destination, size, age, verification result and whether the file is still present. Guest backups made by the hypervisor (vzdump) have the destination pve:<storage> and a volid as location.';
  static override examples = [
    '<%= config.bin %> backups list',
    '<%= config.bin %> backups list nextcloud --json',
    '<%= config.bin %> backups list --all',
  ];
  static override args = { service: Args.string({ description: 'only this service' }) };
  static override flags = {
    all: Flags.boolean({ summary: 'Include archives that retention deleted.' }),
    destination: Flags.string({ summary: 'Only this destination (primary, or a name from backup.destinations).' }),
  };

  async run(): Promise<ListedBackup[]> {
    const { args, flags } = await this.parse(BackupsList);
    const app = await this.openApp('ro', { plugins: false, secrets: false });
    if (args.service && !app.loaded.config.services.some((s) => s.name === args.service)) {
      app.logger.warn(`'${args.service}' is not a service in the current config; showing what state recorded for it`);
    }
    const list = listBackups(app.state, { service: args.service, destination: flags.destination, includeDeleted: flags.all });
    if (!list.length) this.out(args.service ? `no backups recorded for ${args.service}` : 'no backups recorded yet');
    else {
      this.out(
        table(
          ['ID', 'SERVICE', 'DESTINATION', 'CREATED', 'AGE', 'SIZE', 'VERIFIED', 'STATE', 'LOCATION'],
          list.map((a) => [
            a.id,
            a.service,
            a.destination,
            localTime(a.createdAt),
            formatAge(a.createdAt),
            formatBytes(a.size),
            (a.verifyStatus === 'failed' ? 'FAILED' : (a.verifyStatus ?? 'no')) + (a.warning ? ', WARNING' : ''),
            a.deletedAt ? 'pruned' : a.present ? (a.protected ? 'protected' : 'present') : 'MISSING',
            a.location,
          ]),
        ),
      );
    }
    return list;
  }
}
