/**
 * The update engine on its step table with an injected clock: the settle window and the check
 * interval pass by moving the fake clock, never by waiting. The service is a plugin with an
 * updater (a small in-memory "service" whose health can be switched), created through the
 * real plugin registry; the state is a real SQLite database in a temporary folder.
 */
import * as path from 'node:path';
import type { AutopilotConfig } from '../../core/config/types';
import type { ServicePlugin, ServicePluginDefinition, SnapshotInfo } from '../../core/plugins/contract';
import { PluginRegistry, type PluginRecord } from '../../core/plugins/host';
import { UpdateEngine, UPDATE_STEPS } from '../../core/update/engine';
import { updateEvent } from '../../core/update/events';
import type { Clock } from '../../lib/async';
import { silentLogger } from '../../lib/log';
import { StateManager } from '../../lib/state';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

/** A clock that only moves when something sleeps on it. */
function fakeClock(start = Date.parse('2026-12-02T10:00:00Z')): Clock & { slept: number[] } {
  let t = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => new Date(t),
    async sleep(ms) {
      slept.push(ms);
      t += ms;
    },
  };
}

/** The service: a version, data, and a health that the test scripts per check round. */
class App {
  version = 1;
  healthy: (round: number) => boolean = () => true;
  round = 0;
  calls: string[] = [];
  /** when set, the updater reports its container's start (a restart changes it) */
  startedAt: (() => string) | null = null;
  /** when set, the updater has prepare() and reports whether there is anything new */
  newRelease: boolean | null = null;
  plugin(): ServicePlugin {
    return {
      backupSources: () => ({ paths: [] }),
      updater: {
        ...(this.startedAt ? { starts: async () => [{ id: 'c1', startedAt: (this.startedAt as () => string)(), restarts: 0 }] } : {}),
        ...(this.newRelease !== null
          ? {
              prepare: async () => {
                this.calls.push('prepare');
                return { changed: Boolean(this.newRelease), summary: this.newRelease ? 'pulled: new image' : 'up to date' };
              },
            }
          : {}),
        snapshot: async (_svc, name): Promise<SnapshotInfo> => {
          this.calls.push(`snapshot ${name}`);
          return { id: name, time: new Date().toISOString(), data: { version: this.version } };
        },
        update: async () => {
          this.calls.push('update');
          this.version++;
          return { changed: true, summary: `now at version ${this.version}` };
        },
        rollback: async (_svc, snap) => {
          this.calls.push(`rollback ${snap.id}`);
          this.version = Number(snap.data?.version);
          this.healthy = () => true;
        },
        deleteSnapshot: async (_svc, snap) => void this.calls.push(`delete ${snap.id}`),
        isRunning: async () => this.healthy(++this.round),
      },
    };
  }
}

function engine(app: App, clock: Clock, state: StateManager, settle = 60, interval = 5): UpdateEngine {
  const def: ServicePluginDefinition = { name: 'toy', kind: 'service', version: '1.0.0', apiVersion: '^1.4.0', create: () => app.plugin() };
  const record: PluginRecord = {
    name: 'toy',
    kind: 'service',
    version: '1.0.0',
    apiVersion: '^1.4.0',
    description: null,
    source: 'plugins.d',
    file: '/plugins.d/toy.js',
    status: 'loaded',
    reason: null,
    capabilities: ['updater'],
  };
  const registry = new PluginRegistry([{ def, record, instance: app.plugin() }], [], '/plugins.d');
  const config = {
    global: { lock_wait: 0 },
    updates: {
      settle_seconds: settle,
      check_interval: interval,
      keep_snapshots: 1,
      timeout: 60,
      min_free_mb: 0,
      lock_wait: 0,
      parallel: 1,
    },
    services: [{ name: 'web', type: 'toy', enabled: true, backup: true }],
  } as unknown as AutopilotConfig;
  return new UpdateEngine({ config, registry, logger: silentLogger, state, signal: new AbortController().signal, clock });
}

describe('the update engine with an injected clock', () => {
  let state: StateManager;
  beforeEach(() => {
    state = StateManager.open(path.join(tmpDir(), 'state'));
  });
  afterEach(() => state.close());

  it('a healthy update stays healthy for the whole settle window, and cleanup keeps the newest snapshot', async () => {
    const app = new App();
    const clock = fakeClock();
    const r = await engine(app, clock, state).run({ services: ['web'], all: false, dryRun: false });
    const web = r.services[0];
    expect(web.status).toBe('success');
    expect(web.steps.map((s) => `${s.step}:${s.status}`)).toEqual([
      'precheck:success',
      'snapshot:success',
      'update:success',
      'validate:success',
      'cleanup:success',
    ]);
    expect(web.steps.find((s) => s.step === 'validate')?.detail).toMatch(/^healthy for 60s \(13 rounds\)/);
    // a round every interval from 0 to 60 s, and no real waiting
    expect(clock.slept).toEqual(Array(12).fill(5000));
    expect(web.snapshot?.id).toBe('autopilot_20261202_' + web.snapshot?.id.slice(-6));
    expect(app.version).toBe(2);
  });

  it('a service that stays unhealthy is rolled back when the settle window is over, measured on the clock', async () => {
    const app = new App();
    const clock = fakeClock();
    // healthy for the pre-check, then never again until the rollback
    app.healthy = (round) => round === 1;
    const r = await engine(app, clock, state, 30, 10).run({ services: ['web'], all: false, dryRun: false });
    const web = r.services[0];
    expect(web.status).toBe('rolled_back');
    expect(web.error).toMatch(/^validation failed: still unhealthy after 4 rounds \(30s\)/);
    expect(web.steps.map((s) => `${s.step}:${s.status}`)).toEqual([
      'precheck:success',
      'snapshot:success',
      'update:success',
      'validate:failed',
      'rollback:success',
      'revalidate:success',
    ]);
    // validation: checks at 0, 10, 20 and 30 s (the end of the window); revalidation: healthy at 0, 10, 20 and 30 s
    expect(clock.slept).toEqual(Array(6).fill(10000));
    expect(app.version).toBe(1);
    expect(app.calls.filter((c) => c.startsWith('rollback'))).toHaveLength(1);
  });

  it('a crash after the first good round is caught by the second', async () => {
    const app = new App();
    const clock = fakeClock();
    app.healthy = (round) => round !== 3 && round < 4;
    const r = await engine(app, clock, state, 5, 5).run({ services: ['web'], all: false, dryRun: false });
    expect(r.services[0].status).toBe('rolled_back');
  });

  it('a release that crashes a while after it started (after several good rounds) is rolled back', async () => {
    const app = new App();
    const clock = fakeClock();
    // round 1 is the pre-check; validation passes rounds 2-4 (0, 5 and 10 s), then it is down
    app.healthy = (round) => round <= 4;
    const r = await engine(app, clock, state, 30, 5).run({ services: ['web'], all: false, dryRun: false });
    expect(r.services[0].status).toBe('rolled_back');
    expect(r.services[0].error).toMatch(/^validation failed: unhealthy again 15s after it was first healthy: running: /);
    expect(app.version).toBe(1);
  });

  it('a container that restarts within the settle window fails validation, though every check passes', async () => {
    const app = new App();
    const clock = fakeClock();
    // docker restarted it 20 s into the window (restart: unless-stopped): it is running again at every check
    app.startedAt = () => (clock.now().getTime() - Date.parse('2026-12-02T10:00:00Z') < 20_000 ? 'start-1' : 'start-2');
    const r = await engine(app, clock, state, 60, 5).run({ services: ['web'], all: false, dryRun: false });
    expect(r.services[0].status).toBe('rolled_back');
    expect(r.services[0].error).toMatch(/^validation failed: restarted within the settle window \(c1\), 20s after it was first healthy/);
    expect(app.calls.filter((c) => c.startsWith('rollback'))).toHaveLength(1);
  });

  it('nothing new after prepare (the pull): up to date, with no snapshot, no update and no validation', async () => {
    const app = new App();
    app.newRelease = false;
    const clock = fakeClock();
    const r = await engine(app, clock, state).run({ services: ['web'], all: false, dryRun: false });
    const web = r.services[0];
    expect(web.status).toBe('unchanged');
    expect(web.steps.map((s) => `${s.step}:${s.status}`)).toEqual(['precheck:success', 'prepare:success']);
    expect(app.calls).toEqual(['prepare']);
    expect(web.snapshot).toBeUndefined();
    expect(state.updateSnapshots.list('web')).toEqual([]);
    // and something new goes on to the snapshot
    app.newRelease = true;
    const again = await engine(app, clock, state).run({ services: ['web'], all: false, dryRun: false });
    expect(again.services[0].status).toBe('success');
    expect(app.calls.slice(1, 4)).toEqual(['prepare', expect.stringMatching(/^snapshot autopilot_/), 'update']);
  });

  it('a lock held by another update is reported with its code (the command exits 75)', async () => {
    const app = new App();
    const holder = StateManager.open(path.dirname(state.file));
    const lock = await holder.acquireLock('update.web', { command: 'update web' });
    try {
      // held (by a live process: this one, through another handle)
      const r = await engine(app, fakeClock(), state).run({ services: ['web'], all: false, dryRun: false });
      expect(r.services[0]).toMatchObject({ status: 'failed', code: 'LOCKED' });
      expect(r.services[0].hint).toMatch(/--lock-wait/);
      expect(app.calls).toEqual([]);
    } finally {
      lock.release();
      holder.close();
    }
  });

  it('update_failed is critical, as docs/notifications.md says, also when nothing was changed', async () => {
    const app = new App();
    app.healthy = () => false;
    const r = await engine(app, fakeClock(), state).run({ services: ['web'], all: false, dryRun: false });
    expect(r.services[0].status).toBe('failed');
    expect(updateEvent(r.services[0])).toMatchObject({ event: 'update_failed', severity: 'critical' });
  });

  it('two updates within the same second get distinct snapshot names', async () => {
    const app = new App();
    const frozen: Clock = { now: () => new Date(2026, 11, 2, 3, 0, 0), sleep: async () => {} };
    // no settle window: time stands still here
    const first = await engine(app, frozen, state, 0).run({ services: ['web'], all: false, dryRun: false });
    const second = await engine(app, frozen, state, 0).run({ services: ['web'], all: false, dryRun: false });
    expect(first.services[0].snapshot?.id).toBe('autopilot_20261202_030000');
    expect(second.services[0].snapshot?.id).toBe('autopilot_20261202_030000_2');
    expect(second.services[0].status).toBe('success');
  });

  it('"rollback failed" and "not done" are incidents of their own causes, so one never holds the other back', () => {
    const base = { service: 'web', type: 'toy', steps: [], durationMs: 1 };
    const notDone = updateEvent({ ...base, status: 'failed', error: 'pre-checks failed' });
    const rollbackFailed = updateEvent({ ...base, status: 'rollback_failed', error: 'broken' });
    expect(notDone).toMatchObject({ event: 'update_failed', severity: 'critical', cause: 'not_done' });
    expect(rollbackFailed).toMatchObject({ event: 'update_failed', severity: 'critical', cause: 'rollback_failed' });
  });

  it('--dry-run walks the same table and changes nothing', async () => {
    const app = new App();
    const r = await engine(app, fakeClock(), state).run({ services: ['web'], all: false, dryRun: true });
    const web = r.services[0];
    expect(web.status).toBe('planned');
    const mainAndUndo = [...UPDATE_STEPS.map((s) => s.id), ...UPDATE_STEPS.flatMap((s) => (s.undo ?? []).map((u) => u.id))];
    // the toy updater has no prepare(): that step does not apply to it
    expect(web.steps.map((s) => s.step)).toEqual(mainAndUndo.filter((id) => id !== 'prepare'));
    expect(app.calls).toEqual([]);
    expect(app.version).toBe(1);
  });
});
