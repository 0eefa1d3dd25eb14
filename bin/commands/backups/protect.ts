import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { type ArtifactRecord, protectBackup } from '../../../core/queries';
import { BaseCommand } from '../../base';

export default class BackupsProtect extends BaseCommand<typeof BackupsProtect> {
  protected static override writesLogFile = true;
  static override summary = 'Protect a backup archive from retention (or lift the protection with --remove).';
  static override description =
    "Retention never deletes a protected archive, and a protected archive does not count against any keep-* limit. IDs are shown by 'backups list --json'.";
  static override examples = ['<%= config.bin %> backups protect 42', '<%= config.bin %> backups protect 42 --remove'];
  static override args = { id: Args.integer({ required: true, description: 'the archive id (from backups list --json)' }) };
  static override flags = { remove: Flags.boolean({ summary: 'Lift the protection instead.' }) };

  async run(): Promise<ArtifactRecord> {
    const { args, flags } = await this.parse(BackupsProtect);
    const app = await this.openApp('rw', { plugins: false, secrets: false });
    const updated = protectBackup(app.state, args.id, !flags.remove);
    this.out(`${updated.location}: ${updated.protected ? 'protected' : 'no longer protected'}`);
    return updated;
  }
}
