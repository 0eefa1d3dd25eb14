/**
 * Job locks (`locks` table): one holder per name, taken in an immediate transaction. A holder
 * on this host whose process is gone (or whose PID now belongs to another process) is taken
 * over; a holder on another host cannot be checked from here and is always respected.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AutopilotError } from '../errors';
import { processAlive, processStartTime } from '../proc';
import { type Db, now, type Row, textOrNull } from './db';

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

/** A lock row: who holds it, and the start time of that process (to tell a reused PID). */
interface Holder {
  info: LockInfo;
  procStart: string | null;
}

type Attempt = { ok: true; tookOver: LockInfo | null; token: string } | { ok: false; holder: LockInfo };

export class LocksTable {
  /** the locks this process holds, with the token that proves it */
  private readonly held = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly host: string,
  ) {}

  private read(name: string): Holder | null {
    const row = this.db.stmt('SELECT * FROM locks WHERE name = ?').get(name) as Row | undefined;
    if (!row) return null;
    return {
      info: { name, host: String(row.host), pid: Number(row.pid), acquiredAt: String(row.acquired_at), command: textOrNull(row.command) },
      procStart: textOrNull(row.proc_start),
    };
  }

  /** Whether the holder's process is gone: only checkable for a holder on this host. */
  private stale(h: Holder): boolean {
    return h.info.host === this.host && !processAlive(h.info.pid, h.procStart);
  }

  /** The recorded holder of a lock, alive or not. */
  holder(name: string): LockInfo | null {
    return this.read(name)?.info ?? null;
  }

  /** The holder of a lock if its process still runs (or runs on another host). */
  liveHolder(name: string): LockInfo | null {
    const h = this.read(name);
    return h && !this.stale(h) ? h.info : null;
  }

  /** One attempt: takes the lock if it is free or its holder is gone. */
  private tryLock(name: string, command: string | undefined): Attempt {
    const token = randomUUID();
    return this.db.immediate((): Attempt => {
      const h = this.read(name);
      if (h && !this.stale(h)) return { ok: false, holder: h.info };
      if (h) this.db.stmt('DELETE FROM locks WHERE name = ?').run(name);
      this.db
        .stmt('INSERT INTO locks (name, token, host, pid, proc_start, acquired_at, command) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(name, token, this.host, process.pid, processStartTime(process.pid), now(), command ?? null);
      return { ok: true, tookOver: h?.info ?? null, token };
    });
  }

  /** Takes a lock, waiting up to `waitMs` for its holder; fails with LOCKED, or ABORTED when `signal` fires while waiting. */
  async acquire(name: string, opts: AcquireOptions = {}): Promise<Lock> {
    const deadline = Date.now() + (opts.waitMs ?? 0);
    const poll = opts.pollMs ?? 250;
    for (;;) {
      const r = this.tryLock(name, opts.command);
      if (r.ok) {
        this.held.set(name, r.token);
        return { name, tookOver: r.tookOver, release: () => this.release(name) };
      }
      if (Date.now() >= deadline) throw this.lockedError(r.holder);
      try {
        await sleep(Math.min(poll, Math.max(10, deadline - Date.now())), undefined, { signal: opts.signal });
      } catch (e) {
        if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'cancelled while waiting for a lock', { cause: e });
        throw e;
      }
    }
  }

  private lockedError(h: LockInfo): AutopilotError {
    const foreign = h.host !== this.host;
    return new AutopilotError(
      'LOCKED',
      `another run holds the '${h.name}' lock: pid ${h.pid} on ${h.host} since ${h.acquiredAt}${h.command ? ` (${h.command})` : ''}`,
      {
        hint: foreign
          ? `it was taken on another host (${h.host}), whose processes cannot be checked from here: if nothing runs there any more (the host was renamed, or the state folder copied), delete the lock with: sqlite3 ${this.db.file} "DELETE FROM locks WHERE name = '${h.name}'"`
          : 'wait for it to finish, or give --lock-wait SECONDS to wait for it',
      },
    );
  }

  /** Releases a lock this process holds (by its token: a lock taken over by another process is left alone). */
  release(name: string): void {
    const token = this.held.get(name);
    if (!token) return;
    this.held.delete(name);
    if (this.db.open) this.db.stmt('DELETE FROM locks WHERE name = ? AND token = ?').run(name, token);
  }

  releaseAll(): void {
    for (const name of [...this.held.keys()]) this.release(name);
  }
}
