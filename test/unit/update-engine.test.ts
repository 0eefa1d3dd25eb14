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
  plugin(): ServicePlugin {
    return {
      backupSources: () => ({ paths: [] }),
      updater: {
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

  it('a healthy update passes two rounds one interval apart, and cleanup keeps the newest snapshot', async () => {
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
    expect(web.steps.find((s) => s.step === 'validate')?.detail).toMatch(/^healthy after 2 rounds/);
    // one interval between the two passing rounds, and no real waiting
    expect(clock.slept).toEqual([5000]);
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
    // validation: checks at 0, 10, 20 and 30 s (the end of the window); revalidation: two passes, one interval apart
    expect(clock.slept).toEqual([10000, 10000, 10000, 10000]);
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

  it('two updates within the same second get distinct snapshot names', async () => {
    const app = new App();
    const frozen: Clock = { now: () => new Date(2026, 11, 2, 3, 0, 0), sleep: async () => {} };
    const first = await engine(app, frozen, state).run({ services: ['web'], all: false, dryRun: false });
    const second = await engine(app, frozen, state).run({ services: ['web'], all: false, dryRun: false });
    expect(first.services[0].snapshot?.id).toBe('autopilot_20261202_030000');
    expect(second.services[0].snapshot?.id).toBe('autopilot_20261202_030000_2');
    expect(second.services[0].status).toBe('success');
  });

  it('--dry-run walks the same table and changes nothing', async () => {
    const app = new App();
    const r = await engine(app, fakeClock(), state).run({ services: ['web'], all: false, dryRun: true });
    const web = r.services[0];
    expect(web.status).toBe('planned');
    const mainAndUndo = [...UPDATE_STEPS.map((s) => s.id), ...UPDATE_STEPS.flatMap((s) => (s.undo ?? []).map((u) => u.id))];
    expect(web.steps.map((s) => s.step)).toEqual(mainAndUndo);
    expect(app.calls).toEqual([]);
    expect(app.version).toBe(1);
  });
});
