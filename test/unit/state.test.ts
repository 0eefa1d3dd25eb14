import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { AutopilotError } from '../../lib/errors';
import { StateManager } from '../../lib/state';
import { SCHEMA_VERSION } from '../../lib/state/migrations';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

describe('state manager', () => {
  it('creates the database in WAL mode with the current schema version', () => {
    const dir = tmpDir();
    const s = StateManager.open(path.join(dir, 'nested', 'state'));
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    s.close();
    const db = new Database(path.join(dir, 'nested', 'state', 'state.db'));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('refuses a database newer than the code, without touching it', () => {
    const dir = tmpDir();
    StateManager.open(dir).close();
    const db = new Database(path.join(dir, 'state.db'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    let err: unknown;
    try {
      StateManager.open(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AutopilotError);
    expect((err as AutopilotError).code).toBe('STATE_TOO_NEW');
    expect((err as AutopilotError).message).toMatch(/newer than this homelab-autopilot understands/);
    const check = new Database(path.join(dir, 'state.db'));
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
    check.close();
  });

  it('stores JSON values under dotted keys and lists them by prefix', () => {
    const s = StateManager.open(tmpDir());
    s.set('last_backup.nextcloud', { at: '2026-01-01' });
    s.set('last_backup.host', 3);
    s.set('last_backupx.other', true);
    expect(s.get('last_backup.nextcloud')).toEqual({ at: '2026-01-01' });
    expect(s.exists('last_backup.host')).toBe(true);
    expect(s.list('last_backup')).toEqual({ host: 3, nextcloud: { at: '2026-01-01' } });
    s.delete('last_backup.host');
    expect(s.exists('last_backup.host')).toBe(false);
    expect(s.get('missing', 'fallback')).toBe('fallback');
    s.close();
  });

  it('keeps each plugin store separate', () => {
    const s = StateManager.open(tmpDir());
    const a = s.pluginStore('a');
    const b = s.pluginStore('b');
    a.set('k', 1);
    expect(b.exists('k')).toBe(false);
    expect(a.get('k')).toBe(1);
    s.close();
  });

  it('records runs and marks runs of dead processes as interrupted', () => {
    const dir = tmpDir();
    const s = StateManager.open(dir);
    const id = s.startRun('backup', 'all');
    s.finishRun(id, 'success', { n: 1 });
    // a run left 'running' by a process that is gone
    const db = new Database(path.join(dir, 'state.db'));
    db.prepare(
      "INSERT INTO runs (kind, target, started_at, status, host, pid) VALUES ('backup', 'x', '2026-01-01', 'running', ?, 999999)",
    ).run(require('node:os').hostname());
    db.close();
    expect(s.markInterruptedRuns()).toBe(1);
    const runs = s.listRuns();
    expect(runs.map((r) => r.status)).toEqual(['interrupted', 'success']);
    expect(runs[1].summary).toEqual({ n: 1 });
    s.close();
  });

  it('gives a lock to one holder; a second waits a bounded time and fails with LOCKED', async () => {
    const dir = tmpDir();
    const a = StateManager.open(dir);
    const b = StateManager.open(dir);
    const lock = await a.acquireLock('backup', { command: 'backup --all' });
    const t0 = Date.now();
    await expect(b.acquireLock('backup', { waitMs: 300, pollMs: 50 })).rejects.toMatchObject({ code: 'LOCKED' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    lock.release();
    const second = await b.acquireLock('backup');
    expect(second.tookOver).toBeNull();
    second.release();
    a.close();
    b.close();
  });

  it('a waiting run gets the lock as soon as it is released', async () => {
    const dir = tmpDir();
    const a = StateManager.open(dir);
    const b = StateManager.open(dir);
    const lock = await a.acquireLock('backup');
    setTimeout(() => lock.release(), 200);
    const got = await b.acquireLock('backup', { waitMs: 5000, pollMs: 50 });
    expect(got.name).toBe('backup');
    got.release();
    a.close();
    b.close();
  });

  it('takes over a lock left by a process that was killed', async () => {
    const dir = tmpDir();
    StateManager.open(dir).close();
    // a child process takes the lock and is killed with SIGKILL
    const script = `
      const { StateManager } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/lib/state'))});
      const s = StateManager.open(${JSON.stringify(dir)});
      s.acquireLock('backup', { command: 'doomed' }).then(() => { process.stdout.write('locked\\n'); setInterval(() => {}, 1000); });
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()));
    const s = StateManager.open(dir);
    expect(s.lockHolder('backup')?.pid).toBe(child.pid);
    await expect(s.acquireLock('backup')).rejects.toMatchObject({ code: 'LOCKED' });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const lock = await s.acquireLock('backup');
    expect(lock.tookOver?.pid).toBe(child.pid);
    expect(lock.tookOver?.command).toBe('doomed');
    lock.release();
    expect(s.lockHolder('backup')).toBeNull();
    s.close();
  });

  it('opens read-only without creating anything when there is no database', () => {
    const dir = tmpDir();
    expect(StateManager.openReadOnly(path.join(dir, 'none'))).toBeNull();
    expect(fs.existsSync(path.join(dir, 'none'))).toBe(false);
  });
});
