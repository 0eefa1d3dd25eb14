/**
 * A consistent copy of a live SQLite database, made in bounded steps that stop at a deadline,
 * and checked before it is used; and the lock that keeps two copies of one service apart.
 * Written against the public contract only (better-sqlite3, no host internals).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { OperationContext } from '../../../core/plugins/contract';

/** Pages copied per step (4 MB at SQLite's default page size): each step takes milliseconds. */
const STEP_PAGES = 1024;
/** How long one attempt to start reading waits for a writer that holds the database. */
const BUSY_MS = 200;

interface Progress {
  totalPages: number;
  remainingPages: number;
}
interface Db {
  exec(sql: string): void;
  prepare(sql: string): { get(): unknown; pluck(): { get(): unknown; all(): unknown[] } };
  backup(target: string, o: { progress(p: Progress): number }): Promise<Progress>;
  close(): void;
  readonly inTransaction: boolean;
}
type DbClass = new (file: string, o?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => Db;

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** Throws when the operation's time is up or it was cancelled. */
function checkTime(op: OperationContext, what: string): void {
  if (op.signal.aborted || (op.deadline !== undefined && Date.now() >= op.deadline))
    throw new Error(`${what} was stopped: the backup's time is up or it was cancelled`);
}

const isBusy = (e: unknown): boolean => /^SQLITE_(BUSY|LOCKED)/.test(String((e as { code?: string })?.code ?? ''));

/**
 * Opens a read transaction on `db`, waiting (in short tries, the event loop free between them)
 * for a writer that holds the database, until the deadline.
 */
async function beginRead(db: Db, source: string, op: OperationContext): Promise<void> {
  for (;;) {
    checkTime(op, `copying ${source}`);
    try {
      db.exec('BEGIN');
      // the first read takes the lock that the transaction then keeps: every page comes from one state of the database
      db.prepare('SELECT count(*) FROM sqlite_master').pluck().get();
      return;
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      if (!isBusy(e)) throw e;
      await sleep(50, op.signal);
    }
  }
}

/**
 * Copies `source` to `target` with SQLite's online backup, consistently: one read transaction
 * holds the database as it was when the copy began (writers go on in WAL mode; in rollback
 * mode they wait for the copy, which is quick), so the copy never restarts under constant
 * writes. It goes in bounded steps and stops at op.deadline or op.signal. The copy is
 * checked (not empty, PRAGMA integrity_check) before it is renamed to `target`.
 */
export async function copySqlite(source: string, target: string, op: OperationContext): Promise<{ pages: number; bytes: number }> {
  const { default: Database } = (await import('better-sqlite3')) as unknown as { default: DbClass };
  const partial = `${target}.partial-${process.pid}`;
  fs.rmSync(partial, { force: true });
  const db = new Database(source, { readonly: true, fileMustExist: true, timeout: BUSY_MS });
  let pages = 0;
  try {
    await beginRead(db, source, op);
    const done = await db.backup(partial, {
      progress(p) {
        checkTime(op, `copying ${source}`);
        op.progress?.(`copying ${path.basename(source)}: ${p.totalPages - p.remainingPages} of ${p.totalPages} pages`);
        return STEP_PAGES;
      },
    });
    pages = done.totalPages;
  } catch (e) {
    fs.rmSync(partial, { force: true });
    throw e;
  } finally {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
  }
  try {
    checkTime(op, `checking the copy of ${source}`);
    const bytes = check(partial, source, Database);
    fs.renameSync(partial, target);
    return { pages, bytes };
  } catch (e) {
    fs.rmSync(partial, { force: true });
    for (const s of ['-wal', '-shm', '-journal']) fs.rmSync(partial + s, { force: true });
    throw e;
  }
}

/** The copy is a whole, sound database: not empty, and PRAGMA integrity_check says ok. */
function check(file: string, source: string, Database: DbClass): number {
  const bytes = fs.existsSync(file) ? fs.statSync(file).size : 0;
  if (bytes === 0) throw new Error(`the copy of ${source} came out empty: nothing was archived`);
  const db = new Database(file, { fileMustExist: true });
  try {
    let problems: string[];
    try {
      problems = db.prepare('PRAGMA integrity_check').pluck().all().map(String);
    } catch (e) {
      problems = [(e as Error).message];
    }
    if (problems.join() !== 'ok')
      throw new Error(`the copy of ${source} failed PRAGMA integrity_check: ${problems.slice(0, 3).join('; ')}`);
    // a self-contained file: a restored copy needs no -wal beside it
    db.exec('PRAGMA journal_mode = DELETE');
  } finally {
    db.close();
  }
  return fs.statSync(file).size;
}

/** When a process started (field 22 of /proc/<pid>/stat), so that a reused pid is not taken for the holder. */
function startOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Takes the lock file `file` for this process: `pid start` inside. A lock whose process is
 * gone is taken over; a live holder is refused with an Error naming its pid.
 */
export function takeLock(file: string, what: string): () => void {
  const mine = `${process.pid} ${startOf(process.pid) ?? ''}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx', mode: 0o600 });
      return () => {
        if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === mine) fs.rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const [pid, start] = fs.readFileSync(file, 'utf8').trim().split(' ');
    const alive = /^\d+$/.test(pid ?? '') && startOf(Number(pid)) !== null && (!start || startOf(Number(pid)) === start);
    if (alive && Number(pid) !== process.pid)
      throw Object.assign(new Error(`another backup of ${what} is still running (pid ${pid}): this one is refused`), {
        hint: `wait for it to end (or end pid ${pid}), then back up again`,
      });
    fs.rmSync(file, { force: true });
  }
  throw new Error(`could not take the lock ${file}`);
}
