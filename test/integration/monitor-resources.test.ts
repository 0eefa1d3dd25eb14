/**
 * The monitor's resource and state probes against real parts: backup freshness read from a
 * real state database, free space of a real folder with a forecast from seeded history, this
 * host's /proc, and the Proxmox nodes (and a `running` check) through the proxmox plugin
 * against the PVE simulator, the plugin created by the app from a config file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openApp, type App } from '../../core/app';
import type { AutopilotConfig } from '../../core/config/types';
import { probeFor } from '../../core/monitor/probes';
import { diskProbe, diskUsage, resourceProbes, type ResourceProbe } from '../../core/monitor/resources';
import type { ProbeEnv } from '../../core/monitor/types';
import { silentLogger } from '../../lib/log';
import { StateManager } from '../../lib/state';
import { cleanupTmp, ROOT, tmpDir, write } from '../helpers/cli';
import { proxmoxConnection, useSim, type Sim } from '../helpers/pve';

const GiB = 1024 ** 3;
const DAY = 86400;

function env(over: Partial<ProbeEnv> = {}): ProbeEnv {
  return { signal: new AbortController().signal, timeoutMs: 5000, now: () => new Date(), state: null, history: () => [], ...over };
}

afterAll(cleanupTmp);

describe('backup freshness against a real state database', () => {
  let state: StateManager;
  const hoursAgo = (h: number): string => new Date(Date.now() - h * 3600_000).toISOString();
  const add = (service: string, h: number, verifyStatus: 'ok' | 'failed' | 'pending', location = `${service}_${h}.tar.zst`): void =>
    void state.addArtifact({
      runId: null,
      service,
      destination: 'local',
      location,
      size: 1024,
      sha256: 'ab',
      createdAt: hoursAgo(h),
      verifyStatus,
    });

  beforeAll(() => {
    state = StateManager.open(path.join(tmpDir('ha-fresh-'), 'state'));
    add('web', 2, 'ok');
    add('web', 1, 'failed'); // newer, but not verified: not counted
    add('old', 30, 'ok');
    add('broken', 1, 'failed');
  });
  afterAll(() => state.close());

  it('passes when the newest verified backup is younger than max_age, with its age in hours as the value', async () => {
    const r = await probeFor({ type: 'backup', max_age: '26h' }, { subject: 'web' })(env({ state }));
    expect(r).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^newest verified backup 2h old \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d, local\)$/),
    });
    expect(r.value).toBeCloseTo(2, 1);
  });
  it('fails when it is older, saying its age and time', async () => {
    const r = await probeFor({ type: 'backup', max_age: '26h' }, { subject: 'old' })(env({ state }));
    expect(r).toMatchObject({ ok: false, detail: expect.stringMatching(/^newest verified backup 1d 6h old \(.*\): older than 1d 2h$/) });
    expect(r.value).toBeCloseTo(30, 1);
  });
  it('fails when there is no verified backup at all, naming the newest that failed', async () => {
    expect((await probeFor({ type: 'backup', max_age: 3600 }, { subject: 'none' })(env({ state }))).detail).toBe(
      'no verified backup of none',
    );
    expect((await probeFor({ type: 'backup', max_age: 3600 }, { subject: 'broken' })(env({ state }))).detail).toMatch(
      /^no verified backup of broken; the newest, of .*, is failed$/,
    );
    expect((await probeFor({ type: 'backup', max_age: 3600 }, { subject: 'web' })(env())).detail).toMatch(/needs the state database/);
  });
});

describe('free space of a real folder, with a forecast', () => {
  const r = { disk_warn_percent: 100, disk_critical_percent: 100, forecast_warn_days: 0 };
  it('gives the used percentage as the value and the free space', async () => {
    const dir = tmpDir('ha-disk-');
    const res = await diskProbe(dir, { ...r } as never)(env());
    expect(res).toMatchObject({
      ok: true,
      warning: null,
      detail: expect.stringMatching(/^[\d.]+ % used, [\d.]+ \w?i?B free of [\d.]+ \w?i?B$/),
    });
    expect(res.value).toBeGreaterThan(0);
    expect(res.value).toBeLessThan(100);
  });
  it('forecasts the day it is full from the last 7 days, and warns within forecast_warn_days', async () => {
    const dir = tmpDir('ha-disk-');
    const now = (await diskUsage(dir)).usedPercent;
    const nowS = Math.floor(Date.now() / 1000);
    let asked = 0;
    // growing 2 % a day for the last 3 days
    const history = (since: number): { at: number; value: number }[] => {
      asked = since;
      return [3, 2, 1].map((d) => ({ at: nowS - d * DAY, value: now - 2 * d }));
    };
    const res = await diskProbe(dir, { ...r, forecast_warn_days: 3650 } as never)(env({ history }));
    expect(Math.abs(asked - (nowS - 7 * DAY))).toBeLessThan(5);
    const days = (100 - now) / 2;
    const said = Number(/full in ([\d.]+) days/.exec(res.detail)?.[1]);
    expect(Math.abs(said - days)).toBeLessThan(Math.max(1, days * 0.02));
    expect(res.warning).toMatch(new RegExp(`^${dir} full in [\\d.]+ days at the growth of the last 7 days$`));
    expect((await diskProbe(dir, { ...r, forecast_warn_days: 1 } as never)(env({ history }))).warning).toBeNull();
  });
  it('warns at disk_warn_percent and fails at disk_critical_percent', async () => {
    const dir = tmpDir('ha-disk-');
    expect((await diskProbe(dir, { ...r, disk_warn_percent: 0.001 } as never)(env())).warning).toMatch(/% used \(warning at 0\.001 %\)$/);
    expect(await diskProbe(dir, { ...r, disk_critical_percent: 0.001 } as never)(env())).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/\(critical at 0\.001 %\)$/),
    });
    expect((await diskProbe(path.join(dir, 'gone'), r as never)(env())).detail).toMatch(/ENOENT/);
  });
});

describe('resources of the config: host and Proxmox nodes (PVE simulator)', () => {
  let sim: Sim;
  useSim((s) => (sim = s));
  let app: App;
  let dir: string;

  beforeAll(async () => {
    dir = tmpDir('ha-res-');
    for (const d of ['archives', 'copies', 'data']) fs.mkdirSync(path.join(dir, d));
    const config = write(
      path.join(dir, 'ha.yaml'),
      `global:
  state_dir: ./state
  log_dir: ./logs
backup:
  root: ./archives
  destinations:
    - name: copies
      path: ./copies
monitoring:
  resources:
    mounts: [./data, ./copies]
${proxmoxConnection(sim, dir)}
services:
  - name: web
    type: lxc
    vmid: 100
  - name: media
    type: lxc
    vmid: 103
`,
    );
    app = await openApp({
      configPath: config,
      signal: new AbortController().signal,
      state: 'none',
      makeLogger: () => silentLogger,
      builtinRoot: path.join(ROOT, 'dist/plugins'),
    });
  });
  afterAll(async () => app?.close());

  const config = (): AutopilotConfig => app.loaded.config;
  const byLabel = (list: ResourceProbe[], subject: string): ResourceProbe => list.find((p) => p.subject === subject) as ResourceProbe;

  it('watches each folder once, memory, load, and each node, asking the plugin once for all nodes in a pass', async () => {
    sim.resetRequests();
    const list = await resourceProbes(config(), app.registry, silentLogger);
    expect(list.map((p) => `${p.subject} ${p.label} ${p.type}`)).toEqual([
      `host disk ${path.join(dir, 'archives')} disk`,
      `host disk ${path.join(dir, 'copies')} disk`,
      `host disk ${path.join(dir, 'data')} disk`,
      'host memory memory',
      'host load load',
      'node:pve1 resources node',
      'node:pve2 resources node',
      'node:pve3 resources node',
    ]);
    const results = await Promise.all(list.map((p) => p.probe(env())));
    for (const r of results) expect(r).toMatchObject({ ok: true });
    expect(results[3].detail).toMatch(/^[\d.]+ % used, [\d.]+ \w+ available of [\d.]+ \w+$/);
    expect(results[4].detail).toMatch(/^15-minute load [\d.]+ on \d+ CPUs? \([\d.]+ per CPU\)$/);
    expect(results[5].detail).toMatch(
      /^CPU 3 %; memory 28 % \(9\.0 GiB of 32\.0 GiB\); root 12 % \(12\.0 GiB of 100 GiB\); storages: local \d+ %, local-lvm 3 %, nas \d+ %, pbs \d+ %$/,
    );
    // the probes were made from one answer, and the pass shared it
    expect(sim.requests.filter((q) => q.path.endsWith('/nodes')).length).toBe(1);
    expect(sim.requests.filter((q) => /\/nodes\/pve1\/status$/.test(q.path)).length).toBe(1);
  });

  it('fails an offline node and a storage at the critical level; warns of memory, a fuller storage and an inactive one', async () => {
    sim.faults.nodeOffline('pve2');
    sim.faults.nodeStats('pve1', { memUsed: 31 * GiB });
    sim.faults.storageUsage('nas', { used: 90 * GiB, total: 100 * GiB });
    sim.faults.storageUsage('local-lvm', { active: false });
    const list = await resourceProbes(config(), app.registry, silentLogger);
    const pve1 = await byLabel(list, 'node:pve1').probe(env());
    expect(pve1).toMatchObject({ ok: true, value: 90, warning: 'memory 97 % used; storage local-lvm inactive; storage nas 90 % used' });
    expect(await byLabel(list, 'node:pve2').probe(env())).toMatchObject({ ok: false, detail: 'offline' });
    sim.faults.storageUsage('nas', { used: 97 * GiB });
    const again = await resourceProbes(config(), app.registry, silentLogger);
    expect(await byLabel(again, 'node:pve3').probe(env())).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^storage nas 97 % used \(critical at 95 %\); CPU/),
    });
  });

  it('when the plugin cannot list the nodes, one check stands for them and says why', async () => {
    sim.faults.fail({ status: 403, message: 'Permission check failed (/nodes, Sys.Audit)' }, /^GET \/nodes$/, 5);
    const list = await resourceProbes(config(), app.registry, silentLogger);
    const whole = list.filter((p) => p.type === 'node');
    expect(whole.map((p) => `${p.subject} ${p.label}`)).toEqual(['hypervisor:proxmox nodes']);
    expect(await whole[0].probe(env())).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^the proxmox plugin could not list its nodes: .*Permission check failed/),
    });
  });

  it('a running check asks the plugin through the guest provider', async () => {
    const provider = app.registry.guestProvider('lxc');
    expect(provider).toBeDefined();
    const runningOf = (vmid: number) => (signal: AbortSignal) =>
      provider!
        .call('guestStatus', signal, (h) =>
          h.guestStatus(provider!.ref({ name: `ct${vmid}`, type: 'lxc', vmid } as never), { signal, logger: silentLogger, dryRun: true }),
        )
        .then((s) => s.state === 'running');
    expect(await probeFor({ type: 'running' }, { running: runningOf(100) })(env())).toMatchObject({ ok: true, detail: 'running' });
    expect(await probeFor({ type: 'running' }, { running: runningOf(103) })(env())).toMatchObject({ ok: false, detail: 'not running' });
  });
});
