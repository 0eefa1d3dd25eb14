import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { AutopilotError } from '../../lib/errors';
import * as os from 'node:os';
import { listBackups, listHistory, listNotifications, protectBackup } from '../../core/queries';
import { processAlive, processStartTime } from '../../lib/proc';
import { StateManager, type NewArtifact } from '../../lib/state';
import { MIGRATIONS, SCHEMA_VERSION } from '../../lib/state/migrations';
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
    ).run(os.hostname());
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

/** An artifact as the backup engine records it, with what a test cares about overridden. */
function artifact(over: Partial<NewArtifact> = {}): NewArtifact {
  return {
    runId: null,
    service: 'web',
    destination: 'primary',
    location: '/nonexistent/web_20260101_000000.tar.zst',
    size: 100,
    sha256: 'ab'.repeat(32),
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

describe('migration 5: verification status and detail', () => {
  /** A database as version 4 of the schema left it, with the verify_result strings that version wrote. */
  function v4Database(dir: string, results: (string | null)[]): void {
    const db = new Database(path.join(dir, 'state.db'));
    for (const m of MIGRATIONS.slice(0, 4)) db.exec(m);
    db.pragma('user_version = 4');
    const insert = db.prepare(
      "INSERT INTO artifacts (service, destination, location, size, created_at, verify_result) VALUES ('web', 'primary', ?, 1, ?, ?)",
    );
    results.forEach((r, i) => insert.run(`/b/${i}.tar.zst`, `2026-01-0${i + 1}T00:00:00.000Z`, r));
    db.close();
  }

  it('splits the old verify_result strings into verifyStatus and verifyDetail', () => {
    const dir = tmpDir();
    v4Database(dir, [
      'ok: 12 entries',
      'pending: 5 bytes on PBS; PBS verifies it in its verify jobs',
      'failed: zstd: /b/2.tar.zst: Read error (39) : premature end',
      null,
      'ok',
      'something else',
    ]);
    // a reader cannot migrate: it sees no database it understands yet
    expect(StateManager.openReadOnly(dir)).toBeNull();
    const s = StateManager.open(dir);
    expect(s.schemaVersion).toBe(SCHEMA_VERSION);
    const byLocation = new Map(s.listArtifacts().map((a) => [a.location, a]));
    const got = (i: number): unknown => {
      const a = byLocation.get(`/b/${i}.tar.zst`)!;
      return [a.verifyStatus, a.verifyDetail];
    };
    expect(got(0)).toEqual(['ok', '12 entries']);
    expect(got(1)).toEqual(['pending', '5 bytes on PBS; PBS verifies it in its verify jobs']);
    expect(got(2)).toEqual(['failed', 'zstd: /b/2.tar.zst: Read error (39) : premature end']);
    expect(got(3)).toEqual([null, null]);
    expect(got(4)).toEqual(['ok', null]);
    // never written by any version: kept as text, but not claimed verified
    expect(got(5)).toEqual([null, 'something else']);
    expect(byLocation.get('/b/0.tar.zst')).not.toHaveProperty('verifyResult');
    s.close();
    // the old column is left as it was
    const db = new Database(path.join(dir, 'state.db'));
    expect(db.prepare("SELECT verify_result FROM artifacts WHERE location = '/b/0.tar.zst'").get()).toEqual({
      verify_result: 'ok: 12 entries',
    });
    db.close();
  });

  it('admits only ok, pending and failed as a status', () => {
    const dir = tmpDir();
    StateManager.open(dir).close();
    const db = new Database(path.join(dir, 'state.db'));
    const insert = db.prepare(
      "INSERT INTO artifacts (service, destination, location, size, created_at, verify_status) VALUES ('web', 'primary', ?, 1, '2026-01-01', ?)",
    );
    expect(() => insert.run('/a', 'verified')).toThrow(/CHECK constraint failed/);
    expect(() => insert.run('/b', 'pending')).not.toThrow();
    db.close();
  });

  it('records a new artifact with its status and detail; recording it again replaces both', () => {
    const s = StateManager.open(tmpDir());
    const id = s.addArtifact(artifact({ verifiedAt: '2026-01-01T00:01:00.000Z', verifyStatus: 'failed', verifyDetail: 'tar: bad' }));
    expect(s.getArtifact(id)).toMatchObject({ verifyStatus: 'failed', verifyDetail: 'tar: bad', protected: false, deletedAt: null });
    s.markArtifactDeleted(id);
    s.addArtifact(artifact({ verifyStatus: 'ok', verifyDetail: '3 entries', size: 200 }));
    const all = s.listArtifacts({ includeDeleted: true });
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ id, size: 200, verifyStatus: 'ok', verifyDetail: '3 entries', deletedAt: null });
    const unverified = s.addArtifact(artifact({ location: '/other' }));
    expect(s.getArtifact(unverified)).toMatchObject({ verifyStatus: null, verifyDetail: null, verifiedAt: null });
    s.close();
  });
});

describe('typed kv accessors', () => {
  it('keeps cooldowns under the keys earlier versions used', () => {
    const s = StateManager.open(tmpDir());
    // written by an earlier version
    s.set('notify.last.backup_failed.web', '2026-01-01T00:00:00.000Z');
    expect(s.cooldown.lastSent('backup_failed', 'web')).toBe('2026-01-01T00:00:00.000Z');
    expect(s.cooldown.lastSent('backup_failed', 'db')).toBeUndefined();
    expect(s.cooldown.lastSent('backup_success', 'web')).toBeUndefined();
    s.cooldown.markSent('backup_failed', 'db', '2026-02-01T00:00:00.000Z');
    expect(s.get('notify.last.backup_failed.db')).toBe('2026-02-01T00:00:00.000Z');

    expect(s.cooldown.isFailing('health_failed', 'web')).toBe(false);
    s.cooldown.markFailing('health_failed', 'web', '2026-02-02T00:00:00.000Z');
    expect(s.cooldown.isFailing('health_failed', 'web')).toBe(true);
    expect(s.cooldown.isFailing('health_failed', 'db')).toBe(false);
    expect(s.get('notify.failing.health_failed.web')).toBe('2026-02-02T00:00:00.000Z');
    s.cooldown.clearFailing('health_failed', 'web');
    expect(s.cooldown.isFailing('health_failed', 'web')).toBe(false);
    expect(s.exists('notify.failing.health_failed.web')).toBe(false);
    s.close();
  });

  it('keeps each service’s update snapshots in order, under update.snapshots.<service>', () => {
    const s = StateManager.open(tmpDir());
    expect(s.updateSnapshots.list('web')).toEqual([]);
    s.updateSnapshots.add('web', { id: 'autopilot-1', createdAt: 'a' });
    s.updateSnapshots.add('web', { id: 'autopilot-2', createdAt: 'b' });
    s.updateSnapshots.add('db', { id: 'autopilot-9', createdAt: 'c' });
    expect(s.updateSnapshots.list<{ id: string; createdAt: string }>('web')).toEqual([
      { id: 'autopilot-1', createdAt: 'a' },
      { id: 'autopilot-2', createdAt: 'b' },
    ]);
    s.updateSnapshots.remove('web', 'autopilot-1');
    s.updateSnapshots.remove('web', 'not-there');
    expect(s.updateSnapshots.list('web').map((x) => x.id)).toEqual(['autopilot-2']);
    expect(s.get('update.snapshots.web')).toEqual([{ id: 'autopilot-2', createdAt: 'b' }]);
    expect(s.updateSnapshots.list('db').map((x) => x.id)).toEqual(['autopilot-9']);
    s.close();
  });
});

describe('locks and processes', () => {
  it('tells a live process from a dead one and from a reused PID', () => {
    const start = processStartTime(process.pid);
    expect(start).toMatch(/^\d+$/);
    expect(processAlive(process.pid, start)).toBe(true);
    expect(processAlive(process.pid, '1')).toBe(false);
    expect(processAlive(999_999_999, null)).toBe(false);
  });

  it('shows a lock left by a dead process as held, but not as live', () => {
    const dir = tmpDir();
    const s = StateManager.open(dir);
    const db = new Database(path.join(dir, 'state.db'));
    db.prepare(
      "INSERT INTO locks (name, token, host, pid, acquired_at, command) VALUES ('backup', 't', ?, 999999999, '2026-01-01', 'gone')",
    ).run(os.hostname());
    db.prepare(
      "INSERT INTO locks (name, token, host, pid, acquired_at) VALUES ('elsewhere', 't', 'other-host', 999999999, '2026-01-01')",
    ).run();
    db.close();
    expect(s.lockHolder('backup')).toEqual({
      name: 'backup',
      host: os.hostname(),
      pid: 999999999,
      acquiredAt: '2026-01-01',
      command: 'gone',
    });
    expect(s.liveLockHolder('backup')).toBeNull();
    // another host's processes cannot be checked: its holder counts as alive
    expect(s.liveLockHolder('elsewhere')).toMatchObject({ host: 'other-host', command: null });
    s.close();
  });

  it('stops waiting for a lock with ABORTED when the signal fires', async () => {
    const dir = tmpDir();
    const a = StateManager.open(dir);
    const b = StateManager.open(dir);
    const lock = await a.acquireLock('backup');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    await expect(b.acquireLock('backup', { waitMs: 10_000, pollMs: 5_000, signal: ac.signal })).rejects.toMatchObject({
      code: 'ABORTED',
      message: 'cancelled while waiting for a lock',
    });
    expect(Date.now() - t0).toBeLessThan(2_000);
    lock.release();
    a.close();
    b.close();
  });
});

describe('core/queries', () => {
  it('lists runs newest first, each with its service runs oldest first and durations', () => {
    const dir = tmpDir();
    const s = StateManager.open(dir);
    const db = new Database(path.join(dir, 'state.db'));
    const insert = db.prepare(
      'INSERT INTO runs (id, parent_id, kind, target, started_at, ended_at, status, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)',
    );
    insert.run(1, null, 'backup', 'all', '2026-01-01T00:00:00.000Z', '2026-01-01T00:01:30.000Z', 'success', 'h');
    insert.run(2, 1, 'backup', 'web', '2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', 'success', 'h');
    insert.run(3, 1, 'backup', 'db', '2026-01-01T00:01:00.000Z', '2026-01-01T00:01:30.000Z', 'success', 'h');
    insert.run(4, null, 'update', 'web', '2026-01-02T00:00:00.000Z', null, 'running', 'h');
    db.close();
    const all = listHistory(s, { limit: 10 });
    expect(all.map((e) => [e.id, e.durationMs, e.children.map((c) => c.target)])).toEqual([
      [4, null, []],
      [1, 90_000, ['web', 'db']],
    ]);
    expect(listHistory(s, { kind: 'backup' }).map((e) => e.id)).toEqual([1]);
    expect(listHistory(s, { limit: 1 }).map((e) => e.id)).toEqual([4]);
    expect(listHistory(null)).toEqual([]);
    s.close();
  });

  it('lists backups with whether each is there now', () => {
    const dir = tmpDir();
    const s = StateManager.open(path.join(dir, 'state'));
    const file = path.join(dir, 'web_20260101_000000.tar.zst');
    fs.writeFileSync(file, 'x');
    s.addArtifact(artifact({ location: file, createdAt: '2026-01-04T00:00:00.000Z' }));
    s.addArtifact(artifact({ location: path.join(dir, 'gone.tar.zst'), createdAt: '2026-01-03T00:00:00.000Z' }));
    // a hypervisor's storage: a volid, not a file of this host
    s.addArtifact(
      artifact({ destination: 'pve:nas', location: 'nas:backup/vzdump-lxc-100.tar.zst', createdAt: '2026-01-02T00:00:00.000Z' }),
    );
    // any hypervisor plugin's prefix, not only Proxmox's
    s.addArtifact(artifact({ destination: 'lab:tank', location: 'tank/web-1', createdAt: '2026-01-01T12:00:00.000Z' }));
    const pruned = s.addArtifact(
      artifact({ destination: 'pve:nas', location: 'nas:backup/old.tar.zst', createdAt: '2026-01-01T00:00:00.000Z' }),
    );
    s.markArtifactDeleted(pruned);
    s.addArtifact(artifact({ service: 'db', location: file + '.db' }));
    expect(listBackups(s, { service: 'web' }).map((a) => [a.location.replace(dir, '<dir>'), a.present])).toEqual([
      ['<dir>/web_20260101_000000.tar.zst', true],
      ['<dir>/gone.tar.zst', false],
      ['nas:backup/vzdump-lxc-100.tar.zst', true],
      ['tank/web-1', true],
    ]);
    const withDeleted = listBackups(s, { service: 'web', destination: 'pve:nas', includeDeleted: true });
    expect(withDeleted.map((a) => [a.location, a.present])).toEqual([
      ['nas:backup/vzdump-lxc-100.tar.zst', true],
      ['nas:backup/old.tar.zst', false],
    ]);
    expect(listBackups(null)).toEqual([]);
    s.close();
  });

  it('protects a backup and lifts the protection; refuses unknown and pruned ids', () => {
    const s = StateManager.open(tmpDir());
    const id = s.addArtifact(artifact());
    expect(protectBackup(s, id, true)).toMatchObject({ id, protected: true });
    expect(s.getArtifact(id)?.protected).toBe(true);
    expect(protectBackup(s, id, false)).toMatchObject({ id, protected: false });
    expect(() => protectBackup(s, id + 100, true)).toThrow(
      expect.objectContaining({ code: 'USAGE', message: `no backup archive with id ${id + 100}` }),
    );
    s.markArtifactDeleted(id);
    expect(() => protectBackup(s, id, true)).toThrow(
      expect.objectContaining({ code: 'USAGE', message: `no backup archive with id ${id} (it was pruned)` }),
    );
    expect(s.getArtifact(id)?.protected).toBe(false);
    expect(() => protectBackup(null, 1, true)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    s.close();
  });

  it('lists notifications newest first, by channel and up to a limit', () => {
    const s = StateManager.open(tmpDir());
    const n = { event: 'backup_failed', severity: 'error', subject: 'web', title: 't', attempts: 1, error: null, runId: null };
    s.recordNotification({ ...n, channel: 'mail', status: 'sent' });
    s.recordNotification({ ...n, channel: 'chat', status: 'failed', error: 'HTTP 500' });
    s.recordNotification({ ...n, channel: 'mail', status: 'suppressed', attempts: 0 });
    expect(listNotifications(s).map((x) => [x.channel, x.status])).toEqual([
      ['mail', 'suppressed'],
      ['chat', 'failed'],
      ['mail', 'sent'],
    ]);
    expect(listNotifications(s, { channel: 'chat' })).toEqual([
      expect.objectContaining({ channel: 'chat', status: 'failed', error: 'HTTP 500', attempts: 1, runId: null }),
    ]);
    expect(listNotifications(s, { channel: 'mail', limit: 1 }).map((x) => x.status)).toEqual(['suppressed']);
    expect(listNotifications(null)).toEqual([]);
    s.close();
  });
});

describe('an empty or damaged database (point 18)', () => {
  const artifact: NewArtifact = {
    runId: null,
    service: 'svc',
    destination: 'primary',
    location: '/b/svc/svc_20260101_000000.tar.zst',
    size: 1,
    sha256: 'x',
    createdAt: '2026-01-01T00:00:00.000Z',
  };

  it('a 0-byte file is refused, not taken for a new database, and left as it is', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'state.db'), '');
    for (const open of [() => StateManager.open(dir), () => StateManager.openReadOnly(dir)]) {
      let err: unknown;
      try {
        open();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AutopilotError);
      expect((err as AutopilotError).code).toBe('STATE_FAILED');
      expect((err as AutopilotError).message).toContain('is empty (0 bytes)');
      expect((err as AutopilotError).hint).toContain('state rebuild');
    }
    expect(fs.statSync(path.join(dir, 'state.db')).size).toBe(0);
  });

  it('a damaged file is refused with a coded error, and setAside moves it and its WAL away', () => {
    const dir = tmpDir();
    const s = StateManager.open(dir);
    for (let i = 0; i < 200; i++) s.addArtifact({ ...artifact, location: `/b/svc/svc_20260101_000000-${i + 2}.tar.zst` });
    s.close();
    const file = path.join(dir, 'state.db');
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(size - 4096, 0xa5), 0, size - 4096, 4096);
    fs.closeSync(fd);
    expect(() => StateManager.open(dir)).toThrow(/the state database .* is damaged \(/);
    expect(() => StateManager.openReadOnly(dir)).toThrow(/is damaged/);
    fs.writeFileSync(`${file}-wal`, 'stale');
    const kept = StateManager.setAside(dir, '20260101_000000');
    expect(kept).toBe(`${file}.damaged-20260101_000000`);
    expect(fs.existsSync(`${kept}-wal`)).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    const fresh = StateManager.open(dir);
    expect(fresh.listArtifacts()).toEqual([]);
    fresh.addArtifact({ ...artifact, warning: 'vzdump: a warning' });
    expect(fresh.listArtifacts()[0].warning).toBe('vzdump: a warning');
    fresh.close();
  });
});
