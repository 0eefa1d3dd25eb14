/**
 * The one better-sqlite3 handle every table module shares: opening it (WAL, busy timeout,
 * full sync), the schema version check and the migrations, and a cache of prepared statements.
 */
import * as fs from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { AutopilotError } from '../errors';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';

/** A row as better-sqlite3 returns it; each table module maps its own. */
export type Row = Record<string, unknown>;

export const now = (): string => new Date().toISOString();

/** A nullable TEXT column (TEXT affinity: SQLite gives back a string, or null). */
export const textOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** A nullable INTEGER column. */
export const intOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** The database handle and its prepared statements, shared by the table modules of one StateManager. */
export class Db {
  private readonly statements = new Map<string, BetterSqlite3.Statement>();

  constructor(
    readonly handle: BetterSqlite3.Database,
    readonly file: string,
  ) {}

  /** better-sqlite3 compiles a statement once and runs it many times: each SQL text is prepared on first use. */
  stmt(sql: string): BetterSqlite3.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.handle.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in an immediate transaction: the write lock is taken first, so what `fn` reads cannot change under it. */
  immediate<T>(fn: () => T): T {
    return this.handle.transaction(fn).immediate();
  }

  get open(): boolean {
    return this.handle.open;
  }

  get readonly(): boolean {
    return this.handle.readonly;
  }

  get schemaVersion(): number {
    return this.handle.pragma('user_version', { simple: true }) as number;
  }

  close(): void {
    if (this.handle.open) this.handle.close();
  }
}

function driver(): typeof BetterSqlite3 {
  // loaded here so that commands which never touch state do not pay for the native module
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  return require('better-sqlite3') as typeof BetterSqlite3;
}

/** SQLite's answers for a file that is not (or no longer) a sound database. */
const DAMAGE = /^SQLITE_(CORRUPT|NOTADB)/;

export const isDamage = (e: unknown): boolean => DAMAGE.test(String((e as { code?: string })?.code ?? ''));

/** The state database is empty or damaged: what happened, and the way back. */
const DAMAGED = new WeakSet<AutopilotError>();

/** Whether an error says the database is empty or damaged (not: unreadable for this user, busy, missing). */
export const isDamagedState = (e: unknown): boolean => e instanceof AutopilotError && DAMAGED.has(e);

export function damagedError(file: string, why: string, cause?: unknown): AutopilotError {
  const err = new AutopilotError(
    'STATE_FAILED',
    `the state database ${file} ${why}: the records of backups and runs in it cannot be read`,
    {
      hint:
        "run 'homelab-autopilot state rebuild': it keeps the file aside (state.db.damaged-<time>) and rebuilds the records " +
        'of the archives from backup.root and the destinations (name, size, sha256, verification)',
      cause,
    },
  );
  DAMAGED.add(err);
  return err;
}

/**
 * Refuses a database file of 0 bytes (SQLite would take it for a new, empty one, and every
 * recorded archive would drop out of listings and retention) and one that fails SQLite's quick check.
 */
export function checkSound(file: string, db?: Db, full = true): void {
  if (!db) {
    const size = (): number | null => {
      try {
        return fs.statSync(file).size;
      } catch {
        return null;
      }
    };
    if (size() !== 0) return;
    // another process may be creating it this very moment (its header comes a few ms later)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    if (size() === 0) throw damagedError(file, 'is empty (0 bytes)');
    return;
  }
  let rows: unknown[];
  try {
    // the full check reads the whole file (about 0.2 s for 128 MB); `full = false` only proves that
    // the file is a database whose schema can be read, for callers that open it very often
    rows = full
      ? (db.handle.pragma('quick_check') as unknown[])
      : [{ ok: db.handle.prepare('SELECT count(*) FROM sqlite_master').pluck().get() === null ? 'empty' : 'ok' }];
  } catch (e) {
    db.close();
    if (isDamage(e)) throw damagedError(file, `is damaged (${(e as Error).message})`, e);
    throw e;
  }
  const problems = rows.map((r) => String(Object.values(r as Row)[0])).filter((v) => v !== 'ok');
  if (problems.length) {
    db.close();
    throw damagedError(file, `is damaged (${problems.slice(0, 2).join('; ')})`);
  }
}

/** Opens (creating when needed) a database for writing, in WAL mode. */
export function openWritable(file: string, fullCheck = true): Db {
  checkSound(file);
  let handle: BetterSqlite3.Database;
  try {
    handle = new (driver())(file, { timeout: 10_000 });
    // switching a new database to WAL needs a moment alone with it: SQLite answers SQLITE_BUSY at
    // once (no busy wait) while another process is creating it too, so try again for a while
    for (let tries = 0; ; tries++) {
      try {
        handle.pragma('journal_mode = WAL');
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== 'SQLITE_BUSY' || tries >= 100) throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50 + Math.floor(Math.random() * 50));
      }
    }
    handle.pragma('synchronous = FULL');
    handle.pragma('foreign_keys = ON');
  } catch (e) {
    if (isDamage(e)) throw damagedError(file, `is damaged (${(e as Error).message})`, e);
    throw new AutopilotError('STATE_FAILED', `cannot open the state database ${file}: ${(e as Error).message}`, {
      hint: 'check that the file is a homelab-autopilot state database and that this user may write it',
      cause: e,
    });
  }
  const db = new Db(handle, file);
  checkSound(file, db, fullCheck);
  return db;
}

/** Opens an existing database for reading only: nothing is created. */
export function openReadOnly(file: string, fullCheck = true): Db {
  checkSound(file);
  let db: Db;
  try {
    db = new Db(new (driver())(file, { readonly: true, fileMustExist: true, timeout: 10_000 }), file);
  } catch (e) {
    if (isDamage(e)) throw damagedError(file, `is damaged (${(e as Error).message})`, e);
    throw new AutopilotError('STATE_FAILED', `cannot open the state database ${file}: ${(e as Error).message}`, { cause: e });
  }
  checkSound(file, db, fullCheck);
  return db;
}

/**
 * The schema version of `db`; a database newer than this code is closed and refused
 * (STATE_TOO_NEW), so that nothing of ours writes to a schema it does not know.
 */
export function checkedVersion(db: Db): number {
  const v = db.schemaVersion;
  if (v > SCHEMA_VERSION) {
    db.close();
    throw new AutopilotError(
      'STATE_TOO_NEW',
      `the state database ${db.file} has schema version ${v}, newer than this homelab-autopilot understands (${SCHEMA_VERSION})`,
      { hint: 'upgrade homelab-autopilot, or point global.state_dir at another folder' },
    );
  }
  return v;
}

/** Brings the schema up to date, one migration per immediate transaction. */
export function migrate(db: Db): void {
  let v0: number;
  try {
    v0 = checkedVersion(db);
  } catch (e) {
    if (isDamage(e)) throw damagedError(db.file, `is damaged (${(e as Error).message})`, e);
    throw e;
  }
  for (let v = v0; v < SCHEMA_VERSION; v++) {
    db.immediate(() => {
      // re-read inside the write transaction: another process may have migrated meanwhile
      if (db.schemaVersion !== v) return;
      db.handle.exec(MIGRATIONS[v]);
      db.handle.pragma(`user_version = ${v + 1}`);
    });
  }
}
