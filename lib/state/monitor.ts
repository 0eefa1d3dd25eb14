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
import { HOUR, MonitorResults } from './monitor-results';

export { percentile, type RecentResults, type Uptime } from './monitor-results';

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

export class MonitorTable extends MonitorResults {
  constructor(db: Db) {
    super(db);
  }

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
