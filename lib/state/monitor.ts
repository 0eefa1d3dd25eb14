/**
 * The monitor's tables: each check's current state (monitor_checks), its raw results
 * (monitor_results, kept `raw` seconds; `at` in epoch milliseconds, so that two passes
 * within a second both count), hourly and daily aggregates (monitor_aggregates:
 * count, failures, p50/p95 of the response time, the last value), every transition, and
 * maintenance (manual windows, and our own work on a service).
 *
 * Results are rolled up into the hour they belong to as soon as the hour is over; the daily
 * row of a day is made from its hourly rows (its p50/p95 are count-weighted medians of the
 * hours', an approximation), so that uptime over 7 and 30 days reads a few rows per check.
 */
import * as os from 'node:os';
import { processAlive } from '../proc';
import { type Db, intOrNull, type Row, textOrNull } from './db';

export type MonitorState = 'UP' | 'DOWN' | 'PENDING' | 'MAINTENANCE' | 'FLAPPING';
/** What the results say, under MAINTENANCE and FLAPPING too. */
export type Health = 'UP' | 'DOWN' | 'PENDING';

export interface CheckRow {
  id: number;
  key: string;
  subject: string;
  label: string;
  type: string;
  state: MonitorState;
  health: Health;
  since: string;
  /** failures in a row */
  fails: number;
  /** successes in a row */
  oks: number;
  lastAt: string | null;
  lastOk: boolean | null;
  lastMs: number | null;
  lastDetail: string | null;
  lastValue: number | null;
  lastWarning: string | null;
  lastOkAt: string | null;
  seenAt: string;
}

export interface TransitionRow {
  id: number;
  checkId: number;
  at: string;
  kind: 'state' | 'health';
  from: MonitorState | null;
  to: MonitorState;
  detail: string | null;
}

export interface MaintenanceRow {
  id: number;
  subject: string;
  startsAt: string;
  endsAt: string;
  reason: string;
  source: 'manual' | 'work';
  runId: number | null;
  endedAt: string | null;
}

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

const HOUR = 3600;
const DAY = 86400;

function toCheck(r: Row): CheckRow {
  return {
    id: Number(r.id),
    key: String(r.key),
    subject: String(r.subject),
    label: String(r.label),
    type: String(r.type),
    state: r.state as MonitorState,
    health: r.health as Health,
    since: String(r.since),
    fails: Number(r.fails),
    oks: Number(r.oks),
    lastAt: textOrNull(r.last_at),
    lastOk: r.last_ok === null || r.last_ok === undefined ? null : Number(r.last_ok) === 1,
    lastMs: intOrNull(r.last_ms),
    lastDetail: textOrNull(r.last_detail),
    lastValue: r.last_value === null || r.last_value === undefined ? null : Number(r.last_value),
    lastWarning: textOrNull(r.last_warning),
    lastOkAt: textOrNull(r.last_ok_at),
    seenAt: String(r.seen_at),
  };
}

function toMaintenance(r: Row): MaintenanceRow {
  return {
    id: Number(r.id),
    subject: String(r.subject),
    startsAt: String(r.starts_at),
    endsAt: String(r.ends_at),
    reason: String(r.reason),
    source: r.source as MaintenanceRow['source'],
    runId: intOrNull(r.run_id),
    endedAt: textOrNull(r.ended_at),
  };
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

export class MonitorTable {
  constructor(private readonly db: Db) {}

  /** The check with this key, created PENDING when new; its subject, label and type follow the config. */
  ensureCheck(c: { key: string; subject: string; label: string; type: string }, at: string): CheckRow {
    this.db
      .stmt(
        `INSERT INTO monitor_checks (key, subject, label, type, state, since, seen_at) VALUES (?, ?, ?, ?, 'PENDING', ?, ?)
         ON CONFLICT(key) DO UPDATE SET subject = excluded.subject, label = excluded.label, type = excluded.type, seen_at = excluded.seen_at`,
      )
      .run(c.key, c.subject, c.label, c.type, at, at);
    return toCheck(this.db.stmt('SELECT * FROM monitor_checks WHERE key = ?').get(c.key) as Row);
  }

  /**
   * Makes sure every check exists (new ones PENDING) and marks them all seen, in few
   * statements: the rows that exist are read at once, only new or renamed ones are written.
   */
  ensureChecks(list: { key: string; subject: string; label: string; type: string }[], at: string): Map<string, CheckRow> {
    const existing = new Map(this.listChecks().map((r) => [r.key, r]));
    const out = new Map<string, CheckRow>();
    for (const c of list) {
      const r = existing.get(c.key);
      out.set(c.key, r && r.subject === c.subject && r.label === c.label && r.type === c.type ? r : this.ensureCheck(c, at));
    }
    // seen_at only needs to be right within the hour (forgetUnseen counts in days): no write per check and pass
    const seen = this.db.stmt('UPDATE monitor_checks SET seen_at = ? WHERE key = ?');
    const stale = new Date(Date.parse(at) - HOUR * 1000).toISOString();
    for (const c of list) {
      const r = existing.get(c.key);
      if (r && r.seenAt < stale) seen.run(at, c.key);
    }
    return out;
  }

  listChecks(opts: { subject?: string } = {}): CheckRow[] {
    const rows = (
      opts.subject
        ? this.db.stmt('SELECT * FROM monitor_checks WHERE subject = ? ORDER BY subject, id').all(opts.subject)
        : this.db.stmt('SELECT * FROM monitor_checks ORDER BY subject, id').all()
    ) as Row[];
    return rows.map(toCheck);
  }

  /**
   * Saves one result: the raw row, the check's counters and last values, and (when they
   * changed) its health and shown state, each change recorded as a transition. The caller
   * batches many of these in one transaction (batch()).
   */
  record(
    id: number,
    r: { at: Date; ok: boolean; ms: number; detail: string; value?: number | null; warning?: string | null },
    next: { fails: number; oks: number; health: Health; state: MonitorState },
    prev: { health: Health; state: MonitorState },
  ): void {
    const iso = r.at.toISOString();
    this.db
      .stmt(
        `UPDATE monitor_checks SET fails = ?, oks = ?, health = ?, state = ?, since = CASE WHEN state = ? THEN since ELSE ? END,
         last_at = ?, last_ok = ?, last_ms = ?, last_detail = ?, last_value = ?, last_warning = ?,
         last_ok_at = CASE WHEN ? = 1 THEN ? ELSE last_ok_at END WHERE id = ?`,
      )
      .run(
        next.fails,
        next.oks,
        next.health,
        next.state,
        next.state,
        iso,
        iso,
        r.ok ? 1 : 0,
        Math.round(r.ms),
        r.detail,
        r.value ?? null,
        r.warning ?? null,
        r.ok ? 1 : 0,
        iso,
        id,
      );
    this.appendResult(id, r.at.getTime(), r.ok, r.ms, r.value ?? null);
    const add = this.db.stmt(
      'INSERT INTO monitor_transitions (check_id, at, kind, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?, ?)',
    );
    if (next.health !== prev.health) add.run(id, iso, 'health', prev.health, next.health, r.detail);
    if (next.state !== prev.state) add.run(id, iso, 'state', prev.state, next.state, r.detail);
  }

  /** The raw row of one result (record() writes it with the check's new state; the state bench alone calls it directly). */
  appendResult(id: number, atMs: number, ok: boolean, ms: number, value: number | null): void {
    this.db
      .stmt('INSERT OR REPLACE INTO monitor_results (check_id, at, ok, ms, value) VALUES (?, ?, ?, ?, ?)')
      .run(id, atMs, ok ? 1 : 0, Math.round(ms), value);
  }

  /** Changes a check's shown state without a result (maintenance began or ended). */
  setState(id: number, from: MonitorState, to: MonitorState, at: Date, detail: string | null): void {
    const iso = at.toISOString();
    this.db.stmt('UPDATE monitor_checks SET state = ?, since = ? WHERE id = ?').run(to, iso, id);
    this.db
      .stmt("INSERT INTO monitor_transitions (check_id, at, kind, from_state, to_state, detail) VALUES (?, ?, 'state', ?, ?, ?)")
      .run(id, iso, from, to, detail);
  }

  /** Runs `fn` in one transaction: a pass's results are written with one commit, not one each. */
  batch<T>(fn: () => T): T {
    return this.db.immediate(fn);
  }

  transitions(id: number, opts: { since?: string; limit?: number } = {}): TransitionRow[] {
    const rows = this.db
      .stmt('SELECT * FROM monitor_transitions WHERE check_id = ? AND at >= ? ORDER BY id DESC LIMIT ?')
      .all(id, opts.since ?? '', opts.limit ?? 100) as Row[];
    return rows.map((r) => ({
      id: Number(r.id),
      checkId: Number(r.check_id),
      at: String(r.at),
      kind: r.kind as TransitionRow['kind'],
      from: (textOrNull(r.from_state) as MonitorState | null) ?? null,
      to: r.to_state as MonitorState,
      detail: textOrNull(r.detail),
    }));
  }

  /** Changes of health into or out of DOWN since a time: what flapping counts. */
  flips(id: number, since: string): number {
    return Number(
      this.db
        .stmt(
          `SELECT count(*) FROM monitor_transitions WHERE check_id = ? AND at >= ? AND kind = 'health'
           AND (from_state = 'DOWN' OR to_state = 'DOWN')`,
        )
        .pluck()
        .get(id, since),
    );
  }

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
    const hourStart = nowS - (nowS % HOUR);
    const done = this.rolledUntil();
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
   * Uptime of a check since a time: whole past days from daily rows, the hours of the first
   * (partial) day and of today from hourly rows, and what is not rolled up yet from raw
   * results. `rolled` is rolledUntil() (asked once by a caller that reads many checks).
   */
  uptime(id: number, sinceEpoch: number, nowEpoch: number, rolled: number | null = this.rolledUntil(), recent?: RecentResults): Uptime {
    const parts: { count: number; failures: number; p95: number | null }[] = [];
    const add = (rows: Row[]): void => {
      for (const r of rows) parts.push({ count: Number(r.count), failures: Number(r.failures), p95: intOrNull(r.p95) });
    };
    const agg = (period: 'h' | 'd', from: number, to: number): Row[] =>
      from >= to
        ? []
        : (this.db
            .stmt('SELECT count, failures, p95 FROM monitor_aggregates WHERE check_id = ? AND period = ? AND start >= ? AND start < ?')
            .all(id, period, from, to) as Row[]);
    let rawFrom = sinceEpoch;
    if (rolled !== null && rolled > sinceEpoch) {
      const hourFrom = Math.ceil(sinceEpoch / HOUR) * HOUR;
      const dayFrom = Math.ceil(sinceEpoch / DAY) * DAY;
      const today = rolled - (rolled % DAY);
      if (dayFrom < today) {
        add(agg('h', hourFrom, dayFrom));
        add(agg('d', dayFrom, today));
        add(agg('h', today, rolled));
      } else add(agg('h', hourFrom, rolled));
      rawFrom = rolled;
    }
    const summary = recent && recent.from === rawFrom ? recent.byCheck.get(id) : this.recent(rawFrom, nowEpoch, id).byCheck.get(id);
    if (summary && summary.count) parts.push({ count: summary.count, failures: summary.failures, p95: percentile(summary.oks, 95) });
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
    const from = Math.min(rolled - DAY, today);
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
      h24: combineParts([...hours.filter((h) => h.start >= rolled - DAY), ...raw]),
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

  /** Forgets checks the config no longer has (not seen since `before`), with their rows. */
  forgetUnseen(before: string): number {
    return this.db.immediate(() => {
      const ids = (this.db.stmt('SELECT id FROM monitor_checks WHERE seen_at < ?').all(before) as Row[]).map((r) => Number(r.id));
      for (const id of ids) {
        this.db.stmt('DELETE FROM monitor_results WHERE check_id = ?').run(id);
        this.db.stmt('DELETE FROM monitor_aggregates WHERE check_id = ?').run(id);
        this.db.stmt('DELETE FROM monitor_transitions WHERE check_id = ?').run(id);
        this.db.stmt('DELETE FROM monitor_checks WHERE id = ?').run(id);
      }
      return ids.length;
    });
  }

  // ---- maintenance ----

  beginMaintenance(m: {
    subject: string;
    startsAt: Date;
    endsAt: Date;
    reason: string;
    source: 'manual' | 'work';
    runId?: number | null;
  }): number {
    const res = this.db
      .stmt('INSERT INTO maintenance (subject, starts_at, ends_at, reason, source, run_id) VALUES (?, ?, ?, ?, ?, ?)')
      .run(m.subject, m.startsAt.toISOString(), m.endsAt.toISOString(), m.reason, m.source, m.runId ?? null);
    return Number(res.lastInsertRowid);
  }

  endMaintenance(id: number, at: Date): void {
    this.db.stmt('UPDATE maintenance SET ended_at = ? WHERE id = ? AND ended_at IS NULL').run(at.toISOString(), id);
  }

  /** Ends every open manual window of a subject (`monitoring maintenance SERVICE --end`). */
  endMaintenanceOf(subject: string, at: Date): number {
    return this.db
      .stmt("UPDATE maintenance SET ended_at = ? WHERE subject = ? AND source = 'manual' AND ended_at IS NULL AND ends_at > ?")
      .run(at.toISOString(), subject, at.toISOString()).changes;
  }

  /**
   * Windows open at a time. A window of our own work lasts while its run is 'running' and its
   * process lives (one whose process died ends with it, whatever its ends_at said).
   */
  activeMaintenance(at: Date): MaintenanceRow[] {
    const iso = at.toISOString();
    const rows = this.db
      .stmt(
        `SELECT m.*, r.status AS run_status, r.pid AS run_pid, r.proc_start AS run_proc_start, r.host AS run_host
         FROM maintenance m LEFT JOIN runs r ON r.id = m.run_id
         WHERE m.ended_at IS NULL AND m.starts_at <= ? AND m.ends_at > ? ORDER BY m.id`,
      )
      .all(iso, iso) as Row[];
    return rows
      .filter(
        (r) =>
          r.run_id === null ||
          (r.run_status === 'running' && (r.run_host !== os.hostname() || processAlive(Number(r.run_pid), textOrNull(r.run_proc_start)))),
      )
      .map(toMaintenance);
  }

  /** Manual windows, open or to come. */
  listMaintenance(at: Date): MaintenanceRow[] {
    return (
      this.db.stmt('SELECT * FROM maintenance WHERE ended_at IS NULL AND ends_at > ? ORDER BY starts_at').all(at.toISOString()) as Row[]
    ).map(toMaintenance);
  }
}
