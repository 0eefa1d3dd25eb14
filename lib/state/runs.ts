/**
 * The `runs` table (every job run and, under it, every service run) and `run_steps` (the steps
 * of a run with their timings). A run records its host, PID and process start time, so that a
 * run left 'running' by a process that died can be told from one still going.
 */
import { processAlive, processStartTime } from '../proc';
import { type Db, intOrNull, now, type Row, textOrNull } from './db';

export type RunStatus = 'running' | 'success' | 'failed' | 'interrupted';

export interface RunRecord {
  id: number;
  parentId: number | null;
  kind: string;
  target: string;
  startedAt: string;
  endedAt: string | null;
  status: RunStatus;
  dryRun: boolean;
  host: string;
  pid: number;
  summary: unknown;
}

export interface StepRecord {
  id: number;
  runId: number;
  step: string;
  startedAt: string;
  endedAt: string | null;
  status: 'running' | 'success' | 'failed' | 'skipped' | 'interrupted';
  detail: string | null;
}

export interface ListRunsOptions {
  kind?: string;
  limit?: number;
  /** null: top-level runs only; a number: the runs under that one */
  parentId?: number | null;
}

export class RunsTable {
  constructor(
    private readonly db: Db,
    private readonly host: string,
  ) {}

  start(kind: string, target: string, opts: { dryRun?: boolean; parentId?: number | null } = {}): number {
    const res = this.db
      .stmt(
        'INSERT INTO runs (parent_id, kind, target, started_at, status, dry_run, host, pid, proc_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        opts.parentId ?? null,
        kind,
        target,
        now(),
        'running',
        opts.dryRun ? 1 : 0,
        this.host,
        process.pid,
        processStartTime(process.pid),
      );
    return Number(res.lastInsertRowid);
  }

  finish(id: number, status: Exclude<RunStatus, 'running'>, summary?: unknown): void {
    this.db
      .stmt('UPDATE runs SET status = ?, ended_at = ?, summary = ? WHERE id = ?')
      .run(status, now(), summary === undefined ? null : JSON.stringify(summary), id);
  }

  /** Runs left 'running' by a process of this host that no longer exists become 'interrupted'. Returns how many. */
  markInterrupted(): number {
    const rows = this.db.stmt("SELECT id, pid, proc_start FROM runs WHERE status = 'running' AND host = ?").all(this.host) as {
      id: number;
      pid: number;
      proc_start: string | null;
    }[];
    const ownStart = processStartTime(process.pid);
    let n = 0;
    for (const r of rows) {
      if ((r.pid === process.pid && r.proc_start === ownStart) || processAlive(r.pid, r.proc_start)) continue;
      this.db
        .stmt("UPDATE runs SET status = 'interrupted', ended_at = ?, summary = ? WHERE id = ? AND status = 'running'")
        .run(now(), JSON.stringify({ reason: `process ${r.pid} ended without finishing the run` }), r.id);
      this.db.stmt("UPDATE run_steps SET status = 'interrupted', ended_at = ? WHERE run_id = ? AND status = 'running'").run(now(), r.id);
      n++;
    }
    return n;
  }

  /** Newest first. */
  list(opts: ListRunsOptions = {}): RunRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.kind) {
      where.push('kind = ?');
      args.push(opts.kind);
    }
    if (opts.parentId === null) where.push('parent_id IS NULL');
    else if (opts.parentId !== undefined) {
      where.push('parent_id = ?');
      args.push(opts.parentId);
    }
    const sql = `SELECT * FROM runs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`;
    args.push(opts.limit ?? 50);
    return (this.db.stmt(sql).all(...args) as Row[]).map(toRun);
  }

  /** The newest run of a kind about one target (a service), dry runs left out. */
  lastOf(kind: string, target: string): RunRecord | null {
    const r = this.db
      .stmt('SELECT * FROM runs WHERE kind = ? AND target = ? AND dry_run = 0 ORDER BY id DESC LIMIT 1')
      .get(kind, target) as Row | undefined;
    return r ? toRun(r) : null;
  }

  /** A step of a run begins (an update's snapshot, validation, …). */
  startStep(runId: number, step: string, detail?: string): number {
    const res = this.db
      .stmt("INSERT INTO run_steps (run_id, step, started_at, status, detail) VALUES (?, ?, ?, 'running', ?)")
      .run(runId, step, now(), detail ?? null);
    return Number(res.lastInsertRowid);
  }

  /** A step ends; its detail is kept unless a new one is given. */
  finishStep(id: number, status: Exclude<StepRecord['status'], 'running'>, detail?: string): void {
    this.db
      .stmt('UPDATE run_steps SET status = ?, ended_at = ?, detail = COALESCE(?, detail) WHERE id = ?')
      .run(status, now(), detail ?? null, id);
  }

  listSteps(runId: number): StepRecord[] {
    return (this.db.stmt('SELECT * FROM run_steps WHERE run_id = ? ORDER BY id').all(runId) as Row[]).map(toStep);
  }
}

function toRun(r: Row): RunRecord {
  return {
    id: Number(r.id),
    parentId: intOrNull(r.parent_id),
    kind: String(r.kind),
    target: String(r.target),
    startedAt: String(r.started_at),
    endedAt: textOrNull(r.ended_at),
    status: r.status as RunStatus,
    dryRun: r.dry_run === 1,
    host: String(r.host),
    pid: Number(r.pid),
    summary: typeof r.summary === 'string' && r.summary ? JSON.parse(r.summary) : null,
  };
}

function toStep(r: Row): StepRecord {
  return {
    id: Number(r.id),
    runId: Number(r.run_id),
    step: String(r.step),
    startedAt: String(r.started_at),
    endedAt: textOrNull(r.ended_at),
    status: r.status as StepRecord['status'],
    detail: textOrNull(r.detail),
  };
}
