/**
 * The daemon as a real child process: real jobs (backups of a files service, every 2 s), its
 * endpoint over real HTTP, real signals (SIGHUP, SIGTERM, a job SIGKILLed), a real webhook
 * channel against a recording server, catch-up from a real state database.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { basicConfig, cleanupTmp, ROOT, runCli, startCli, tmpDir, write } from '../helpers/cli';
import { Recorder, webhookNotifications } from '../helpers/recorder';

const TOKEN = 'daemon-test-token-0123456789';

afterAll(cleanupTmp);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

class DaemonProc {
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    child.stderr?.on('data', (c: Buffer) => (this.stderr += c.toString()));
    child.stdout?.resume();
    this.exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
  }

  async waitFor(re: RegExp, ms = 20_000, count = 1): Promise<void> {
    const until = Date.now() + ms;
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
    while ((this.stderr.match(g)?.length ?? 0) < count) {
      if (Date.now() > until) throw new Error(`not seen within ${ms} ms: ${re}\nstderr:\n${this.stderr}`);
      if (this.child.exitCode !== null) throw new Error(`the daemon exited (${this.child.exitCode}) before ${re}\nstderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}

function startDaemon(cfg: string): DaemonProc {
  return new DaemonProc(startCli(['daemon', '--config', cfg, '--log-level', 'info']));
}

function get(port: number, p: string, token?: string): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
  });
}

/** A config with a files service `f` (and `slow`, whose dump waits 60 s, when asked), the given schedules and daemon sections. */
function config(dir: string, o: { schedules: string; daemon: string; slow?: boolean; extra?: string }): string {
  write(path.join(dir, 'src/a.txt'), 'hello\n');
  let services = `  - name: f\n    type: files\n    paths: [${dir}/src]\n`;
  let global = '';
  if (o.slow) {
    fs.mkdirSync(path.join(dir, 'plugins.d'), { recursive: true, mode: 0o755 });
    fs.copyFileSync(path.join(ROOT, 'examples/plugins.d/dump-before-backup.js'), path.join(dir, 'plugins.d/dump.js'));
    fs.chmodSync(path.join(dir, 'plugins.d/dump.js'), 0o644);
    global = `  plugins_dir: ${dir}/plugins.d\n`;
    services += `  - name: slow\n    type: dump\n    dump_dir: ${dir}/dump\n    dump_command: [sleep, "60"]\n`;
  }
  return write(
    path.join(dir, 'ha.yaml'),
    basicConfig(dir, { services, global }) + `schedules:\n${o.schedules}\ndaemon:\n${o.daemon}\n${o.extra ?? ''}`,
  );
}

describe('daemon', () => {
  it('runs a real backup every 2 s and serves /healthz, /status and /metrics with a bearer token, off loopback too', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const cfg = config(dir, {
      schedules: '  timezone: UTC\n  backup: "*/2 * * * * *"',
      daemon: `  listen: 0.0.0.0\n  port: ${port}\n  token: ${TOKEN}`,
    });
    const d = startDaemon(cfg);
    try {
      await d.waitFor(/daemon started: backup "\*\/2 \* \* \* \* \*" \(UTC\)/);
      await d.waitFor(/job backup ended: exit 0/);
      expect((await get(port, '/healthz')).status).toBe(401);
      expect((await get(port, '/healthz', 'wrong-token-wrong-token')).status).toBe(401);
      const h = await get(port, '/healthz', TOKEN);
      expect(h.status).toBe(200);
      expect(h.body).toMatch(/^ok: up \d+s; jobs running: (none|backup)\n$/);
      const s = await get(port, '/status', TOKEN);
      expect(s.status).toBe(200);
      const status = JSON.parse(s.body);
      expect(status.daemon).toMatchObject({ config: cfg, scheduler: 'running', timezone: 'UTC' });
      expect(status.jobs[0]).toMatchObject({ name: 'backup', cron: '*/2 * * * * *', argv: ['backup', '--all'] });
      expect(status.jobs[0].runs).toBeGreaterThanOrEqual(1);
      expect(Date.parse(status.jobs[0].nextRun)).toBeGreaterThan(Date.now() - 2000);
      const m = await get(port, '/metrics', TOKEN);
      expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(m.body).toMatch(/^homelab_autopilot_daemon_job_runs_total\{job="backup"\} \d+$/m);
      expect(m.body).toMatch(/^homelab_autopilot_daemon_job_last_exit_code\{job="backup"\} (0|-1|\d+)$/m);
      // the full set from state too: the job's last success, the daemon process's own
      expect(m.body).toMatch(/^homelab_autopilot_job_last_success_timestamp_seconds\{kind="backup"\} \d+/m);
      expect(m.body).toMatch(/^process_resident_memory_bytes \d+/m);
      expect(fs.readdirSync(path.join(dir, 'backups/f')).filter((f) => f.endsWith('.tar.zst')).length).toBeGreaterThanOrEqual(1);
    } finally {
      const end = await d.stop();
      expect(end).toEqual({ code: 0, signal: null });
    }
    expect(d.stderr).toMatch(/job backup started \(schedule, pid \d+\): backup --all/);
    expect(d.stderr).toMatch(/daemon stopped/);
    expect(d.stderr).not.toContain(TOKEN);
  });

  it('runs the monitor in the daemon: checks every interval, states in /metrics, an alert when a service goes down', async () => {
    const dir = tmpDir();
    const port = await freePort();
    let up = true;
    const target = http.createServer((req, res) => {
      res.writeHead(up ? 200 : 503);
      res.end(up ? 'fine' : 'broken');
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const rec = await new Recorder().start();
    const url = `http://127.0.0.1:${(target.address() as net.AddressInfo).port}/`;
    const cfg = config(dir, {
      schedules: '  monitor: 1',
      daemon: `  port: ${port}`,
      extra:
        `monitoring:\n  failure_threshold: 2\n  resources:\n    enabled: false\n  targets:\n    - name: web\n      health_checks:\n        - type: http\n          url: ${url}\n` +
        webhookNotifications(rec.url),
    });
    const d = startDaemon(cfg);
    try {
      await d.waitFor(/daemon started/);
      const metric = async (): Promise<string> => (await get(port, '/metrics')).body;
      const until = async (re: RegExp): Promise<void> => {
        const end = Date.now() + 15_000;
        while (!re.test(await metric())) {
          if (Date.now() > end) throw new Error(`not seen in /metrics: ${re}\n${await metric()}\nstderr:\n${d.stderr}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      await until(/^homelab_autopilot_check_up\{subject="web",check="http [^"]+",type="http"\} 1$/m);
      up = false;
      await until(/^homelab_autopilot_check_up\{subject="web",check="http [^"]+",type="http"\} 0$/m);
      await d.waitFor(/web\/http .*: PENDING -> DOWN/);
      const end = Date.now() + 10_000;
      while (!rec.to('/hook').length && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      expect(JSON.parse(rec.to('/hook')[0].body)).toMatchObject({ event: 'service_down', subject: 'web' });
      // a cron-started pass finds the lock the daemon's monitor holds
      const r = await runCli(['monitor', '--config', cfg]);
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/monitor/);
    } finally {
      expect(await d.stop()).toEqual({ code: 0, signal: null });
      await rec.stop();
      target.closeAllConnections();
      target.close();
    }
  });

  it('refuses an endpoint off loopback without a token, and names daemon.port when the port is taken', async () => {
    const dir = tmpDir();
    const open = await runCli(['daemon', '--config', config(dir, { schedules: '  backup: "0 2 * * *"', daemon: '  listen: 0.0.0.0' })]);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(
      /ha\.yaml:\d+:\d+: daemon\.listen: 0\.0\.0\.0 is not a loopback address, so the endpoint needs a bearer token/,
    );

    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = await runCli(['daemon', '--config', config(dir, { schedules: '  backup: "0 2 * * *"', daemon: `  port: ${port}` })]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`error: the daemon's endpoint cannot listen on 127.0.0.1:${port}: port ${port} on 127.0.0.1 is in use`);
      expect(r.stderr).toContain('hint: choose another daemon.port');
    } finally {
      busy.close();
    }
  });

  it('SIGHUP: a broken config is refused (logged with file:line, config_reload_failed sent), a good one replaces the schedule', async () => {
    const rec = await new Recorder().start();
    const dir = tmpDir();
    const port = await freePort();
    const daemon = `  port: ${port}`;
    const cfg = config(dir, { schedules: '  catch_up: false\n  backup: "0 0 1 1 *"', daemon, extra: webhookNotifications(rec.url) });
    const d = startDaemon(cfg);
    try {
      await d.waitFor(/daemon started/);
      config(dir, { schedules: '  backup: "every two seconds please"', daemon, extra: webhookNotifications(rec.url) });
      d.child.kill('SIGHUP');
      await d.waitFor(/the config was not reloaded, the daemon keeps the one it has/);
      expect(d.stderr).toMatch(/ha\.yaml:\d+:\d+: schedules\.backup/);
      for (let i = 0; i < 100 && !rec.to('/hook').length; i++) await new Promise((r) => setTimeout(r, 50));
      expect(rec.to('/hook').map((r) => JSON.parse(r.body).event)).toEqual(['config_reload_failed']);
      expect(JSON.parse((await get(port, '/status')).body).jobs[0].cron).toBe('0 0 1 1 *');

      config(dir, { schedules: '  backup: "*/2 * * * * *"', daemon, extra: webhookNotifications(rec.url) });
      d.child.kill('SIGHUP');
      await d.waitFor(/config reloaded: backup "\*\/2 \* \* \* \* \*"/);
      await d.waitFor(/job backup ended: exit 0/);
      expect(JSON.parse((await get(port, '/status')).body).jobs[0].cron).toBe('*/2 * * * * *');
    } finally {
      expect(await d.stop()).toEqual({ code: 0, signal: null });
      await rec.stop();
    }
  });

  it('SIGTERM while a job runs: the job gets shutdown_timeout, then SIGTERM; the daemon exits 0', async () => {
    const dir = tmpDir();
    const cfg = config(dir, {
      slow: true,
      schedules: '  backup: { cron: "*/2 * * * * *", args: [slow] }',
      daemon: '  port: 0\n  shutdown_timeout: 2',
    });
    const d = startDaemon(cfg);
    await d.waitFor(/job backup started/);
    await new Promise((r) => setTimeout(r, 1500)); // the child is in its 60 s dump
    const t0 = Date.now();
    const end = await d.stop('SIGTERM');
    const took = Date.now() - t0;
    expect(end).toEqual({ code: 0, signal: null });
    expect(took).toBeGreaterThanOrEqual(1900); // the deadline was given
    expect(took).toBeLessThan(20_000); // and the job stopped on SIGTERM, long before its dump would end
    expect(d.stderr).toMatch(/waiting up to 2\.0s for 1 running job\(s\) to end/);
    expect(d.stderr).toMatch(/jobs still running after the shutdown deadline were sent SIGTERM/);
    expect(d.stderr).toMatch(/job backup ended: exit 143 after [\d.]+s \(stopped by the shutdown\)/);
    expect(d.stderr).not.toMatch(/SIGKILL/);
  });

  it('catch_up: a run missed while the daemon was down runs once at start', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { schedules: '  timezone: UTC\n  backup: "0 0 1 1 *"', daemon: '  port: 0' });
    expect((await runCli(['backup', 'f', '--config', cfg])).code).toBe(0); // the state database exists
    const db = new Database(path.join(dir, 'state/state.db'));
    db.prepare('INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)').run(
      'daemon.lastRun.backup',
      JSON.stringify('2020-01-01T00:00:00.000Z'),
      new Date().toISOString(),
    );
    db.close();
    const d = startDaemon(cfg);
    try {
      await d.waitFor(/job backup: the run due at \d{4}-01-01T00:00:00\.000Z was missed while the daemon was down; running it now/);
      await d.waitFor(/job backup started \(catch-up, pid \d+\)/);
      await d.waitFor(/job backup ended: exit 0/);
    } finally {
      expect(await d.stop()).toEqual({ code: 0, signal: null });
    }
    const after = new Database(path.join(dir, 'state/state.db'), { readonly: true });
    const last = JSON.parse((after.prepare("SELECT value FROM kv WHERE key = 'daemon.lastRun.backup'").get() as { value: string }).value);
    after.close();
    expect(Date.now() - Date.parse(last)).toBeLessThan(60_000);
  });

  it('a job that crashes or is killed never takes the daemon down', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const cfg = config(dir, {
      slow: true,
      schedules: '  backup: { cron: "*/2 * * * * *", args: [slow] }\n  update: { cron: "*/2 * * * * *", args: ["--no-such-flag"] }',
      daemon: `  port: ${port}\n  shutdown_timeout: 1`,
    });
    const d = startDaemon(cfg);
    try {
      await d.waitFor(/job update ended: exit 2/, 20_000, 2);
      await d.waitFor(/job backup started/);
      const pid = JSON.parse((await get(port, '/status')).body).jobs.find((j: { name: string }) => j.name === 'backup').pid as number;
      process.kill(pid, 'SIGKILL');
      await d.waitFor(/job backup ended: killed by SIGKILL/);
      await d.waitFor(/job backup started/, 20_000, 2);
      const h = await get(port, '/healthz');
      expect(h.status).toBe(200);
      const jobs = JSON.parse((await get(port, '/status')).body).jobs;
      expect(jobs.find((j: { name: string }) => j.name === 'update').failures).toBeGreaterThanOrEqual(2);
    } finally {
      expect(await d.stop()).toMatchObject({ signal: null });
    }
  });
});
