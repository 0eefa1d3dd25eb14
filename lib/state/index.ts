/**
 * The SQLite state manager: one database file shared by every engine and plugin.
 * WAL mode and a busy timeout let a second process read while a job writes; job locks
 * keep two runs of the same job apart, and a lock left by a killed process is taken over.
 *
 * StateManager is a facade over one module per table (kv, runs, artifacts, locks,
 * notifications, monitor), all sharing the one database handle (db.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AutopilotError } from '../errors';
import { makeDirSync } from '../fsx';
import { SCHEMA_VERSION } from './migrations';
import { ArtifactsTable, type ArtifactRecord, type ListArtifactsOptions, type NewArtifact } from './artifacts';
import { checkedVersion, type Db, migrate, openReadOnly, openWritable } from './db';
import { CooldownStore, type KeyValueStore, KvTable, pluginStore, UpdateSnapshotStore } from './kv';
import { type AcquireOptions, type Lock, type LockInfo, LocksTable } from './locks';
import { MonitorTable } from './monitor';
import { type NotificationRecord, NotificationsTable } from './notifications';
import { type ListRunsOptions, type RunRecord, type RunStatus, RunsTable, type StepRecord } from './runs';
import { SummaryQueries } from './summary';

export type { ArtifactRecord, ListArtifactsOptions, NewArtifact, VerifyStatus } from './artifacts';
export type { CooldownStore, KeyValueStore, UpdateSnapshotStore } from './kv';
export type { AcquireOptions, Lock, LockInfo } from './locks';
export type { NotificationRecord } from './notifications';
export type { CheckRow, Health, MaintenanceRow, MonitorState, TransitionRow, Uptime } from './monitor';
export { MonitorTable, percentile } from './monitor';
export type { ListRunsOptions, RunRecord, RunStatus, StepRecord } from './runs';
export type { BackupSummary, JobSummary, NotificationCount } from './summary';
// kept here for callers from before lib/proc.ts (lib/archive.ts)
export { processAlive, processStartTime } from '../proc';
export { isDamagedState } from './db';

export class StateManager {
  readonly file: string;
  /** the notification engine's cooldowns and ongoing failures */
  readonly cooldown: CooldownStore;
  /** the snapshots updaters took, per service */
  readonly updateSnapshots: UpdateSnapshotStore;
  /** the monitor's checks, results, aggregates, transitions and maintenance windows */
  readonly monitor: MonitorTable;
  /** what metrics read: one query per table */
  readonly summary: SummaryQueries;
  private readonly db: Db;
  private readonly kv: KvTable;
  private readonly runs: RunsTable;
  private readonly artifacts: ArtifactsTable;
  private readonly notifications: NotificationsTable;
  private readonly locks: LocksTable;

  private constructor(db: Db) {
    const host = os.hostname();
    this.db = db;
    this.file = db.file;
    this.kv = new KvTable(db);
    this.cooldown = new CooldownStore(this.kv);
    this.updateSnapshots = new UpdateSnapshotStore(this.kv);
    this.runs = new RunsTable(db, host);
    this.artifacts = new ArtifactsTable(db);
    this.notifications = new NotificationsTable(db);
    this.locks = new LocksTable(db, host);
    this.monitor = new MonitorTable(db);
    this.summary = new SummaryQueries(db);
  }

  /** Opens (creating when needed) `<stateDir>/state.db` and brings its schema up to date. */
  /**
   * `fullCheck: false` skips SQLite's quick check of the whole file (about 0.2 s for 128 MB),
   * for the commands that open state very often (`monitor` from cron every minute, `status`):
   * damage then shows when a page is read. Backups, updates and the daemon check it all.
   */
  static open(stateDir: string, opts: { fullCheck?: boolean } = {}): StateManager {
    try {
      makeDirSync(stateDir, 0o750);
    } catch (e) {
      throw new AutopilotError('STATE_FAILED', `cannot create the state folder ${stateDir}: ${(e as Error).message}`, {
        hint: (e as AutopilotError).hint ?? 'set global.state_dir to a folder this user can write, or run as root',
      });
    }
    const db = openWritable(path.join(stateDir, 'state.db'), opts.fullCheck ?? true);
    migrate(db);
    return new StateManager(db);
  }

  /**
   * Opens an existing database for reading only (dry runs, listings): creates nothing.
   * Returns null when there is no database yet, or only one older than this code (which a
   * reader cannot migrate; the next writing run will).
   */
  static openReadOnly(stateDir: string, opts: { fullCheck?: boolean } = {}): StateManager | null {
    const file = path.join(stateDir, 'state.db');
    if (!fs.existsSync(file)) return null;
    const db = openReadOnly(file, opts.fullCheck ?? true);
    if (checkedVersion(db) < SCHEMA_VERSION) {
      db.close();
      return null;
    }
    return new StateManager(db);
  }

  /**
   * Moves `<stateDir>/state.db` (with its -wal and -shm files) aside as
   * `state.db.damaged-<stamp>[-wal|-shm]`, so that the next open starts a new one. Returns the new name, or null when there was none.
   */
  static setAside(stateDir: string, stamp: string): string | null {
    const file = path.join(stateDir, 'state.db');
    if (!fs.existsSync(file)) return null;
    let target = `${file}.damaged-${stamp}`;
    for (let n = 2; fs.existsSync(target); n++) target = `${file}.damaged-${stamp}-${n}`;
    for (const ext of ['-wal', '-shm']) if (fs.existsSync(file + ext)) fs.renameSync(file + ext, target + ext);
    fs.renameSync(file, target);
    return target;
  }

  get readonly(): boolean {
    return this.db.readonly;
  }

  get schemaVersion(): number {
    return this.db.schemaVersion;
  }

  /** Releases the locks this process holds, then closes the database. */
  close(): void {
    this.locks.releaseAll();
    this.db.close();
  }

  // ---- key/value: prefer the typed accessors (cooldown, updateSnapshots) for keys engines share

  get<T = unknown>(key: string, fallback?: T): T | undefined {
    return this.kv.get(key, fallback);
  }

  set(key: string, value: unknown): void {
    this.kv.set(key, value);
  }

  delete(key: string): void {
    this.kv.delete(key);
  }

  exists(key: string): boolean {
    return this.kv.exists(key);
  }

  /** Every key under a dotted prefix: list('update.snapshots') gives { nextcloud: [...], app: [...] }. */
  list(prefix: string): Record<string, unknown> {
    return this.kv.list(prefix);
  }

  /** The store a plugin gets: its own namespace, invisible to others. */
  pluginStore(plugin: string): KeyValueStore {
    return pluginStore(this.db, plugin);
  }

  // ---- runs and their steps

  startRun(kind: string, target: string, opts: { dryRun?: boolean; parentId?: number | null } = {}): number {
    return this.runs.start(kind, target, opts);
  }

  finishRun(id: number, status: Exclude<RunStatus, 'running'>, summary?: unknown): void {
    this.runs.finish(id, status, summary);
  }

  /** Runs left 'running' by a process of this host that no longer exists become 'interrupted'. Returns how many. */
  markInterruptedRuns(): number {
    return this.runs.markInterrupted();
  }

  listRuns(opts: ListRunsOptions = {}): RunRecord[] {
    return this.runs.list(opts);
  }

  /** The newest run of a kind about one target (a service), dry runs left out. */
  lastRun(kind: string, target: string): RunRecord | null {
    return this.runs.lastOf(kind, target);
  }

  /** A step of a run begins (an update's snapshot, validation, …). */
  startStep(runId: number, step: string, detail?: string): number {
    return this.runs.startStep(runId, step, detail);
  }

  finishStep(id: number, status: Exclude<StepRecord['status'], 'running'>, detail?: string): void {
    this.runs.finishStep(id, status, detail);
  }

  listSteps(runId: number): StepRecord[] {
    return this.runs.listSteps(runId);
  }

  // ---- artifacts

  addArtifact(a: NewArtifact): number {
    return this.artifacts.add(a);
  }

  markArtifactDeleted(id: number): void {
    this.artifacts.markDeleted(id);
  }

  getArtifact(id: number): ArtifactRecord | null {
    return this.artifacts.get(id);
  }

  setArtifactProtected(id: number, value: boolean): void {
    this.artifacts.setProtected(id, value);
  }

  listArtifacts(opts: ListArtifactsOptions = {}): ArtifactRecord[] {
    return this.artifacts.list(opts);
  }

  // ---- notifications

  recordNotification(n: Omit<NotificationRecord, 'id' | 'createdAt'>): number {
    return this.notifications.record(n);
  }

  listNotifications(opts: { channel?: string; limit?: number } = {}): NotificationRecord[] {
    return this.notifications.list(opts);
  }

  // ---- locks

  /** The recorded holder of a lock, whether its process still runs or not. */
  lockHolder(name: string): LockInfo | null {
    return this.locks.holder(name);
  }

  /** The holder of a lock if its process still runs (or runs on another host). */
  liveLockHolder(name: string): LockInfo | null {
    return this.locks.liveHolder(name);
  }

  acquireLock(name: string, opts: AcquireOptions = {}): Promise<Lock> {
    return this.locks.acquire(name, opts);
  }
}
