/**
 * Dead-man pings and the metrics textfile, end to end: the built CLI runs real backups and
 * updates and pings a real HTTP server on loopback; the textfile it writes is parsed.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { basicConfig, cleanupTmp, collect, runCli, sleep, startCli, tmpDir, write } from '../helpers/cli';
import { parseProm, samples, value } from '../helpers/prom';
import { Recorder } from '../helpers/recorder';
import { slowToCompress } from '../helpers/tree';

afterAll(cleanupTmp);

const UUID = '0f8a6c52-3e1b-4d7a-9c2e-5b6d7e8f9a01';
const P = 'homelab_autopilot_';

let rec: Recorder;
beforeEach(async () => (rec = await new Recorder().start()));
afterEach(() => rec.stop());

/** A folder with a files service `alpha` (or a broken one), pinging `pingUrl`, writing the textfile under dir/textfiles. */
function setup(opts: { pingUrl?: string; broken?: boolean; textfile?: string | null } = {}): {
  dir: string;
  config: string;
  textfile: string;
} {
  const dir = tmpDir();
  write(path.join(dir, 'data/file.txt'), 'some data');
  fs.mkdirSync(path.join(dir, 'textfiles'));
  const textfile = opts.textfile ?? path.join(dir, 'textfiles', 'homelab.prom');
  const services = opts.broken
    ? '  - name: alpha\n    type: files\n    paths: [./missing]'
    : '  - name: alpha\n    type: files\n    paths: [./data]';
  const extra = [
    opts.pingUrl
      ? `schedules:\n  backup:\n    cron: "0 2 * * *"\n    ping_url: "${opts.pingUrl}"\n  update:\n    cron: "0 4 * * 0"\n    ping_url: "${opts.pingUrl}"\n`
      : '',
    opts.textfile === null ? '' : `metrics:\n  textfile: ${textfile}\n`,
  ].join('');
  const config = write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services }) + extra);
  return { dir, config, textfile };
}

const paths = (): string[] => rec.requests.map((r) => r.url);

describe('dead-man pings from a real backup run', () => {
  it('pings /start before the work and the URL after a success, with one run id', async () => {
    const { config } = setup({ pingUrl: `${rec.url}/ping/${UUID}` });
    const r = await runCli(['backup', '--all', '--config', config]);
    expect(r.code).toBe(0);
    expect(paths().map((u) => u.split('?')[0])).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}`]);
    const rids = rec.requests.map((q) => new URL(q.url, rec.url).searchParams.get('rid'));
    expect(rids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(rids[1]).toBe(rids[0]);
    // the end ping is sent once the start ping was answered, so that the switch sees them in order
    expect(rec.requests[0].answeredAt).toBeLessThanOrEqual(rec.requests[1].at);
  });

  it('takes the URL from ping_url_file too, and config show masks an inline one', async () => {
    const { dir, config } = setup({});
    write(path.join(dir, 'ping-url'), `${rec.url}/ping/${UUID}\n`, 0o600);
    fs.appendFileSync(config, 'schedules:\n  backup:\n    cron: "0 2 * * *"\n    ping_url_file: ./ping-url\n');
    expect((await runCli(['backup', '--all', '--config', config])).code).toBe(0);
    expect(paths().map((u) => u.split('?')[0])).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}`]);
    const inline = setup({ pingUrl: `${rec.url}/ping/${UUID}` });
    const shown = await runCli(['config', 'show', '--config', inline.config]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/ping_url: "?\*{8}"?/);
    expect(shown.stdout).not.toContain(UUID);
  });

  it('pings /<exit code> when the backup fails', async () => {
    const { config } = setup({ pingUrl: `${rec.url}/ping/${UUID}`, broken: true });
    const r = await runCli(['backup', '--all', '--config', config]);
    expect(r.code).toBe(1);
    expect(paths().map((u) => u.split('?')[0])).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}/1`]);
  });

  it('never fails the job when the switch answers 500, and masks the URL in stderr', async () => {
    rec.answer(`/ping/${UUID}/start`, { status: 500, body: `no such check ${UUID}` });
    rec.answer(`/ping/${UUID}`, { status: 500, body: `no such check ${UUID}` });
    const { config } = setup({ pingUrl: `${rec.url}/ping/${UUID}` });
    const r = await runCli(['backup', '--all', '--config', config, '--log-level', 'debug']);
    expect(r.code).toBe(0);
    expect(rec.to(`/ping/${UUID}/start`)).toHaveLength(3); // retried
    expect(rec.to(`/ping/${UUID}`)).toHaveLength(3);
    expect(r.stderr).toMatch(/warn.*dead-man ping 'start' to 127\.0\.0\.1:\d+ failed after 3 tries: .*500/);
    expect(r.stderr).toMatch(/warn.*dead-man ping 'success' to 127\.0\.0\.1:\d+ failed after 3 tries/);
    expect(r.stderr).not.toContain(UUID);
    expect(r.stdout).not.toContain(UUID);
  });

  it('never fails the job when the switch is down', async () => {
    const s = http.createServer();
    await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((res) => s.close(() => res()));
    const { config } = setup({ pingUrl: `http://127.0.0.1:${port}/ping/${UUID}` });
    const r = await runCli(['backup', '--all', '--config', config, '--log-level', 'info']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/dead-man ping 'success' to 127\.0\.0\.1:\d+ failed after 3 tries: .*ECONNREFUSED/);
    expect(r.stderr).not.toContain(UUID);
  });

  it('sends nothing with --no-ping, nor for a dry run', async () => {
    const { config } = setup({ pingUrl: `${rec.url}/ping/${UUID}` });
    expect((await runCli(['backup', '--all', '--no-ping', '--config', config])).code).toBe(0);
    expect((await runCli(['backup', '--all', '--dry-run', '--config', config])).code).toBe(0);
    expect(rec.requests).toEqual([]);
  });

  it('speaks the Uptime Kuma push form: no start; up with the duration, or down with the exit code', async () => {
    const kuma = `${rec.url}/api/push/kumaToken?status=up&msg=OK&ping=`;
    const ok = setup({ pingUrl: kuma });
    expect((await runCli(['backup', '--all', '--config', ok.config])).code).toBe(0);
    expect(rec.requests).toHaveLength(1);
    const up = new URL(rec.requests[0].url, rec.url);
    expect(up.pathname).toBe('/api/push/kumaToken');
    expect(up.searchParams.get('status')).toBe('up');
    expect(up.searchParams.get('msg')).toBe('OK');
    expect(Number(up.searchParams.get('ping'))).toBeGreaterThan(0);

    rec.answer('/api/push/kumaToken', { status: 404, body: '{"ok":false,"msg":"Monitor not found or not active."}' });
    const bad = setup({ pingUrl: kuma, broken: true });
    const r = await runCli(['backup', '--all', '--config', bad.config, '--log-level', 'info']);
    expect(r.code).toBe(1);
    const down = new URL(rec.requests[1].url, rec.url);
    expect(down.searchParams.get('status')).toBe('down');
    expect(down.searchParams.get('msg')).toBe('exit 1');
    expect(r.stderr).toMatch(/dead-man ping 'fail' to 127\.0\.0\.1:\d+ failed after 1 try: .*404/);
    expect(r.stderr).not.toContain('kumaToken');
  });

  it('pings /143 for a run stopped by SIGTERM, and the textfile says it was interrupted', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'big.dat'), slowToCompress(4 << 20, 7));
    const textfile = path.join(dir, 'homelab.prom');
    const config = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { backup: '  compression_level: 19', services: '  - name: big\n    type: files\n    paths: [./big.dat]' }) +
        `schedules:\n  backup:\n    cron: "0 2 * * *"\n    ping_url: "${rec.url}/ping/${UUID}"\nmetrics:\n  textfile: ${textfile}\n`,
    );
    const child = startCli(['backup', '--all', '--config', config]);
    const done = collect(child);
    const svcDir = path.join(dir, 'backups/big');
    for (let i = 0; i < 400 && !(fs.existsSync(svcDir) && fs.readdirSync(svcDir).some((f) => f.includes('.partial-'))); i++)
      await sleep(50);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(143);
    expect(paths().map((u) => u.split('?')[0])).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}/143`]);
    const p = parseProm(fs.readFileSync(textfile, 'utf8'));
    expect(value(p, P + 'job_last_status', { kind: 'backup', status: 'interrupted' })).toBe(1);
  });

  it('pings for update too, with the exit code of an error (2: an unknown service)', async () => {
    const { config } = setup({ pingUrl: `${rec.url}/ping/${UUID}` });
    expect((await runCli(['update', '--all', '--yes', '--config', config])).code).toBe(0);
    const r = await runCli(['update', 'nosuch', '--yes', '--config', config]);
    expect(r.code).toBe(2);
    expect(paths().map((u) => u.split('?')[0])).toEqual([`/ping/${UUID}/start`, `/ping/${UUID}`, `/ping/${UUID}/start`, `/ping/${UUID}/2`]);
  });
});

describe('the metrics textfile', () => {
  it('is written after a run, parses, says what the run did, and leaves no temporary file', async () => {
    const { dir, config, textfile } = setup();
    const r = await runCli(['backup', '--all', '--config', config]);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(path.dirname(textfile))).toEqual(['homelab.prom']);
    expect(fs.statSync(textfile).mode & 0o777).toBe(0o644);
    const p = parseProm(fs.readFileSync(textfile, 'utf8'));
    expect(value(p, P + 'job_last_status', { kind: 'backup', status: 'success' })).toBe(1);
    const now = Date.now() / 1000;
    expect(now - value(p, P + 'job_last_success_timestamp_seconds', { kind: 'backup' })).toBeLessThan(60);
    expect(value(p, P + 'backup_last_size_bytes', { service: 'alpha' })).toBeGreaterThan(0);
    expect(value(p, P + 'filesystem_used_ratio', { path: path.join(dir, 'backups') })).toBeGreaterThan(0);
    // node_exporter has its own process metrics
    expect(p.samples.some((s) => /^(process|nodejs)_/.test(s.name))).toBe(false);

    // a failed run after it: written again, saying so
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    expect((await runCli(['backup', '--all', '--config', config])).code).toBe(1);
    const q = parseProm(fs.readFileSync(textfile, 'utf8'));
    expect(value(q, P + 'job_last_status', { kind: 'backup', status: 'failed' })).toBe(1);
    expect(samples(q, P + 'job_last_success_timestamp_seconds', { kind: 'backup' })).toHaveLength(1);
    expect(fs.readdirSync(path.dirname(textfile))).toEqual(['homelab.prom']);
  });

  it('cannot be written: a warning, and the job still succeeds', async () => {
    const dir0 = tmpDir();
    const { config } = setup({ textfile: path.join(dir0, 'no-such-folder', 'homelab.prom') });
    const r = await runCli(['backup', '--all', '--config', config]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /warn.*could not write the metrics textfile .*no-such-folder\/homelab\.prom: .*ENOENT.*the job's result is not affected/,
    );
  });
});
