/**
 * The backup engine's archive runner with an injected clock: nightly runs a day apart happen
 * in milliseconds, archive names follow the clock, and retention prunes by the clock's dates.
 * Archives are real (tar | zstd, verified), the state is a real SQLite database, the service
 * plugin is a small one created through the real registry.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupEngine } from '../../core/backup/engine';
import type { AutopilotConfig } from '../../core/config/types';
import type { ServicePlugin, ServicePluginDefinition } from '../../core/plugins/contract';
import { PluginRegistry, type PluginRecord } from '../../core/plugins/host';
import type { Clock } from '../../lib/async';
import { silentLogger } from '../../lib/log';
import { StateManager } from '../../lib/state';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

function dayClock(start: Date): Clock & { nextDay(): void } {
  let t = start.getTime();
  return { now: () => new Date(t), sleep: async (ms) => void (t += ms), nextDay: () => void (t += 86_400_000) };
}

function setup(calls: string[]): { engine: (clock: Clock) => BackupEngine; root: string; state: StateManager } {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'app.db'), 'rows\n'.repeat(1000));
  const instance: ServicePlugin = {
    backupSources: () => ({ paths: [{ path: data, required: true }] }),
    beforeBackup: () => void calls.push('before'),
    afterBackup: (_svc, _op, outcome) => void calls.push(`after ${outcome.ok ? 'ok' : 'failed'}`),
  };
  const def: ServicePluginDefinition = { name: 'toy', kind: 'service', version: '1.0.0', apiVersion: '^1.4.0', create: () => instance };
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
    capabilities: ['beforeBackup', 'afterBackup'],
  };
  const root = path.join(dir, 'backups');
  const config = {
    global: { lock_wait: 0 },
    backup: {
      root,
      compression: 'zstd',
      compression_threads: 1,
      verify: true,
      timeout: 60,
      retention: { keep_last: 2 },
      destinations: [],
      guests: {},
    },
    notifications: { digest: false, channels: [] },
    services: [{ name: 'web', type: 'toy', enabled: true, backup: true }],
  } as unknown as AutopilotConfig;
  const registry = new PluginRegistry([{ def, record, instance }], [], '/plugins.d');
  const state = StateManager.open(path.join(dir, 'state'));
  return {
    engine: (clock) => new BackupEngine({ config, registry, logger: silentLogger, state, signal: new AbortController().signal, clock }),
    root,
    state,
  };
}

describe('the backup engine with an injected clock', () => {
  it('names archives by the clock and keeps the two newest over three nightly runs', async () => {
    const calls: string[] = [];
    const { engine, root, state } = setup(calls);
    const clock = dayClock(new Date(2026, 11, 1, 2, 0, 0));
    try {
      for (let night = 0; night < 3; night++) {
        const r = await engine(clock).run({ services: [], all: true, dryRun: false });
        expect(r.ok).toBe(true);
        expect(r.services[0].archive?.verified).toBe(true);
        clock.nextDay();
      }
      expect(fs.readdirSync(path.join(root, 'web')).sort()).toEqual(['web_20261202_020000.tar.zst', 'web_20261203_020000.tar.zst']);
      const steps = state.listSteps(state.listRuns({ kind: 'backup', parentId: undefined, limit: 1 })[0].id);
      expect(steps.map((s) => `${s.step}:${s.status}`)).toEqual([
        'before:success',
        'sources:success',
        'archive:success',
        'verify:success',
        'record:success',
        'prune:success',
        'after:success',
      ]);
      expect(calls).toEqual(['before', 'after ok', 'before', 'after ok', 'before', 'after ok']);
    } finally {
      state.close();
    }
  });

  it('two runs in the same second get distinct names', async () => {
    const { engine, root, state } = setup([]);
    const clock = dayClock(new Date(2026, 11, 1, 2, 0, 0));
    try {
      await engine(clock).run({ services: ['web'], all: false, dryRun: false });
      await engine(clock).run({ services: ['web'], all: false, dryRun: false });
      expect(fs.readdirSync(path.join(root, 'web')).sort()).toEqual(['web_20261201_020000-2.tar.zst', 'web_20261201_020000.tar.zst']);
    } finally {
      state.close();
    }
  });

  it('--dry-run plans from the same table: the archive name by the clock, what retention would remove', async () => {
    const { engine, state } = setup([]);
    const clock = dayClock(new Date(2026, 11, 1, 2, 0, 0));
    try {
      for (let night = 0; night < 2; night++) {
        await engine(clock).run({ services: ['web'], all: false, dryRun: false });
        clock.nextDay();
      }
      const plan = await engine(clock).run({ services: ['web'], all: false, dryRun: true });
      const p = plan.services[0].plan;
      expect(p?.archive).toMatch(/web_20261203_020000\.tar\.zst$/);
      expect(p?.files).toBe(1);
      expect(p?.prune.map((x) => path.basename(x.path))).toEqual(['web_20261201_020000.tar.zst']);
    } finally {
      state.close();
    }
  });
});

describe('the alert of a backup that ended with warnings (point 22)', () => {
  it('is a warning, in the digest too, naming the warnings', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the one function under test
    const { backupEvent } = require('../../core/backup/events') as typeof import('../../core/backup/events');
    const base = { service: 'dns', type: 'lxc', status: 'success' as const, copies: [], pruned: [], durationMs: 1 };
    const archive = { path: 'nas:backup/vzdump-lxc-101.tar.zst', size: 10, sha256: '', entries: null, verified: true };
    const plain = backupEvent({ ...base, archive, warnings: [] });
    expect(plain).toMatchObject({ severity: 'success', title: 'Backup of dns succeeded' });
    const warned = backupEvent({ ...base, archive, warnings: ['vzdump: simulated warning 1'], warned: true });
    expect(warned).toMatchObject({ event: 'backup_success', severity: 'warning', title: 'Backup of dns succeeded with warnings' });
    expect(warned.text).toContain('\nwarnings:\n- vzdump: simulated warning 1');
  });
});
