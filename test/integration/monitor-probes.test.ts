/**
 * The monitor's network probes against real parts on loopback: HTTP and HTTPS servers (some
 * slow, one that never answers; certificates made here by openssl: self-signed, expired, signed
 * by a test CA, one expiring in 5 days), TCP, a real dnsmasq on a loopback port, real `ping`,
 * and a command.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { promises as dns } from 'node:dns';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { externalProbe, probeFor } from '../../core/monitor/probes';
import type { HealthCheck } from '../../core/health/checks';
import type { ProbeEnv, ProbeResult } from '../../core/monitor/types';
import { cleanupTmp, ROOT, tmpDir } from '../helpers/cli';

let dir: string;
const servers: net.Server[] = [];
const port: Record<string, number> = {};
let dnsmasq: ChildProcess | null = null;
let dnsPort = 0;

function env(timeoutMs: number, signal = new AbortController().signal): ProbeEnv {
  return { signal, timeoutMs, now: () => new Date(), state: null, history: () => [] };
}
const run = (c: HealthCheck, timeoutMs = 3000): Promise<ProbeResult> => probeFor(c)(env(timeoutMs));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A leaf for example.test and 127.0.0.1 signed by the test CA, valid `days` (-1: expired yesterday). */
function leaf(name: string, days: number): void {
  openssl('req', '-new', ...EC, '-subj', '/CN=example.test', '-keyout', `${name}.key`, '-out', `${name}.csr`);
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    String(days),
    '-extfile',
    'san.ext',
    '-out',
    `${name}.pem`,
  );
}

function makeCerts(): void {
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:example.test,IP:127.0.0.1\n');
  openssl(
    'req',
    '-x509',
    ...EC,
    '-days',
    '30',
    '-subj',
    '/CN=Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  );
  openssl(
    'req',
    '-x509',
    ...EC,
    '-days',
    '30',
    '-subj',
    '/CN=self',
    '-addext',
    'subjectAltName=DNS:example.test,IP:127.0.0.1',
    '-keyout',
    'self.key',
    '-out',
    'self.pem',
  );
  leaf('good', 200);
  leaf('soon', 5);
  leaf('expired', -1);
}

async function listen(name: string, s: net.Server): Promise<void> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  port[name] = (s.address() as net.AddressInfo).port;
}

const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  if (req.url === '/hang') return; // never answers
  if (req.url === '/slow') return void setTimeout(() => res.end('late'), 400);
  if (req.url === '/down') {
    res.writeHead(503);
    return void res.end('maintenance');
  }
  res.end(`<html>Nextcloud is installed (Host: ${req.headers.host})</html>`);
};

async function freeUdpPort(): Promise<number> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const p = sock.address().port;
  await new Promise<void>((r) => sock.close(() => r()));
  return p;
}

async function startDnsmasq(): Promise<void> {
  dnsPort = await freeUdpPort();
  dnsmasq = spawn(
    '/usr/sbin/dnsmasq',
    [
      '--no-daemon',
      '--conf-file=/dev/null',
      `--port=${dnsPort}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--address=/example.test/127.0.0.1',
      '--address=/other.test/10.1.2.3',
      '--address=/v6.test/fd00::53',
      `--pid-file=${path.join(dir, 'dnsmasq.pid')}`,
    ],
    { stdio: 'ignore' },
  );
  const r = new dns.Resolver({ timeout: 200, tries: 1 });
  r.setServers([`127.0.0.1:${dnsPort}`]);
  for (let i = 0; i < 50; i++) {
    if (
      await r.resolve4('other.test').then(
        () => true,
        () => false,
      )
    )
      return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('dnsmasq did not answer');
}

beforeAll(async () => {
  dir = tmpDir('ha-probes-');
  makeCerts();
  const tlsServer = (name: string): https.Server =>
    https.createServer(
      { key: fs.readFileSync(path.join(dir, `${name}.key`)), cert: fs.readFileSync(path.join(dir, `${name}.pem`)) },
      handler,
    );
  await listen('http', http.createServer(handler));
  for (const name of ['self', 'good', 'soon', 'expired']) await listen(name, tlsServer(name));
  await listen(
    'tcp',
    net.createServer((s) => s.end()),
  );
  // accepts, then says nothing: a TLS handshake with it never ends
  await listen(
    'mute',
    net.createServer(() => {}),
  );
  await startDnsmasq();
});

afterAll(async () => {
  dnsmasq?.kill('SIGTERM');
  for (const s of servers) {
    (s as http.Server).closeAllConnections?.();
    s.close();
  }
  cleanupTmp();
});

describe('http(s)', () => {
  const url = (name: string, p = '/'): string => `${name === 'http' ? 'http' : 'https'}://127.0.0.1:${port[name]}${p}`;
  it('passes on the status and body with its response time, and says why it fails', async () => {
    expect(await run({ type: 'http', url: url('http'), body_contains: 'installed' })).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^status 200 in \d+ ms$/),
    });
    expect(await run({ type: 'http', url: url('http', '/down') })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^status 503, expected 2xx or 3xx/),
    });
    expect(await run({ type: 'http', url: url('http', '/down'), expect_status: 503 })).toMatchObject({ ok: true });
    expect((await run({ type: 'http', url: url('http'), body_matches: 'Nextcloud is (down|broken)' })).detail).toBe(
      'status 200, but the body does not match /Nextcloud is (down|broken)/',
    );
  });
  it('fails an answer slower than max_response_ms, and one that does not come within the timeout', async () => {
    const slow = await run({ type: 'http', url: url('http', '/slow'), max_response_ms: 100 });
    expect(slow).toMatchObject({ ok: false, detail: expect.stringMatching(/^status 200 in \d+ ms, slower than 100 ms$/) });
    const late = await run({ type: 'http', url: url('http', '/slow') }, 150);
    expect(late).toMatchObject({ ok: false, detail: 'no answer within 0.2s' });
    expect(late.durationMs).toBeLessThan(400);
  });
  it('verifies TLS: refuses self-signed and expired certificates, accepts the test CA given as ca_file, or none with insecure', async () => {
    expect((await run({ type: 'http', url: url('self') })).detail).toMatch(/self[- ]signed/);
    expect((await run({ type: 'http', url: url('expired'), ca_file: path.join(dir, 'ca.pem') })).detail).toMatch(/expired/);
    expect(await run({ type: 'http', url: url('good'), ca_file: path.join(dir, 'ca.pem') })).toMatchObject({ ok: true });
    expect((await run({ type: 'http', url: url('good') })).ok).toBe(false);
    expect(await run({ type: 'http', url: url('self'), insecure: true })).toMatchObject({ ok: true });
    expect(await run({ type: 'http', url: url('good'), ca_file: path.join(dir, 'missing.pem') })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^cannot read ca_file .*missing\.pem/),
    });
  });
  it('reads ca_file once, not at every run', async () => {
    const ca = path.join(dir, 'ca-once.pem');
    fs.copyFileSync(path.join(dir, 'ca.pem'), ca);
    const probe = probeFor({ type: 'http', url: url('good'), ca_file: ca });
    expect((await probe(env(3000))).ok).toBe(true);
    fs.rmSync(ca);
    expect((await probe(env(3000))).ok).toBe(true);
  });
  it('a hanging server fails at its own timeout while the others, run at the same time, finish on time', async () => {
    const t0 = Date.now();
    const checks = [
      run({ type: 'http', url: url('http', '/hang') }, 1000),
      ...Array.from({ length: 8 }, () => run({ type: 'http', url: url('http') }, 1000)),
      run({ type: 'tcp', host: '127.0.0.1', port: port.tcp }, 1000),
    ];
    const finished: number[] = [];
    checks.forEach((p, i) => void p.then(() => (finished[i] = Date.now() - t0)));
    const [hung, ...rest] = await Promise.all(checks);
    expect(hung).toMatchObject({ ok: false, detail: 'no answer within 1s' });
    expect(hung.durationMs).toBeGreaterThanOrEqual(950);
    expect(hung.durationMs).toBeLessThan(1500);
    for (const r of rest) expect(r.ok).toBe(true);
    expect(Math.max(...finished.slice(1))).toBeLessThan(500);
  });
  it('stops at once when the signal aborts', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await probeFor({ type: 'http', url: url('http', '/hang') })(env(5000, ac.signal));
    expect(r).toMatchObject({ ok: false, detail: 'cancelled' });
    expect(r.durationMs).toBeLessThan(1000);
  });
});

describe('tcp and tls', () => {
  it('tcp: connected with its time, or the reason', async () => {
    expect(await run({ type: 'tcp', host: '127.0.0.1', port: port.tcp })).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^connected in \d+ ms$/),
    });
    expect((await run({ type: 'tcp', host: '127.0.0.1', port: 1 })).detail).toMatch(/ECONNREFUSED/);
  });
  it('tls: days left as the value, a warning within warn_days, a failure when expired or not trusted', async () => {
    const ca = path.join(dir, 'ca.pem');
    const good = await run({ type: 'tls', host: '127.0.0.1', port: port.good, ca_file: ca });
    expect(good).toMatchObject({
      ok: true,
      warning: null,
      detail: expect.stringMatching(/^certificate valid until \d{4}-\d\d-\d\d \((199|200)(\.\d)? days\)$/),
    });
    expect(good.value).toBeGreaterThan(199);
    const soon = await run({ type: 'tls', url: `https://127.0.0.1:${port.soon}/`, ca_file: ca });
    expect(soon).toMatchObject({ ok: true, warning: expect.stringMatching(/^certificate expires in (4\.\d|5) days/) });
    expect(await run({ type: 'tls', host: '127.0.0.1', port: port.soon, ca_file: ca, warn_days: 3 })).toMatchObject({
      ok: true,
      warning: null,
    });
    expect(await run({ type: 'tls', host: '127.0.0.1', port: port.expired, ca_file: ca })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^certificate expired on \d{4}-\d\d-\d\d/),
    });
    expect(await run({ type: 'tls', host: '127.0.0.1', port: port.self })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT/),
    });
    expect(await run({ type: 'tls', host: '127.0.0.1', port: port.self, insecure: true })).toMatchObject({ ok: true });
  });
  it('tls: a server that never completes the handshake fails at the timeout', async () => {
    expect(await run({ type: 'tls', host: '127.0.0.1', port: port.mute }, 300)).toMatchObject({
      ok: false,
      detail: 'no answer within 0.3s',
    });
  });
});

describe('dns against a real dnsmasq', () => {
  const server = (): string => `127.0.0.1:${dnsPort}`;
  it('resolves A and AAAA records and matches any expected address', async () => {
    expect(await run({ type: 'dns', query: 'other.test', server: server(), expect: ['10.9.9.9', '10.1.2.3'] })).toMatchObject({
      ok: true,
      detail: expect.stringMatching(new RegExp(`^other\\.test A 10\\.1\\.2\\.3 \\(from 127\\.0\\.0\\.1:${dnsPort}\\) in \\d+ ms$`)),
    });
    expect(await run({ type: 'dns', query: 'v6.test', record_type: 'AAAA', server: server(), expect: 'fd00:0:0::53' })).toMatchObject({
      ok: true,
    });
  });
  it('fails on another address, a name that does not exist, and a server that does not answer', async () => {
    expect((await run({ type: 'dns', query: 'other.test', server: server(), expect: '10.9.9.9' })).detail).toMatch(
      /10\.1\.2\.3.*: expected 10\.9\.9\.9$/,
    );
    // dnsmasq without upstream servers refuses names it does not know
    expect(await run({ type: 'dns', query: 'unknown.invalid', server: server() })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^unknown\.invalid A: /),
    });
    const silent = await freeUdpPort();
    const r = await run({ type: 'dns', query: 'other.test', server: `127.0.0.1:${silent}` }, 500);
    expect(r.ok).toBe(false);
    expect(r.durationMs).toBeLessThan(1500);
  });
  it('refuses a server that is not an address', async () => {
    expect((await run({ type: 'dns', query: 'other.test', server: 'ns1.example' })).detail).toMatch(/^invalid DNS server "ns1\.example"/);
  });
});

describe('external: the public URL as the outside sees it', () => {
  it('resolves the name with the given resolver and connects to that address with the name as Host', async () => {
    const r = await externalProbe({
      url: `http://example.test:${port.http}/`,
      resolver: `127.0.0.1:${dnsPort}`,
      body_contains: 'installed',
      warn_days: 14,
    })(env(3000));
    expect(r).toMatchObject({
      ok: true,
      detail: expect.stringMatching(new RegExp(`^status 200 in \\d+ ms from example\\.test:${port.http} \\(127\\.0\\.0\\.1\\)$`)),
    });
  });
  it('says which stage failed: DNS, TLS or status', async () => {
    const resolver = `127.0.0.1:${dnsPort}`;
    expect((await externalProbe({ url: 'https://nothing.invalid/', resolver, warn_days: 14 })(env(3000))).detail).toMatch(
      /^DNS: nothing\.invalid A: /,
    );
    expect((await externalProbe({ url: `https://example.test:${port.self}/`, resolver, warn_days: 14 })(env(3000))).detail).toMatch(
      /^TLS: example\.test:\d+ \(127\.0\.0\.1\): .*self[- ]signed/,
    );
    expect((await externalProbe({ url: `http://example.test:${port.http}/down`, resolver, warn_days: 14 })(env(3000))).detail).toMatch(
      /^status: status 503, expected 2xx or 3xx from example\.test/,
    );
  });
  it('verifies TLS with the name as SNI and warns within warn_days (the test CA trusted as a user would: NODE_EXTRA_CA_CERTS)', async () => {
    const script = `
      const { externalProbe } = require(${JSON.stringify(path.join(ROOT, 'dist/core/monitor/probes.js'))});
      const env = { signal: new AbortController().signal, timeoutMs: 3000, now: () => new Date(), state: null, history: () => [] };
      Promise.all([${port.good}, ${port.soon}].map((p) => externalProbe({ url: 'https://example.test:' + p + '/', resolver: '127.0.0.1:${dnsPort}', warn_days: 14 })(env)))
        .then((r) => process.stdout.write(JSON.stringify(r)));`;
    // not execFileSync: the servers answering it run in this process
    const { stdout: out } = await promisify(execFile)(process.execPath, ['-e', script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') },
    });
    const [good, soon] = JSON.parse(out) as ProbeResult[];
    expect(good).toMatchObject({
      ok: true,
      warning: null,
      detail: expect.stringMatching(/^status 200 in \d+ ms from example\.test:\d+ \(127\.0\.0\.1\), certificate valid until/),
    });
    expect(soon).toMatchObject({ ok: true, warning: expect.stringMatching(/^certificate expires in (4\.\d|5) days/) });
  });
});

describe('icmp through a real ping', () => {
  it('pings 127.0.0.1 and gives the round-trip time', async () => {
    const r = await run({ type: 'icmp', host: '127.0.0.1' });
    expect(r).toMatchObject({ ok: true, detail: expect.stringMatching(/^reply from 127\.0\.0\.1 in [0-9.]+ ms$/) });
    expect(typeof r.value).toBe('number');
  });
  it('fails for a name that does not resolve, and never passes an option as the host', async () => {
    expect(await run({ type: 'icmp', host: 'nosuch.invalid' })).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/nosuch\.invalid: (Name or service not known|Temporary failure)/),
    });
    expect(await run({ type: 'icmp', host: '-f' })).toMatchObject({ ok: false, detail: 'invalid host for ping: "-f"' });
  });
  it('says to install iputils-ping when ping is missing', async () => {
    const saved = process.env.PATH;
    process.env.PATH = tmpDir('ha-empty-path-');
    try {
      expect(await run({ type: 'icmp', host: '127.0.0.1' })).toMatchObject({
        ok: false,
        detail: 'ping is not installed: install iputils-ping',
      });
    } finally {
      process.env.PATH = saved;
    }
  });
  it('names cap_net_raw and ping_group_range when ping may not open its socket (an unprivileged user, ping without its capability)', () => {
    const bin = tmpDir('ha-nocap-');
    fs.chmodSync(bin, 0o755);
    fs.copyFileSync('/usr/bin/ping', path.join(bin, 'ping')); // a copy has no file capabilities
    fs.chmodSync(path.join(bin, 'ping'), 0o755);
    const groups = fs.readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
    expect(groups[0]).toBeGreaterThan(groups[1]); // no group may open ICMP sockets here, as on Debian
    const script = `
      const { probeFor } = require(${JSON.stringify(path.join(ROOT, 'dist/core/monitor/probes.js'))});
      probeFor({ type: 'icmp', host: '127.0.0.1' })({ signal: new AbortController().signal, timeoutMs: 3000, now: () => new Date(), state: null, history: () => [] })
        .then((r) => process.stdout.write(JSON.stringify(r)));`;
    const out = execFileSync('/usr/bin/setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script], {
      env: { PATH: bin },
      cwd: '/',
    });
    const r = JSON.parse(out.toString()) as ProbeResult;
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/^ping is not permitted here \(.*Operation not permitted.*\): .*cap_net_raw.*net\.ipv4\.ping_group_range/);
  });
});

describe('command', () => {
  it('passes on the expected exit code, runs no shell, and stops at its timeout', async () => {
    expect(await run({ type: 'command', command: ['test', '-d', dir] })).toMatchObject({ ok: true, detail: 'exit 0' });
    expect(await run({ type: 'command', command: 'sh -c "echo broken >&2; exit 3"' })).toMatchObject({
      ok: false,
      detail: 'exit 3, expected 0: broken',
    });
    expect(await run({ type: 'command', command: ['sleep', '5'] }, 300)).toMatchObject({ ok: false, detail: 'no answer within 0.3s' });
  });
});
