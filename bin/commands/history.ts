import * as Flags from '@oclif/core/flags';
import type { RunRecord } from '../../lib/state';
import { BaseCommand } from '../base';
import { formatDuration, localTime, table } from '../render';

export interface HistoryEntry extends RunRecord {
  durationMs: number | null;
  children: RunRecord[];
}

export default class History extends BaseCommand<typeof History> {
  static override summary = 'Show recorded runs, newest first, with the services each one covered.';
  static override examples = ['<%= config.bin %> history', '<%= config.bin %> history --kind backup --limit 5 --json'];
  static override flags = {
    kind: Flags.string({ summary: 'Only runs of this kind (backup, …).' }),
    limit: Flags.integer({ min: 1, default: 20, summary: 'How many runs.' }),
  };

  async run(): Promise<HistoryEntry[]> {
    const { flags } = await this.parse(History);
    const app = await this.openApp('ro');
    const runs = app.state ? app.state.listRuns({ kind: flags.kind, limit: flags.limit, parentId: null }) : [];
    const entries = runs.map((r) => ({
      ...r,
      durationMs: r.endedAt ? new Date(r.endedAt).getTime() - new Date(r.startedAt).getTime() : null,
      children: app.state ? app.state.listRuns({ parentId: r.id, limit: 1000 }).reverse() : [],
    }));
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
          const s = c.summary as { error?: string } | null;
          const dur = c.endedAt ? new Date(c.endedAt).getTime() - new Date(c.startedAt).getTime() : null;
          rows.push(['', '', '', `└ ${c.target}`, c.status + (s?.error ? `: ${s.error}` : ''), formatDuration(dur)]);
        }
      }
      this.out(table(['RUN', 'STARTED', 'KIND', 'TARGET', 'STATUS', 'DURATION'], rows));
    }
    return entries;
  }
}
