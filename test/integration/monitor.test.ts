/**
 * The monitor through the built CLI, against real HTTP servers on 127.0.0.1 and a recording
 * webhook channel: thresholds, one alert per incident, dependencies, maintenance, flapping,
 * exit codes, --json, and status with its uptimes.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { basicConfig, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';
import { Recorder } from '../helpers/recorder';

/** A server whose answer the test changes: 200, 503, or a hang (never answers). */
class Target {
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  private server!: http.Server;
  url = '';
  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      if (this.mode === 'hang') return; // never answers
      res.writeHead(this.mode === 'ok' ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(this.mode === 'ok' ? 'all good' : 'down for now');
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
    return this;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let rec: Recorder;
let router: Target;
let web: Target;
let db: Target;
beforeEach(async () => {
  rec = await new Recorder().start();
  router = await new Target().start();
  web = await new Target().start();
  db = await new Target().start();
});
afterEach(async () => {
  await Promise.all([rec.stop(), router.stop(), web.stop(), db.stop()]);
});
afterAll(cleanupTmp);

function setup(extraMonitoring = ''): { dir: string; cfg: string } {
  const dir = tmpDir();
  const services = [
    `  - name: web`,
    `    type: files`,
    `    paths: [${dir}]`,
    `    depends_on: [router]`,
    `    health_checks:`,
    `      - type: http`,
    `        url: ${web.url}`,
    `        body_contains: all good`,
    `  - name: db`,
    `    type: files`,
    `    paths: [${dir}]`,
    `    depends_on: [router]`,
    `    health_checks:`,
    `      - type: http`,
    `        url: ${db.url}`,
    `        timeout: 1`,
  ].join('\n');
  const monitoring = [
    'monitoring:',
    '  failure_threshold: 2',
    '  resources:',
    '    enabled: false',
    '  targets:',
    '    - name: router',
    '      health_checks:',
    '        - type: http',
    `          url: ${router.url}`,
    extraMonitoring,
  ].join('\n');
  const notifications = `notifications:\n  cooldown: 0\n  channels:\n    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      min_severity: info\n`;
  const cfg = write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services }) + monitoring + '\n' + notifications);
  return { dir, cfg };
}

const alerts = (): { event: string; subject: string; title: string; text: string; severity: string }[] =>
  rec.to('/hook').map((r) => JSON.parse(r.body));

describe('monitor', () => {
  it('goes DOWN after failure_threshold failures, alerts once, and once more when it recovers', async () => {
    const { cfg } = setup();
    const first = await runCli(['monitor', '--json', '--config', cfg]);
    expect(first.code).toBe(0);
    expect(json(first).checks.map((c: { subject: string; state: string }) => `${c.subject}:${c.state}`)).toEqual([
      'web:UP',
      'db:UP',
      'router:UP',
    ]);
    web.mode = 'fail';
    const pending = await runCli(['monitor', '--config', cfg]);
    expect(pending.code).toBe(0);
    expect(pending.stdout).toMatch(/web\s+http http:\/\/127\.0\.0\.1:\d+\/\s+PENDING\s+\S+\s+status 503/);
    expect(alerts()).toHaveLength(0);
    const down = await runCli(['monitor', '--json', '--config', cfg]);
    expect(down.code).toBe(1);
    expect(json(down).down).toEqual(['web']);
    expect(alerts()).toEqual([expect.objectContaining({ event: 'service_down', subject: 'web', severity: 'critical' })]);
    // still down: no second alert
    expect((await runCli(['monitor', '--config', cfg])).code).toBe(1);
    expect(alerts()).toHaveLength(1);
    web.mode = 'ok';
    expect((await runCli(['monitor', '--config', cfg])).code).toBe(0);
    expect(alerts().map((a) => a.event)).toEqual(['service_down', 'service_recovered']);
    // status: health, since when, and an uptime that counts the failures
    const st = json(await runCli(['status', '--json', '--config', cfg]));
    const w = st.services.find((s: { service: string }) => s.service === 'web');
    expect(w.health).toMatchObject({ state: 'UP', checks: 1, down: 0 });
    // five passes: up, then three failures, then up again
    expect(w.health.uptime.h24).toBeCloseTo(2 / 5, 5);
    expect(w.health.p95Ms).toEqual(expect.any(Number));
    expect(st.targets.map((t: { subject: string }) => t.subject)).toEqual(['router']);
  }, 60_000);

  it('a parent DOWN: its children are unreachable and silent; one alert names the parent and what it takes along', async () => {
    const { cfg } = setup();
    router.mode = 'fail';
    web.mode = 'fail';
    db.mode = 'hang';
    await runCli(['monitor', '--config', cfg]);
    const r = await runCli(['monitor', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/web\s+.*DOWN \(unreachable: router down\)/);
    expect(r.stdout).toMatch(/db\s+.*DOWN \(unreachable: router down\)/);
    const sent = alerts();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ event: 'service_down', subject: 'router' });
    expect(sent[0].text).toMatch(/Takes along: web \(down\), db \(down\)|Takes along: db \(down\), web \(down\)/);
    // the parent comes back: its children's own checks must answer once more before their failures count as their own
    router.mode = 'ok';
    await runCli(['monitor', '--config', cfg]);
    expect(alerts().map((a) => `${a.event}:${a.subject}`)).toEqual(['service_down:router', 'service_recovered:router']);
    // they still fail at the next pass: now it is an outage of their own
    await runCli(['monitor', '--config', cfg]);
    expect(
      alerts()
        .map((a) => `${a.event}:${a.subject}`)
        .sort(),
    ).toEqual(['service_down:router', 'service_recovered:router', 'service_down:web', 'service_down:db'].sort());
  }, 60_000);

  it('a hanging check fails at its own timeout and does not hold the others back', async () => {
    const { cfg } = setup();
    db.mode = 'hang';
    const t0 = Date.now();
    const r = await runCli(['monitor', '--json', '--config', cfg]);
    const wall = Date.now() - t0;
    const checks = json(r).checks as { subject: string; durationMs: number; detail: string }[];
    const dbc = checks.find((c) => c.subject === 'db')!;
    expect(dbc.detail).toMatch(/no answer within 1s/);
    expect(dbc.durationMs).toBeGreaterThanOrEqual(1000);
    expect(checks.find((c) => c.subject === 'web')!.durationMs).toBeLessThan(900);
    expect(wall).toBeLessThan(8000);
  }, 30_000);

  it('maintenance: manual windows and config windows make checks MAINTENANCE, with no alert', async () => {
    const { cfg } = setup();
    web.mode = 'fail';
    const m = await runCli(['monitoring', 'maintenance', 'web', '--for', '10m', '--reason', 'disk swap', '--config', cfg]);
    expect(m.code).toBe(0);
    for (let i = 0; i < 3; i++) await runCli(['monitor', '--config', cfg]);
    const r = await runCli(['monitor', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const w = json(r).checks.find((c: { subject: string }) => c.subject === 'web');
    expect(w).toMatchObject({ state: 'MAINTENANCE', maintenance: expect.stringMatching(/disk swap/) });
    expect(alerts()).toHaveLength(0);
    const list = await runCli(['monitoring', 'maintenance', '--config', cfg]);
    expect(list.stdout).toMatch(/web\s+manual\s+.*disk swap/);
    // ended: the thresholds count afresh (a service still starting is not DOWN at once); it still fails: DOWN, alerted
    expect((await runCli(['monitoring', 'maintenance', 'web', '--end', '--config', cfg])).stdout).toMatch(/maintenance ended: web/);
    expect((await runCli(['monitor', '--config', cfg])).code).toBe(0);
    expect(alerts()).toHaveLength(0);
    expect((await runCli(['monitor', '--config', cfg])).code).toBe(1);
    expect(alerts().map((a) => a.event)).toEqual(['service_down']);

    // a recurring window open now (every minute, for an hour)
    const { cfg: cfg2 } = setup('  maintenance:\n    - name: nightly\n      services: [db]\n      cron: "* * * * *"\n      duration: 1h');
    db.mode = 'fail';
    for (let i = 0; i < 3; i++) await runCli(['monitor', '--config', cfg2]);
    const r2 = json(await runCli(['monitor', '--json', '--config', cfg2]));
    expect(r2.checks.find((c: { subject: string }) => c.subject === 'db')).toMatchObject({
      state: 'MAINTENANCE',
      maintenance: expect.stringMatching(/maintenance window nightly/),
    });
  }, 90_000);

  it('flapping: more changes than flapping.changes within the window is FLAPPING, alerted once', async () => {
    const { cfg } = setup('  flapping:\n    changes: 3\n    window: 1h');
    const cfgOne = cfg;
    const modes: ('ok' | 'fail')[] = ['fail', 'fail', 'ok', 'fail', 'fail', 'ok', 'fail', 'fail', 'ok', 'fail', 'fail'];
    const states: string[] = [];
    for (const mode of modes) {
      web.mode = mode;
      const r = json(await runCli(['monitor', 'web', '--json', '--config', cfgOne]));
      states.push(r.checks[0].state);
    }
    expect(states).toContain('FLAPPING');
    const flapAlerts = alerts().filter((a) => /flapping/.test(a.title));
    expect(flapAlerts).toHaveLength(1);
    expect(flapAlerts[0]).toMatchObject({ event: 'service_down', severity: 'warning', subject: 'web' });
  }, 90_000);

  it('refuses an unknown service, and a depends_on that names nothing, with the line', async () => {
    const { cfg } = setup();
    const r = await runCli(['monitor', 'nope', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nothing to check for nope/);
    const dir = tmpDir();
    const bad = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        services: `  - name: web\n    type: files\n    paths: [${dir}]\n    depends_on: [ruoter]\n  - name: a\n    type: files\n    paths: [${dir}]\n    depends_on: [b]\n  - name: b\n    type: files\n    paths: [${dir}]\n    depends_on: [a]`,
      }),
    );
    const v = await runCli(['config', 'validate', '--config', bad]);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/ha\.yaml:\d+:\d+: services\[0\]\.depends_on\[0\]: 'ruoter' is neither a service nor a monitoring target/);
    expect(v.stderr).toMatch(/dependencies go round in a circle: a -> b -> a/);
    expect(v.stderr).not.toMatch(/\n\s+at /);
  }, 30_000);
});
