import * as Flags from '@oclif/core/flags';
import { type HistoryEntry, listHistory, runDurationMs } from '../../core/queries';
import { BaseCommand } from '../base';
import { formatDuration, localTime, table } from '../render';

const UPDATE_STATUS: Record<string, string> = { rolled_back: 'rolled back', rollback_failed: 'ROLLBACK FAILED' };

export default class History extends BaseCommand<typeof History> {
  static override summary = 'Show recorded runs, newest first, with the services each one covered.';
  static override examples = ['<%= config.bin %> history', '<%= config.bin %> history --kind backup --limit 5 --json'];
  static override flags = {
    kind: Flags.string({ summary: 'Only runs of this kind (backup, …).' }),
    limit: Flags.integer({ min: 1, default: 20, summary: 'How many runs.' }),
  };

  async run(): Promise<HistoryEntry[]> {
    const { flags } = await this.parse(History);
    const app = await this.openApp('ro', { plugins: false, secrets: false });
    const entries = listHistory(app.state, { kind: flags.kind, limit: flags.limit });
    if (!entries.length) this.out('no runs recorded yet');
    else {
      const rows: string[][] = [];
      for (const e of entries) {
        rows.push([
          String(e.id),
          localTime(e.startedAt),
          e.kind,
          e.target,
          e.status + (e.dryRun ? ' (dry run)' : ''),
          formatDuration(e.durationMs),
        ]);
        for (const c of e.children) {
          const s = c.summary as { error?: string; warned?: boolean; status?: string } | null;
          // an update's own outcome says more than the run's status (failed) when it was rolled back;
          // a success the backup tool ended with warnings about (vzdump's 'WARNINGS: n') says so
          const status =
            c.kind === 'update' && s?.status
              ? (UPDATE_STATUS[s.status] ?? c.status)
              : c.status === 'success' && s?.warned
                ? 'warning'
                : c.status;
          rows.push(['', '', '', `└ ${c.target}`, status + (s?.error ? `: ${s.error}` : ''), formatDuration(runDurationMs(c))]);
        }
      }
      this.out(table(['RUN', 'STARTED', 'KIND', 'TARGET', 'STATUS', 'DURATION'], rows));
    }
    return entries;
  }
}
