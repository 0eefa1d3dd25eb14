import * as Flags from '@oclif/core/flags';
import type { RebuildReport } from '../../../core/backup/rebuild';
import { BaseCommand } from '../../base';

export default class StateRebuild extends BaseCommand<typeof StateRebuild> {
  protected static override writesLogFile = true;
  static override summary = 'Rebuild the records of backup archives from the files on disk (after the state database was lost or damaged).';
  static override description =
    'Keeps the old state database aside as state.db.damaged-<time>, starts a new one, and records every archive of each configured service found in backup.root and every destination, with its size, sha256 and a full verification. Runs, notifications and protections are not on disk: they stay in the old file. A sound database is rebuilt only with --force.';
  static override examples = ['<%= config.bin %> state rebuild', '<%= config.bin %> state rebuild --force'];
  static override flags = {
    force: Flags.boolean({ summary: 'Rebuild even though the state database is sound (it is kept aside too).' }),
  };

  async run(): Promise<RebuildReport> {
    const { flags } = await this.parse(StateRebuild);
    const app = await this.openApp('none', { plugins: false, secrets: false });
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- better-sqlite3 and the archive code load only when used
    const { rebuildState } = require('../../../core/backup/rebuild') as typeof import('../../../core/backup/rebuild');
    const report = await rebuildState(app.loaded.config, { force: flags.force, signal: this.controller.signal, logger: app.logger });
    const failed = report.archives.filter((a) => a.verifyStatus === 'failed');
    this.out(`rebuilt ${report.stateFile} (${report.reason})`);
    if (report.keptAs) this.out(`the old database is kept as ${report.keptAs}`);
    this.out(
      `recorded ${report.archives.length} archive${report.archives.length === 1 ? '' : 's'}: ${report.archives.length - failed.length} verified, ${failed.length} failed verification`,
    );
    for (const a of failed) this.out(`  FAILED ${a.location}: ${a.verifyDetail} (kept, never pruned)`);
    return report;
  }
}
