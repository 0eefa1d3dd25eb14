import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { collectMetrics, type MetricsDeps } from '../../core/metrics';
import { clearSecrets, registerSecret } from '../../lib/mask';
import { StateManager } from '../../lib/state';
import { cleanupTmp, tmpDir } from '../helpers/cli';
import { parseProm, samples, value } from '../helpers/prom';

afterAll(cleanupTmp);
afterEach(clearSecrets);

const P = 'homelab_autopilot_';

function config(
  dir: string,
  extra: Partial<{ destinations: { name: string; path: string; enabled: boolean }[] }> = {},
): MetricsDeps['config'] {
  return {
    backup: { root: path.join(dir, 'backups'), destinations: extra.destinations ?? [] },
    monitoring: { resources: { mounts: [] } },
  } as unknown as MetricsDeps['config'];
}

/** Sets a run's times, which the runs table takes from the clock. */
function setTimes(dir: string, id: number, started: string, ended: string): void {
  const db = new Database(path.join(dir, 'state.db'));
  db.prepare('UPDATE runs SET started_at = ?, ended_at = ? WHERE id = ?').run(started, ended, id);
  db.close();
}

function seedRuns(state: StateManager, dir: string): void {
  // backup: an older success, then a newer failure (with a child run that must not count)
  const ok = state.startRun('backup', 'all');
  state.finishRun(ok, 'success');
  setTimes(dir, ok, '2024-05-01T02:00:00.000Z', '2024-05-01T02:10:00.000Z');
  const bad = state.startRun('backup', 'all');
  const child = state.startRun('backup', 'alpha', { parentId: bad });
  state.finishRun(child, 'success');
  state.finishRun(bad, 'failed');
  setTimes(dir, bad, '2024-05-02T02:00:00.000Z', '2024-05-02T02:00:30.000Z');
  setTimes(dir, child, '2024-05-02T02:00:00.000Z', '2024-05-02T02:05:00.000Z');
  // update: success; a dry run after it is left out
  const up = state.startRun('update', 'all');
  state.finishRun(up, 'success');
  setTimes(dir, up, '2024-05-03T04:00:00.000Z', '2024-05-03T04:01:30.000Z');
  const dry = state.startRun('update', 'all', { dryRun: true });
  state.finishRun(dry, 'failed');
  // restore_test: interrupted; monitor: one running now, none finished yet
  const rt = state.startRun('restore_test', 'all');
  state.finishRun(rt, 'interrupted');
  setTimes(dir, rt, '2024-05-04T05:00:00.000Z', '2024-05-04T05:00:05.000Z');
  state.startRun('monitor', 'all');
}

function seedArtifacts(state: StateManager): void {
  const base = { runId: null, sha256: null };
  state.addArtifact({
    ...base,
    service: 'alpha',
    destination: 'primary',
    location: '/b/alpha/1',
    size: 100,
    createdAt: '2024-05-01T02:01:00.000Z',
    verifyStatus: 'ok',
  });
  state.addArtifact({
    ...base,
    service: 'alpha',
    destination: 'primary',
    location: '/b/alpha/2',
    size: 200,
    createdAt: '2024-05-02T02:01:00.000Z',
    verifyStatus: 'ok',
  });
  // newer, but failed verification: not counted
  state.addArtifact({
    ...base,
    service: 'alpha',
    destination: 'primary',
    location: '/b/alpha/3',
    size: 999,
    createdAt: '2024-05-03T02:01:00.000Z',
    verifyStatus: 'failed',
  });
  // newer, but deleted by retention: not counted
  const gone = state.addArtifact({
    ...base,
    service: 'beta',
    destination: 'primary',
    location: '/b/beta/2',
    size: 777,
    createdAt: '2024-05-03T02:01:00.000Z',
    verifyStatus: 'ok',
  });
  state.markArtifactDeleted(gone);
  state.addArtifact({
    ...base,
    service: 'beta',
    destination: 'nas',
    location: '/n/beta/1',
    size: 50,
    createdAt: '2024-05-02T03:00:00.000Z',
    verifyStatus: 'ok',
  });
  // a guest backup left to the backup server's own verification
  state.addArtifact({
    ...base,
    service: 'vm',
    destination: 'pve:pbs',
    location: 'pbs:backup/vm/100',
    size: 4096,
    createdAt: '2024-05-02T04:00:00.000Z',
    verifyStatus: 'pending',
  });
  // never verified: no series
  state.addArtifact({
    ...base,
    service: 'never',
    destination: 'primary',
    location: '/b/never/1',
    size: 1,
    createdAt: '2024-05-02T04:00:00.000Z',
  });
}

function seedNotifications(state: StateManager): void {
  const n = { event: 'backup_failed', severity: 'error', subject: 'alpha', title: 't', attempts: 1, error: null, runId: null };
  for (let i = 0; i < 3; i++) state.recordNotification({ ...n, channel: 'mail', status: 'sent' });
  state.recordNotification({ ...n, channel: 'mail', status: 'failed' });
  state.recordNotification({ ...n, channel: 'hook', status: 'suppressed' });
}

/** One result, the check's state left as it is (setState changes it). */
function recordResult(
  state: StateManager,
  id: number,
  r: { at: Date; ok: boolean; ms: number; detail: string; value?: number },
  counters: { fails: number; oks: number },
): void {
  const row = state.monitor.listChecks().find((c) => c.id === id)!;
  state.monitor.record(id, r, { ...counters, health: row.health, state: row.state }, row);
}

function seedChecks(state: StateManager): void {
  const at = new Date('2024-05-05T10:00:00.000Z');
  const web = state.monitor.ensureCheck({ key: 'web/http', subject: 'web', label: 'http', type: 'http' }, at.toISOString());
  recordResult(state, web.id, { at, ok: true, ms: 120, detail: 'status 200' }, { fails: 0, oks: 1 });
  state.monitor.setState(web.id, 'PENDING', 'UP', at, null);
  const db = state.monitor.ensureCheck({ key: 'db/tcp', subject: 'db', label: 'tcp 5432', type: 'tcp' }, at.toISOString());
  recordResult(state, db.id, { at, ok: false, ms: 5000, detail: 'no answer' }, { fails: 3, oks: 0 });
  state.monitor.setState(db.id, 'UP', 'DOWN', at, 'no answer');
  // a label with a secret, a quote, a backslash and a newline: masked, then escaped
  const odd = state.monitor.ensureCheck(
    { key: 'api/x', subject: 'api', label: 'GET https://api.example/hook?token=S3cretT0kenValue "q" \\ \nend', type: 'http' },
    at.toISOString(),
  );
  state.monitor.setState(odd.id, 'PENDING', 'MAINTENANCE', at, 'backup');
  const disk = state.monitor.ensureCheck({ key: 'host/disk /', subject: 'host', label: 'disk /', type: 'disk' }, at.toISOString());
  recordResult(state, disk.id, { at, ok: true, ms: 1, detail: '42.5 % used', value: 42.5 }, { fails: 0, oks: 1 });
  state.monitor.setState(disk.id, 'PENDING', 'UP', at, null);
  state.monitor.ensureCheck({ key: 'new/http', subject: 'new', label: 'http', type: 'http' }, at.toISOString()); // PENDING, never run
}

describe('collectMetrics', () => {
  it('reads checks, jobs, backups, notifications and free space from a real state database', async () => {
    const dir = tmpDir();
    const state = StateManager.open(dir);
    registerSecret('S3cretT0kenValue');
    seedRuns(state, dir);
    seedArtifacts(state);
    seedNotifications(state);
    seedChecks(state);
    fs.mkdirSync(path.join(dir, 'backups'));
    const out = await collectMetrics({
      config: config(dir, {
        destinations: [
          { name: 'nas', path: dir, enabled: true },
          { name: 'off', path: '/nonexistent-x', enabled: false },
        ],
      }),
      state,
    });
    state.close();
    expect(out.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const p = parseProm(out.body);

    // checks
    const web = { subject: 'web', check: 'http', type: 'http' };
    expect(value(p, P + 'check_up', web)).toBe(1);
    expect(value(p, P + 'check_up', { subject: 'db' })).toBe(0);
    expect(samples(p, P + 'check_up', { subject: 'api' })).toEqual([]); // MAINTENANCE
    expect(samples(p, P + 'check_up', { subject: 'new' })).toEqual([]); // PENDING
    expect(value(p, P + 'check_state', { ...web, state: 'UP' })).toBe(1);
    expect(value(p, P + 'check_state', { ...web, state: 'DOWN' })).toBe(0);
    expect(samples(p, P + 'check_state', web)).toHaveLength(5);
    expect(value(p, P + 'check_state', { subject: 'db', state: 'DOWN' })).toBe(1);
    expect(value(p, P + 'check_state', { subject: 'new', state: 'PENDING' })).toBe(1);
    expect(value(p, P + 'check_response_seconds', web)).toBeCloseTo(0.12);
    expect(value(p, P + 'check_response_seconds', { subject: 'db' })).toBe(5);
    expect(value(p, P + 'check_value', { subject: 'host', type: 'disk' })).toBe(42.5);
    expect(value(p, P + 'check_last_ok_timestamp_seconds', web)).toBe(Date.parse('2024-05-05T10:00:00Z') / 1000);
    expect(samples(p, P + 'check_last_ok_timestamp_seconds', { subject: 'db' })).toEqual([]);
    const odd = samples(p, P + 'check_state', { subject: 'api', state: 'MAINTENANCE' })[0];
    expect(odd.labels.check).toBe('GET https://api.example/hook?token=******** "q" \\ \nend');
    expect(out.body).not.toContain('S3cretT0kenValue');

    // jobs: the newest finished top-level run of each kind
    expect(value(p, P + 'job_last_status', { kind: 'backup', status: 'failed' })).toBe(1);
    expect(value(p, P + 'job_last_status', { kind: 'backup', status: 'success' })).toBe(0);
    expect(value(p, P + 'job_last_success_timestamp_seconds', { kind: 'backup' })).toBe(Date.parse('2024-05-01T02:10:00Z') / 1000);
    expect(value(p, P + 'job_last_run_timestamp_seconds', { kind: 'backup' })).toBe(Date.parse('2024-05-02T02:00:30Z') / 1000);
    expect(value(p, P + 'job_last_run_duration_seconds', { kind: 'backup' })).toBe(30);
    expect(value(p, P + 'job_last_run_duration_seconds', { kind: 'update' })).toBe(90);
    expect(value(p, P + 'job_last_status', { kind: 'update', status: 'success' })).toBe(1);
    expect(value(p, P + 'job_last_status', { kind: 'restore_test', status: 'interrupted' })).toBe(1);
    expect(samples(p, P + 'job_last_success_timestamp_seconds', { kind: 'restore_test' })).toEqual([]);
    expect(samples(p, P + 'job_last_status', { kind: 'monitor' })).toEqual([]); // running, never finished
    expect(value(p, P + 'job_running', { kind: 'backup' })).toBe(0);

    // backups: newest verified (or pending) and not deleted, per service
    expect(value(p, P + 'backup_last_size_bytes', { service: 'alpha' })).toBe(200);
    expect(value(p, P + 'backup_last_timestamp_seconds', { service: 'alpha' })).toBe(Date.parse('2024-05-02T02:01:00Z') / 1000);
    expect(value(p, P + 'backup_last_size_bytes', { service: 'beta' })).toBe(50);
    expect(value(p, P + 'backup_last_size_bytes', { service: 'vm' })).toBe(4096);
    expect(samples(p, P + 'backup_last_size_bytes', { service: 'never' })).toEqual([]);

    // notifications
    expect(p.types[P + 'notifications_total']).toBe('counter');
    expect(value(p, P + 'notifications_total', { channel: 'mail', status: 'sent' })).toBe(3);
    expect(value(p, P + 'notifications_total', { channel: 'mail', status: 'failed' })).toBe(1);
    expect(value(p, P + 'notifications_total', { channel: 'hook', status: 'suppressed' })).toBe(1);

    // free space of the root and the enabled destination; a disabled one is not looked at
    const st = fs.statfsSync(dir);
    const ratio = value(p, P + 'filesystem_used_ratio', { path: path.join(dir, 'backups') });
    expect(ratio).toBeGreaterThan(0);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(value(p, P + 'filesystem_size_bytes', { path: dir })).toBe(st.blocks * st.bsize);
    expect(Math.abs(value(p, P + 'filesystem_avail_bytes', { path: dir }) - st.bavail * st.bsize)).toBeLessThan(64 * 1024 * 1024);
    expect(samples(p, P + 'filesystem_used_ratio', { path: '/nonexistent-x' })).toEqual([]);

    // no process metrics unless asked; the daemon asks
    expect(p.samples.some((s) => s.name.startsWith('process_') || s.name.startsWith('nodejs_'))).toBe(false);
    expect(value(p, P + 'build_info')).toBe(1);
  });

  it('adds process metrics when asked, twice without registering them twice', async () => {
    const dir = tmpDir();
    const deps = { config: config(dir), state: null };
    for (let i = 0; i < 2; i++) {
      const p = parseProm((await collectMetrics(deps, { processMetrics: true })).body);
      expect(samples(p, 'process_cpu_user_seconds_total')).toHaveLength(1);
      expect(samples(p, 'nodejs_heap_size_used_bytes')).toHaveLength(1);
      expect(value(p, P + 'build_info')).toBe(1);
    }
    // without state: no series of state, and no error
    const p = parseProm((await collectMetrics(deps)).body);
    expect(samples(p, P + 'check_up')).toEqual([]);
  });

  it('is read fresh on every call: nothing is kept between scrapes', async () => {
    const dir = tmpDir();
    const state = StateManager.open(dir);
    const deps = { config: config(dir), state };
    const c = state.monitor.ensureCheck({ key: 'a/http', subject: 'a', label: 'http', type: 'http' }, new Date().toISOString());
    state.monitor.setState(c.id, 'PENDING', 'UP', new Date(), null);
    expect(value(parseProm((await collectMetrics(deps)).body), P + 'check_up', { subject: 'a' })).toBe(1);
    state.monitor.setState(c.id, 'UP', 'DOWN', new Date(), null);
    expect(value(parseProm((await collectMetrics(deps)).body), P + 'check_up', { subject: 'a' })).toBe(0);
    state.monitor.forgetUnseen(new Date(Date.now() + 1000).toISOString());
    expect(samples(parseProm((await collectMetrics(deps)).body), P + 'check_up')).toEqual([]);
    state.close();
  });

  it('answers quickly with 1,000 checks (the time is printed)', async () => {
    const dir = tmpDir();
    const state = StateManager.open(dir);
    const at = new Date();
    for (let i = 0; i < 1000; i++) {
      const c = state.monitor.ensureCheck(
        { key: `s${i % 100}/http ${i}`, subject: `s${i % 100}`, label: `http ${i}`, type: 'http' },
        at.toISOString(),
      );
      recordResult(state, c.id, { at, ok: i % 7 !== 0, ms: i, detail: '' }, { fails: 0, oks: 1 });
      state.monitor.setState(c.id, 'PENDING', i % 7 ? 'UP' : 'DOWN', at, null);
    }
    const deps = { config: config(dir), state };
    await collectMetrics(deps); // warm: prom-client loaded, statements prepared
    const t0 = process.hrtime.bigint();
    const out = await collectMetrics(deps);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    state.close();
    const p = parseProm(out.body);
    expect(samples(p, P + 'check_up')).toHaveLength(1000);
    expect(samples(p, P + 'check_up').filter((s) => s.value === 0)).toHaveLength(143);
    expect(samples(p, P + 'check_state')).toHaveLength(5000);
    console.log(`collectMetrics with 1,000 checks: ${ms.toFixed(1)} ms, ${out.body.length} bytes`);
    expect(ms).toBeLessThan(5000); // loose: the figure is the printed one
  });
});
