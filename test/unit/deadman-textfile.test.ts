import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { isUptimeKuma, ping, pingTarget } from '../../lib/deadman';
import type { Logger } from '../../lib/log';
import { clearSecrets, mask } from '../../lib/mask';
import { textfileTemp, writeTextfile } from '../../lib/textfile';
import { cleanupTmp, tmpDir } from '../helpers/cli';
import { Recorder } from '../helpers/recorder';

afterAll(cleanupTmp);
afterEach(clearSecrets);

const UUID = '5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278';

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (m: string) => void lines.push(`${level} ${mask(m)}`);
  const logger = { lines, error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug'), child: () => logger };
  return logger;
}

/** A port nothing listens on: a server's, once closed. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('pingTarget', () => {
  it('makes Healthchecks URLs: /start, the URL, /<exit code> or /fail, with a run id', () => {
    const url = `https://hc-ping.com/${UUID}`;
    expect(pingTarget(url, 'start', { runId: 'r1' })).toBe(`https://hc-ping.com/${UUID}/start?rid=r1`);
    expect(pingTarget(url + '/', 'success')).toBe(`https://hc-ping.com/${UUID}`);
    expect(pingTarget(url, 'fail', { exitCode: 75 })).toBe(`https://hc-ping.com/${UUID}/75`);
    expect(pingTarget(url, 'fail')).toBe(`https://hc-ping.com/${UUID}/fail`);
    expect(pingTarget(url, 'fail', { exitCode: 300 })).toBe(`https://hc-ping.com/${UUID}/fail`);
    // a ping key and slug, with auto-provisioning: the query stays
    expect(pingTarget('https://hc.example/ping/abcdefghijklmnopqrstuv/nightly-backup?create=1', 'start')).toBe(
      'https://hc.example/ping/abcdefghijklmnopqrstuv/nightly-backup/start?create=1',
    );
    expect(pingTarget('ftp://x/y', 'start')).toBeNull();
  });

  it('makes Uptime Kuma push URLs: no start, status up with the duration, or down with the exit code', () => {
    const url = 'https://kuma.lan/api/push/AbCdEfGhIj?status=up&msg=OK&ping=';
    expect(isUptimeKuma(url)).toBe(true);
    expect(isUptimeKuma(`https://hc-ping.com/${UUID}`)).toBe(false);
    expect(pingTarget(url, 'start')).toBeNull();
    expect(pingTarget(url, 'success', { durationMs: 1234.4 })).toBe('https://kuma.lan/api/push/AbCdEfGhIj?status=up&msg=OK&ping=1234');
    expect(pingTarget(url, 'fail', { exitCode: 1 })).toBe('https://kuma.lan/api/push/AbCdEfGhIj?status=down&msg=exit+1&ping=');
  });
});

describe('ping (a real server on loopback)', () => {
  let rec: Recorder;
  beforeEach(async () => (rec = await new Recorder().start()));
  afterEach(() => rec.stop());

  it('sends once when the switch answers', async () => {
    const logger = recordingLogger();
    const r = await ping(`${rec.url}/${UUID}`, 'start', { runId: 'abc', logger });
    expect(r).toEqual({ ok: true, sent: true, attempts: 1 });
    expect(rec.requests.map((q) => [q.method, q.url])).toEqual([['GET', `/${UUID}/start?rid=abc`]]);
    expect(rec.requests[0].headers['user-agent']).toBe('homelab-autopilot');
  });

  it('retries a 500, gives up within its tries, never throws, and logs the host only', async () => {
    rec.answer(`/${UUID}/1`, { status: 500, body: `oops ${UUID}` });
    const logger = recordingLogger();
    const r = await ping(`${rec.url}/${UUID}`, 'fail', { exitCode: 1, retries: 2, logger });
    expect(r.ok).toBe(false);
    expect(r.attempts).toBe(3);
    expect(rec.to(`/${UUID}/1`)).toHaveLength(3);
    expect(r.error).toContain('500');
    expect(r.error).not.toContain(UUID);
    const warn = logger.lines.filter((l) => l.startsWith('warn'));
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain(`dead-man ping 'fail' to ${new URL(rec.url).host} failed after 3 tries`);
    expect(logger.lines.join('\n')).not.toContain(UUID);
  });

  it('does not retry a 404 (a wrong URL stays wrong)', async () => {
    rec.answer(`/${UUID}`, { status: 404 });
    const r = await ping(`${rec.url}/${UUID}`, 'success', { retries: 5 });
    expect(r).toMatchObject({ ok: false, attempts: 1 });
  });

  it('stays within its budget when the switch hangs', async () => {
    rec.answer(`/${UUID}`, { delayMs: 30_000 });
    const t0 = Date.now();
    const r = await ping(`${rec.url}/${UUID}`, 'success', { timeoutMs: 600, retries: 3 });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r.ok).toBe(false);
  });

  it('reports a switch that is down, without throwing', async () => {
    const port = await closedPort();
    const logger = recordingLogger();
    const r = await ping(`http://127.0.0.1:${port}/ping/${UUID}`, 'success', { logger, retries: 1 });
    expect(r).toMatchObject({ ok: false, sent: true, attempts: 2 });
    expect(r.error).toMatch(/ECONNREFUSED/);
    expect(logger.lines.join('\n')).not.toContain(UUID);
  });

  it('masks a short Uptime Kuma token, which the URL rules alone would not', async () => {
    const logger = recordingLogger();
    rec.answer('/api/push/pushtoken', { status: 500, body: 'bad token pushtoken' });
    const r = await ping(`${rec.url}/api/push/pushtoken?status=up&msg=OK&ping=`, 'success', { logger, retries: 0, durationMs: 5 });
    expect(rec.requests[0].url).toBe('/api/push/pushtoken?status=up&msg=OK&ping=5');
    expect(r.error).not.toContain('pushtoken');
    expect(mask(`see ${rec.url}/api/push/pushtoken`)).not.toContain('pushtoken');
  });
});

describe('writeTextfile', () => {
  it('writes mode 0644 whatever the umask, and leaves no temporary file', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'ha.prom');
    const old = process.umask(0o077);
    try {
      await writeTextfile(file, 'a 1\n');
    } finally {
      process.umask(old);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('a 1\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(fs.readdirSync(dir)).toEqual(['ha.prom']);
    expect(path.basename(textfileTemp(file))).toMatch(/^\.ha\.prom\.[0-9a-f]{12}\.tmp$/);
  });

  it('is replaced whole: a reader never sees a partial file', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'ha.prom');
    const body = (n: number): string => `${'x'.repeat(256 * 1024 + n)}\n# end ${n}\n`;
    await writeTextfile(file, body(0));
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const text = fs.readFileSync(file, 'utf8');
        const m = /# end (\d+)\n$/.exec(text);
        expect(m).not.toBeNull();
        expect(text).toBe(body(Number(m?.[1])));
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 1; i <= 40; i++) await writeTextfile(file, body(i));
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(fs.readFileSync(file, 'utf8')).toBe(body(40));
    expect(fs.readdirSync(dir)).toEqual(['ha.prom']);
  });

  it('fails in a folder that does not exist, leaving nothing behind', async () => {
    const dir = tmpDir();
    await expect(writeTextfile(path.join(dir, 'missing', 'ha.prom'), 'a 1\n')).rejects.toThrow(/ENOENT/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
