/**
 * The monitor's results over time (part of MonitorTable, lib/state/monitor.ts): values for
 * the disk forecast, the hourly and daily rollups and their pruning, uptimes, and the raw
 * results not rolled up yet. Results are keyed by time (appended at the end, pruned from the
 * front, the last hour read in one scan for every check); aggregates by check.
 */
import { type Db, intOrNull, type Row } from './db';

export const HOUR = 3600;
/** Seconds after its end before an hour is rolled up (longer than any check may take). */
const ROLLUP_LAG = 600;
const DAY = 86400;

/** Sums parts of a period (aggregate rows, raw results) into an uptime. */
function combineParts(parts: { count: number; failures: number; p95: number | null }[]): Uptime {
  const count = parts.reduce((n, p) => n + p.count, 0);
  const failures = parts.reduce((n, p) => n + p.failures, 0);
  return {
    count,
    failures,
    ratio: count ? (count - failures) / count : null,
    p95: weighted(
      parts.map((p) => ({ count: p.count - p.failures, v: p.p95 })),
      95,
    ),
  };
}

/** Raw results since `from` (epoch seconds), per check: counts and the sorted times of the successes. */
export interface RecentResults {
  from: number;
  byCheck: Map<number, { count: number; failures: number; oks: number[] }>;
}

export interface Uptime {
  count: number;
  failures: number;
  /** 0..1, null when nothing was measured */
  ratio: number | null;
  p95: number | null;
}

/** A percentile of sorted numbers (nearest rank). */
export function percentile(sorted: number[], p: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** A count-weighted percentile of per-period percentiles. */
function weighted(rows: { count: number; v: number | null }[], p: number): number | null {
  const xs = rows.filter((r) => r.v !== null && r.count > 0).sort((a, b) => (a.v as number) - (b.v as number));
  const total = xs.reduce((n, r) => n + r.count, 0);
  if (!total) return null;
  let acc = 0;
  for (const r of xs) {
    acc += r.count;
    if (acc >= (p / 100) * total) return r.v;
  }
  return xs[xs.length - 1].v;
}

export class MonitorResults {
  constructor(protected readonly db: Db) {}

  /**
   * Values of a check since a time (epoch seconds), oldest first: the disk forecast's input.
   * Hourly rows up to the last rollup, raw results after it (a scan of at most the hour not yet
   * rolled up: results are keyed by time).
   */
  values(id: number, sinceEpoch: number): { at: number; value: number }[] {
    const rolled = this.rolledUntil() ?? sinceEpoch;
    const rawFrom = Math.max(sinceEpoch, rolled);
    const hourly = this.db
      .stmt(
        "SELECT start, value FROM monitor_aggregates WHERE check_id = ? AND period = 'h' AND start >= ? AND start < ? AND value IS NOT NULL ORDER BY start",
      )
      .all(id, sinceEpoch, rawFrom) as Row[];
    const raw = this.db
      .stmt('SELECT at, value FROM monitor_results WHERE at >= ? AND check_id = ? AND value IS NOT NULL ORDER BY at')
      .all(rawFrom * 1000, id) as Row[];
    return [
      ...hourly.map((r) => ({ at: Number(r.start) + HOUR - 1, value: Number(r.value) })),
      ...raw.map((r) => ({ at: Math.floor(Number(r.at) / 1000), value: Number(r.value) })),
    ];
  }

  /**
   * Rolls the raw results of every hour that ended before `now` into hourly rows (once: an hour
   * already rolled up is left alone), refreshes the daily rows of the days touched, and prunes
   * what is older than the retention. Returns the rows written and deleted.
   */
  rollup(now: Date, retention: { raw: number; hourly: number; daily: number }): { hours: number; deleted: number } {
    const nowS = Math.floor(now.getTime() / 1000);
    // an hour is rolled up once its last checks have surely been written: a result is stamped
    // with its start, and a check may take minutes (a timeout of 300 s at most)
    const settled = nowS - ROLLUP_LAG;
    const hourStart = settled - (settled % HOUR);
    let done = this.rolledUntil();
    // a mark from the future (the clock was ahead, then corrected) would stop every rollup and
    // prune until real time caught up: start again from what raw results are kept
    if (done !== null && done > hourStart + HOUR) done = Math.max(0, hourStart - retention.raw);
    // nothing to do until the next hour is over: this is asked after every batch of results
    if (done !== null && done >= hourStart) return { hours: 0, deleted: 0 };
    return this.db.immediate(() => {
      // one scan of the hours not rolled up yet (results are keyed by time)
      const from = done ?? 0;
      const put = this.db.stmt(
        'INSERT OR REPLACE INTO monitor_aggregates (check_id, period, start, count, failures, p50, p95, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const groups = new Map<string, { id: number; start: number; oks: number[]; count: number; failures: number; value: number | null }>();
      for (const r of this.db
        .stmt('SELECT check_id, at, ok, ms, value FROM monitor_results WHERE at >= ? AND at < ?')
        .iterate(from * 1000, hourStart * 1000) as IterableIterator<Row>) {
        const id = Number(r.check_id);
        const at = Math.floor(Number(r.at) / 1000);
        const start = at - (at % HOUR);
        const k = `${id}:${start}`;
        let g = groups.get(k);
        if (!g) groups.set(k, (g = { id, start, oks: [], count: 0, failures: 0, value: null }));
        g.count++;
        if (Number(r.ok) === 1) g.oks.push(Number(r.ms));
        else g.failures++;
        if (r.value !== null) g.value = Number(r.value);
      }
      const days = new Map<string, { id: number; day: number }>();
      for (const g of groups.values()) {
        const ms = g.oks.sort((x, y) => x - y);
        put.run(g.id, 'h', g.start, g.count, g.failures, percentile(ms, 50), percentile(ms, 95), g.value);
        const day = g.start - (g.start % DAY);
        days.set(`${g.id}:${day}`, { id: g.id, day });
      }
      for (const d of days.values()) this.rollDay(d.id, d.day, put);
      let deleted = this.db.stmt('DELETE FROM monitor_results WHERE at < ?').run(Math.min(nowS - retention.raw, hourStart) * 1000).changes;
      const oldHours = this.db.stmt("DELETE FROM monitor_aggregates WHERE check_id = ? AND period = 'h' AND start < ?");
      const oldDays = this.db.stmt("DELETE FROM monitor_aggregates WHERE check_id = ? AND period = 'd' AND start < ?");
      for (const r of this.db.stmt('SELECT id FROM monitor_checks').all() as Row[]) {
        deleted += oldHours.run(Number(r.id), nowS - retention.hourly).changes;
        deleted += oldDays.run(Number(r.id), nowS - retention.daily).changes;
      }
      this.db
        .stmt("INSERT OR REPLACE INTO kv (key, value, updated_at) VALUES ('monitor.rolledUntil', ?, ?)")
        .run(String(hourStart), now.toISOString());
      return { hours: groups.size, deleted };
    });
  }

  /** The daily row of a day, made from its hourly rows. */
  private rollDay(id: number, day: number, put: ReturnType<Db['stmt']>): void {
    const hours = this.db
      .stmt(
        "SELECT count, failures, p50, p95, value FROM monitor_aggregates WHERE check_id = ? AND period = 'h' AND start >= ? AND start < ? ORDER BY start",
      )
      .all(id, day, day + DAY) as Row[];
    const count = hours.reduce((n, h) => n + Number(h.count), 0);
    const failures = hours.reduce((n, h) => n + Number(h.failures), 0);
    const okCount = (h: Row): number => Number(h.count) - Number(h.failures);
    const p50 = weighted(
      hours.map((h) => ({ count: okCount(h), v: intOrNull(h.p50) })),
      50,
    );
    const p95 = weighted(
      hours.map((h) => ({ count: okCount(h), v: intOrNull(h.p95) })),
      95,
    );
    const lastValue = [...hours].reverse().find((h) => h.value !== null)?.value ?? null;
    put.run(id, 'd', day, count, failures, p50, p95, lastValue === null ? null : Number(lastValue));
  }

  /** The end of the hours rolled up so far (epoch seconds), or null before the first rollup. */
  rolledUntil(): number | null {
    const v = this.db.stmt("SELECT value FROM kv WHERE key = 'monitor.rolledUntil'").pluck().get();
    return typeof v === 'string' ? Number(v) : null;
  }

  /**
   * Uptime over 24 hours, 7 and 30 days at once, in two reads of the aggregates: the last 24
   * whole hours, and the last 7 (30) whole days plus today's hours; with what is not rolled up
   * yet (`recent`, read once for many checks). The day windows are day-aligned: 7 days and
   * today's part. What `status` shows for every check.
   */
  uptimes(
    id: number,
    nowEpoch: number,
    rolled: number | null = this.rolledUntil(),
    recent?: RecentResults,
  ): { h24: Uptime; d7: Uptime; d30: Uptime } {
    type Part = { count: number; failures: number; p95: number | null };
    const rawFrom = rolled ?? nowEpoch - 86400;
    const summary = recent && recent.from === rawFrom ? recent.byCheck.get(id) : this.recent(rawFrom, nowEpoch, id).byCheck.get(id);
    const raw: Part[] = summary?.count ? [{ count: summary.count, failures: summary.failures, p95: percentile(summary.oks, 95) }] : [];
    if (rolled === null) {
      const u = combineParts(raw);
      return { h24: u, d7: u, d30: u };
    }
    const today = rolled - (rolled % DAY);
    // the 24 hours end now: whole hours from a day ago up to the rollup mark, raw results after it
    const dayAgo = Math.ceil((nowEpoch - DAY) / HOUR) * HOUR;
    const from = Math.min(dayAgo, today);
    const hours = (
      this.db
        .stmt("SELECT start, count, failures, p95 FROM monitor_aggregates WHERE check_id = ? AND period = 'h' AND start >= ? AND start < ?")
        .all(id, from, rolled) as Row[]
    ).map((r) => ({ start: Number(r.start), count: Number(r.count), failures: Number(r.failures), p95: intOrNull(r.p95) }));
    const days = (
      this.db
        .stmt("SELECT start, count, failures, p95 FROM monitor_aggregates WHERE check_id = ? AND period = 'd' AND start >= ? AND start < ?")
        .all(id, today - 30 * DAY, today) as Row[]
    ).map((r) => ({ start: Number(r.start), count: Number(r.count), failures: Number(r.failures), p95: intOrNull(r.p95) }));
    const todays = hours.filter((h) => h.start >= today);
    return {
      h24: combineParts([...hours.filter((h) => h.start >= dayAgo), ...raw]),
      d7: combineParts([...days.filter((d) => d.start >= today - 7 * DAY), ...todays, ...raw]),
      d30: combineParts([...days, ...todays, ...raw]),
    };
  }

  /**
   * The raw results since a time, per check (one scan: results are keyed by time): what
   * uptime() adds to the aggregates. Read once for many checks, with `from` = rolledUntil().
   */
  recent(fromEpoch: number, nowEpoch: number, only?: number): RecentResults {
    const byCheck = new Map<number, { count: number; failures: number; oks: number[] }>();
    const rows = (
      only === undefined
        ? this.db
            .stmt('SELECT check_id, ok, ms FROM monitor_results WHERE at >= ? AND at <= ?')
            .all(fromEpoch * 1000, nowEpoch * 1000 + 999)
        : this.db
            .stmt('SELECT check_id, ok, ms FROM monitor_results WHERE at >= ? AND at <= ? AND check_id = ?')
            .all(fromEpoch * 1000, nowEpoch * 1000 + 999, only)
    ) as Row[];
    for (const r of rows) {
      const id = Number(r.check_id);
      let c = byCheck.get(id);
      if (!c) byCheck.set(id, (c = { count: 0, failures: 0, oks: [] }));
      c.count++;
      if (Number(r.ok) === 1) c.oks.push(Number(r.ms));
      else c.failures++;
    }
    for (const c of byCheck.values()) c.oks.sort((a, b) => a - b);
    return { from: fromEpoch, byCheck };
  }
}
