/**
 * The SQLite state manager: one database file shared by every engine and plugin.
 * WAL mode and a busy timeout let a second process read while a job writes; job locks
 * keep two runs of the same job apart, and a lock left by a killed process is taken over.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { AutopilotError } from '../errors';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';

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

export interface ArtifactRecord {
  id: number;
  runId: number | null;
  service: string;
  destination: string;
  location: string;
  size: number;
  sha256: string | null;
  createdAt: string;
  verifiedAt: string | null;
  verifyResult: string | null;
  protected: boolean;
  deletedAt: string | null;
}

export type NewArtifact = Omit<ArtifactRecord, 'id' | 'verifiedAt' | 'verifyResult' | 'protected' | 'deletedAt'> &
  Partial<Pick<ArtifactRecord, 'verifiedAt' | 'verifyResult' | 'protected'>>;

export interface NotificationRecord {
  id: number;
  createdAt: string;
  channel: string;
  event: string;
  severity: string;
  subject: string;
  title: string;
  status: 'sent' | 'failed' | 'suppressed';
  attempts: number;
  error: string | null;
  runId: number | null;
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

export interface LockInfo {
  name: string;
  host: string;
  pid: number;
  acquiredAt: string;
  command: string | null;
}

export interface Lock {
  readonly name: string;
  /** true when the lock was taken over from a process that no longer exists */
  readonly tookOver: LockInfo | null;
  release(): void;
}

export interface AcquireOptions {
  /** how long to wait for a held lock, in ms (0: fail at once) */
  waitMs?: number;
  signal?: AbortSignal;
  /** what holds it, shown to a second run */
  command?: string;
  /** poll interval in ms */
  pollMs?: number;
}

/** A namespaced key/value store for one plugin. */
export interface KeyValueStore {
  get<T = unknown>(key: string, fallback?: T): T | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): void;
  exists(key: string): boolean;
}

const now = (): string => new Date().toISOString();

/** The start time of a process (field 22 of /proc/PID/stat), so that a reused PID is not mistaken for the holder. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function processAlive(pid: number, startTime: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists but belongs to someone else
  }
  if (startTime) {
    const current = processStartTime(pid);
    if (current !== null && current !== startTime) return false;
  }
  return true;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new AutopilotError('ABORTED', 'cancelled while waiting for a lock'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class StateManager {
  readonly file: string;
  private readonly db: BetterSqlite3.Database;
  private readonly host = os.hostname();
  private readonly heldLocks = new Map<string, string>();

  private constructor(file: string, db: BetterSqlite3.Database) {
    this.file = file;
    this.db = db;
  }

  /** Opens (creating when needed) `<stateDir>/state.db` and brings its schema up to date. */
  static open(stateDir: string): StateManager {
    try {
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    } catch (e) {
      throw new AutopilotError('STATE_FAILED', `cannot create the state folder ${stateDir}: ${(e as Error).message}`, {
        hint: 'set global.state_dir to a folder this user can write, or run as root',
      });
    }
    const file = path.join(stateDir, 'state.db');
    let db: BetterSqlite3.Database;
    try {
      // loaded here so that commands which never touch state do not pay for the native module
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const Database = require('better-sqlite3') as typeof BetterSqlite3;
      db = new Database(file, { timeout: 10_000 });
      // switching a new database to WAL needs a moment alone with it: SQLite answers SQLITE_BUSY at
      // once (no busy wait) while another process is creating it too, so try again for a while
      for (let tries = 0; ; tries++) {
        try {
          db.pragma('journal_mode = WAL');
          break;
        } catch (e) {
          if ((e as { code?: string }).code !== 'SQLITE_BUSY' || tries >= 100) throw e;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50 + Math.floor(Math.random() * 50));
        }
      }
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
    } catch (e) {
      throw new AutopilotError('STATE_FAILED', `cannot open the state database ${file}: ${(e as Error).message}`, {
        hint: 'check that the file is a homelab-autopilot state database and that this user may write it',
        cause: e,
      });
    }
    const sm = new StateManager(file, db);
    sm.migrate();
    return sm;
  }

  /**
   * Opens an existing database for reading only (dry runs, listings): creates nothing.
   * Returns null when there is no database yet.
   */
  static openReadOnly(stateDir: string): StateManager | null {
    const file = path.join(stateDir, 'state.db');
    if (!fs.existsSync(file)) return null;
    let db: BetterSqlite3.Database;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const Database = require('better-sqlite3') as typeof BetterSqlite3;
      db = new Database(file, { readonly: true, fileMustExist: true, timeout: 10_000 });
    } catch (e) {
      throw new AutopilotError('STATE_FAILED', `cannot open the state database ${file}: ${(e as Error).message}`, { cause: e });
    }
    const sm = new StateManager(file, db);
    const v = sm.schemaVersion;
    if (v > SCHEMA_VERSION) {
      db.close();
      throw new AutopilotError(
        'STATE_TOO_NEW',
        `the state database ${file} has schema version ${v}, newer than this homelab-autopilot understands (${SCHEMA_VERSION})`,
        {
          hint: 'upgrade homelab-autopilot, or point global.state_dir at another folder',
        },
      );
    }
    if (v < SCHEMA_VERSION) {
      db.close();
      return null;
    }
    return sm;
  }

  get readonly(): boolean {
    return this.db.readonly;
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion;
    if (current > SCHEMA_VERSION) {
      this.db.close();
      throw new AutopilotError(
        'STATE_TOO_NEW',
        `the state database ${this.file} has schema version ${current}, newer than this homelab-autopilot understands (${SCHEMA_VERSION})`,
        { hint: 'upgrade homelab-autopilot, or point global.state_dir at another folder' },
      );
    }
    for (let v = current; v < SCHEMA_VERSION; v++) {
      const apply = this.db.transaction(() => {
        // re-read inside the write transaction: another process may have migrated meanwhile
        if ((this.db.pragma('user_version', { simple: true }) as number) !== v) return;
        this.db.exec(MIGRATIONS[v]);
        this.db.pragma(`user_version = ${v + 1}`);
      });
      apply.immediate();
    }
  }

  close(): void {
    for (const name of [...this.heldLocks.keys()]) this.releaseLock(name);
    if (this.db.open) this.db.close();
  }

  // ---- key/value -------------------------------------------------------------------------

  get<T = unknown>(key: string, fallback?: T): T | undefined {
    const row = this.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : fallback;
  }

  set(key: string, value: unknown): void {
    if (value === undefined) throw new AutopilotError('STATE_FAILED', `cannot store undefined under '${key}'`);
    this.db
      .prepare(
        'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      )
      .run(key, JSON.stringify(value), now());
  }

  delete(key: string): void {
    this.db.prepare('DELETE FROM kv WHERE key = ?').run(key);
  }

  exists(key: string): boolean {
    return this.db.prepare('SELECT 1 FROM kv WHERE key = ?').get(key) !== undefined;
  }

  /** Every key under a dotted prefix: list('last_backup') gives { nextcloud: ..., host: ... }. */
  list(prefix: string): Record<string, unknown> {
    const rows = this.db
      .prepare("SELECT key, value FROM kv WHERE substr(key, 1, length(?) + 1) = ? || '.' ORDER BY key")
      .all(prefix, prefix) as { key: string; value: string }[];
    const out: Record<string, unknown> = {};
    for (const r of rows) out[r.key.slice(prefix.length + 1)] = JSON.parse(r.value);
    return out;
  }

  /** The store a plugin gets: its own namespace, invisible to others. */
  pluginStore(plugin: string): KeyValueStore {
    const db = this.db;
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const row = db.prepare('SELECT value FROM plugin_store WHERE plugin = ? AND key = ?').get(plugin, key) as
          { value: string } | undefined;
        return row ? (JSON.parse(row.value) as T) : fallback;
      },
      set(key: string, value: unknown): void {
        db.prepare(
          'INSERT INTO plugin_store (plugin, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
        ).run(plugin, key, JSON.stringify(value ?? null), now());
      },
      delete(key: string): void {
        db.prepare('DELETE FROM plugin_store WHERE plugin = ? AND key = ?').run(plugin, key);
      },
      exists(key: string): boolean {
        return db.prepare('SELECT 1 FROM plugin_store WHERE plugin = ? AND key = ?').get(plugin, key) !== undefined;
      },
    };
  }

  // ---- runs ------------------------------------------------------------------------------

  startRun(kind: string, target: string, opts: { dryRun?: boolean; parentId?: number | null } = {}): number {
    const res = this.db
      .prepare(
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

  finishRun(id: number, status: Exclude<RunStatus, 'running'>, summary?: unknown): void {
    this.db
      .prepare('UPDATE runs SET status = ?, ended_at = ?, summary = ? WHERE id = ?')
      .run(status, now(), summary === undefined ? null : JSON.stringify(summary), id);
  }

  /** A step of a run begins (an update's snapshot, validation, …). */
  startStep(runId: number, step: string, detail?: string): number {
    const res = this.db
      .prepare("INSERT INTO run_steps (run_id, step, started_at, status, detail) VALUES (?, ?, ?, 'running', ?)")
      .run(runId, step, now(), detail ?? null);
    return Number(res.lastInsertRowid);
  }

  finishStep(id: number, status: Exclude<StepRecord['status'], 'running'>, detail?: string): void {
    this.db
      .prepare('UPDATE run_steps SET status = ?, ended_at = ?, detail = COALESCE(?, detail) WHERE id = ?')
      .run(status, now(), detail ?? null, id);
  }

  listSteps(runId: number): StepRecord[] {
    return (this.db.prepare('SELECT * FROM run_steps WHERE run_id = ? ORDER BY id').all(runId) as Record<string, unknown>[]).map((r) => ({
      id: Number(r.id),
      runId: Number(r.run_id),
      step: String(r.step),
      startedAt: String(r.started_at),
      endedAt: (r.ended_at as string) ?? null,
      status: r.status as StepRecord['status'],
      detail: (r.detail as string) ?? null,
    }));
  }

  /** The holder of a lock if its process still runs (or runs on another host). */
  liveLockHolder(name: string): LockInfo | null {
    const row = this.db.prepare('SELECT * FROM locks WHERE name = ?').get(name) as Record<string, unknown> | undefined;
    if (!row) return null;
    if (String(row.host) === this.host && !processAlive(Number(row.pid), (row.proc_start as string) ?? null)) return null;
    return this.lockHolder(name);
  }

  /** Runs left 'running' by a process of this host that no longer exists become 'interrupted'. Returns how many. */
  markInterruptedRuns(): number {
    const rows = this.db.prepare("SELECT id, pid, proc_start FROM runs WHERE status = 'running' AND host = ?").all(this.host) as {
      id: number;
      pid: number;
      proc_start: string | null;
    }[];
    let n = 0;
    for (const r of rows) {
      if ((r.pid === process.pid && r.proc_start === processStartTime(process.pid)) || processAlive(r.pid, r.proc_start)) continue;
      this.db
        .prepare("UPDATE runs SET status = 'interrupted', ended_at = ?, summary = ? WHERE id = ? AND status = 'running'")
        .run(now(), JSON.stringify({ reason: `process ${r.pid} ended without finishing the run` }), r.id);
      this.db.prepare("UPDATE run_steps SET status = 'interrupted', ended_at = ? WHERE run_id = ? AND status = 'running'").run(now(), r.id);
      n++;
    }
    return n;
  }

  listRuns(opts: { kind?: string; limit?: number; parentId?: number | null } = {}): RunRecord[] {
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
    return (this.db.prepare(sql).all(...args) as Record<string, unknown>[]).map(toRun);
  }

  // ---- artifacts -------------------------------------------------------------------------

  addArtifact(a: NewArtifact): number {
    const res = this.db
      .prepare(
        `INSERT INTO artifacts (run_id, service, destination, location, size, sha256, created_at, verified_at, verify_result, protected)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(destination, location) DO UPDATE SET run_id = excluded.run_id, size = excluded.size, sha256 = excluded.sha256,
           created_at = excluded.created_at, verified_at = excluded.verified_at, verify_result = excluded.verify_result, deleted_at = NULL`,
      )
      .run(
        a.runId,
        a.service,
        a.destination,
        a.location,
        a.size,
        a.sha256,
        a.createdAt,
        a.verifiedAt ?? null,
        a.verifyResult ?? null,
        a.protected ? 1 : 0,
      );
    return Number(res.lastInsertRowid);
  }

  markArtifactDeleted(id: number): void {
    this.db.prepare('UPDATE artifacts SET deleted_at = ? WHERE id = ?').run(now(), id);
  }

  getArtifact(id: number): ArtifactRecord | null {
    const row = this.db.prepare('SELECT * FROM artifacts WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return row ? toArtifact(row) : null;
  }

  setArtifactProtected(id: number, value: boolean): void {
    this.db.prepare('UPDATE artifacts SET protected = ? WHERE id = ?').run(value ? 1 : 0, id);
  }

  listArtifacts(opts: { service?: string; destination?: string; includeDeleted?: boolean } = {}): ArtifactRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.service) {
      where.push('service = ?');
      args.push(opts.service);
    }
    if (opts.destination) {
      where.push('destination = ?');
      args.push(opts.destination);
    }
    if (!opts.includeDeleted) where.push('deleted_at IS NULL');
    const sql = `SELECT * FROM artifacts ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC`;
    return (this.db.prepare(sql).all(...args) as Record<string, unknown>[]).map(toArtifact);
  }

  // ---- notifications -----------------------------------------------------------------------

  recordNotification(n: Omit<NotificationRecord, 'id' | 'createdAt'>): number {
    const res = this.db
      .prepare(
        'INSERT INTO notifications (created_at, channel, event, severity, subject, title, status, attempts, error, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(now(), n.channel, n.event, n.severity, n.subject, n.title, n.status, n.attempts, n.error, n.runId);
    return Number(res.lastInsertRowid);
  }

  listNotifications(opts: { channel?: string; limit?: number } = {}): NotificationRecord[] {
    const rows = (
      opts.channel
        ? this.db.prepare('SELECT * FROM notifications WHERE channel = ? ORDER BY id DESC LIMIT ?').all(opts.channel, opts.limit ?? 50)
        : this.db.prepare('SELECT * FROM notifications ORDER BY id DESC LIMIT ?').all(opts.limit ?? 50)
    ) as Record<string, unknown>[];
    return rows.map((r) => ({
      id: Number(r.id),
      createdAt: String(r.created_at),
      channel: String(r.channel),
      event: String(r.event),
      severity: String(r.severity),
      subject: String(r.subject),
      title: String(r.title),
      status: r.status as NotificationRecord['status'],
      attempts: Number(r.attempts),
      error: (r.error as string) ?? null,
      runId: r.run_id === null ? null : Number(r.run_id),
    }));
  }

  // ---- locks -----------------------------------------------------------------------------

  lockHolder(name: string): LockInfo | null {
    const row = this.db.prepare('SELECT * FROM locks WHERE name = ?').get(name) as Record<string, unknown> | undefined;
    return row
      ? {
          name,
          host: String(row.host),
          pid: Number(row.pid),
          acquiredAt: String(row.acquired_at),
          command: (row.command as string) ?? null,
        }
      : null;
  }

  /** One attempt: takes the lock if it is free or its holder is gone. */
  private tryLock(
    name: string,
    command: string | undefined,
  ): { ok: true; tookOver: LockInfo | null; token: string } | { ok: false; holder: LockInfo } {
    const token = randomUUID();
    const attempt = this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM locks WHERE name = ?').get(name) as Record<string, unknown> | undefined;
      let tookOver: LockInfo | null = null;
      if (row) {
        const holder: LockInfo = {
          name,
          host: String(row.host),
          pid: Number(row.pid),
          acquiredAt: String(row.acquired_at),
          command: (row.command as string) ?? null,
        };
        const sameHost = holder.host === this.host;
        if (!sameHost || processAlive(holder.pid, (row.proc_start as string) ?? null)) return { ok: false as const, holder };
        tookOver = holder;
        this.db.prepare('DELETE FROM locks WHERE name = ?').run(name);
      }
      this.db
        .prepare('INSERT INTO locks (name, token, host, pid, proc_start, acquired_at, command) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(name, token, this.host, process.pid, processStartTime(process.pid), now(), command ?? null);
      return { ok: true as const, tookOver, token };
    });
    return attempt.immediate();
  }

  async acquireLock(name: string, opts: AcquireOptions = {}): Promise<Lock> {
    const deadline = Date.now() + (opts.waitMs ?? 0);
    const poll = opts.pollMs ?? 250;
    for (;;) {
      const r = this.tryLock(name, opts.command);
      if (r.ok) {
        this.heldLocks.set(name, r.token);
        return { name, tookOver: r.tookOver, release: () => this.releaseLock(name) };
      }
      if (Date.now() >= deadline) {
        const h = r.holder;
        const foreign = h.host !== this.host;
        throw new AutopilotError(
          'LOCKED',
          `another run holds the '${name}' lock: pid ${h.pid} on ${h.host} since ${h.acquiredAt}${h.command ? ` (${h.command})` : ''}`,
          {
            hint: foreign
              ? `it was taken on another host (${h.host}), whose processes cannot be checked from here: if nothing runs there any more (the host was renamed, or the state folder copied), delete the lock with: sqlite3 ${this.file} "DELETE FROM locks WHERE name = '${name}'"`
              : 'wait for it to finish, or give --lock-wait SECONDS to wait for it',
          },
        );
      }
      await sleep(Math.min(poll, Math.max(10, deadline - Date.now())), opts.signal);
    }
  }

  private releaseLock(name: string): void {
    const token = this.heldLocks.get(name);
    if (!token) return;
    this.heldLocks.delete(name);
    if (this.db.open) this.db.prepare('DELETE FROM locks WHERE name = ? AND token = ?').run(name, token);
  }
}

function toRun(r: Record<string, unknown>): RunRecord {
  return {
    id: Number(r.id),
    parentId: r.parent_id === null ? null : Number(r.parent_id),
    kind: String(r.kind),
    target: String(r.target),
    startedAt: String(r.started_at),
    endedAt: (r.ended_at as string) ?? null,
    status: r.status as RunStatus,
    dryRun: r.dry_run === 1,
    host: String(r.host),
    pid: Number(r.pid),
    summary: r.summary ? JSON.parse(String(r.summary)) : null,
  };
}

function toArtifact(r: Record<string, unknown>): ArtifactRecord {
  return {
    id: Number(r.id),
    runId: r.run_id === null ? null : Number(r.run_id),
    service: String(r.service),
    destination: String(r.destination),
    location: String(r.location),
    size: Number(r.size),
    sha256: (r.sha256 as string) ?? null,
    createdAt: String(r.created_at),
    verifiedAt: (r.verified_at as string) ?? null,
    verifyResult: (r.verify_result as string) ?? null,
    protected: r.protected === 1,
    deletedAt: (r.deleted_at as string) ?? null,
  };
}
