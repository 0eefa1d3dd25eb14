/**
 * Health per subject for `status` and the daemon's /status: its worst check state and since
 * when, uptime over the last 24 hours, 7 and 30 days (all its checks' results together, from
 * the aggregates: the day windows are whole days plus today), and the p95 response time of its
 * checks over 24 hours.
 */
import type { CheckRow, MonitorState, StateManager } from '../../lib/state';

export interface SubjectHealth {
  subject: string;
  state: MonitorState;
  since: string;
  checks: number;
  /** checks DOWN now */
  down: number;
  uptime: { h24: number | null; d7: number | null; d30: number | null };
  /** p95 of the response times of its checks over 24 hours, ms */
  p95Ms: number | null;
  /** the details of the checks that are not UP */
  problems: string[];
}

const RANK: Record<MonitorState, number> = { DOWN: 4, FLAPPING: 3, PENDING: 2, MAINTENANCE: 1, UP: 0 };

function combine(parts: { count: number; failures: number }[]): number | null {
  const count = parts.reduce((n, p) => n + p.count, 0);
  return count ? (count - parts.reduce((n, p) => n + p.failures, 0)) / count : null;
}

/** The health of the named subjects (those with no checks are left out). */
export function subjectHealth(state: StateManager | null, subjects: string[], now: Date): Map<string, SubjectHealth> {
  const out = new Map<string, SubjectHealth>();
  if (!state) return out;
  const want = new Set(subjects);
  const bySubject = new Map<string, CheckRow[]>();
  const all = state.monitor.listChecks();
  // a check the config no longer has is not seen by later passes: left out after a day
  const newest = all.reduce((m, r) => (r.seenAt > m ? r.seenAt : m), '');
  const cutoff = newest ? new Date(Date.parse(newest) - 86400_000).toISOString() : '';
  for (const r of all) {
    if (!want.has(r.subject) || r.seenAt < cutoff) continue;
    bySubject.set(r.subject, [...(bySubject.get(r.subject) ?? []), r]);
  }
  const nowS = Math.floor(now.getTime() / 1000);
  const rolled = state.monitor.rolledUntil();
  // what is not rolled up yet, read once for every check (a scan of at most the last hour)
  const recent = state.monitor.recent(rolled ?? nowS - 86400, nowS);
  for (const [subject, rows] of bySubject) {
    const worst = rows.reduce((a, b) => (RANK[b.state] > RANK[a.state] ? b : a));
    // all UP: since the last of them came up; otherwise since the first went into the worst state
    const inWorst = rows
      .filter((r) => r.state === worst.state)
      .map((r) => r.since)
      .sort();
    const since = worst.state === 'UP' ? inWorst[inWorst.length - 1] : inWorst[0];
    const all = rows.map((r) => state.monitor.uptimes(r.id, nowS, rolled, recent));
    const day = all.map((x) => x.h24);
    const p95s = day.map((d) => d.p95).filter((x): x is number => x !== null);
    out.set(subject, {
      subject,
      state: worst.state,
      since,
      checks: rows.length,
      down: rows.filter((r) => r.state === 'DOWN').length,
      uptime: { h24: combine(day), d7: combine(all.map((x) => x.d7)), d30: combine(all.map((x) => x.d30)) },
      p95Ms: p95s.length ? Math.max(...p95s) : null,
      problems: rows.filter((r) => r.state !== 'UP').map((r) => `${r.label}: ${r.state}${r.lastDetail ? ` (${r.lastDetail})` : ''}`),
    });
  }
  return out;
}
