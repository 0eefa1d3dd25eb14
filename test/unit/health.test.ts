/** Health checks against real local servers: http, https with a self-signed certificate, tcp, command. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeCheck, runCheck, runChecks, type HealthCheck } from '../../core/health/checks';
import { checksOf } from '../../core/update/steps';

const signal = new AbortController().signal;
let plain: http.Server;
let secure: https.Server;
let dir: string;
let plainUrl: string;
let secureUrl: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-health-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 3000);
    if (req.url === '/down') {
      res.writeHead(503);
      return void res.end('maintenance');
    }
    res.end('<html>Nextcloud is installed: version 29.0.1</html>');
  };
  plain = http.createServer(handler);
  secure = https.createServer(
    { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) },
    handler,
  );
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
  plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  secureUrl = `https://127.0.0.1:${(secure.address() as AddressInfo).port}`;
});
afterAll(async () => {
  plain.closeAllConnections();
  secure.closeAllConnections();
  await new Promise((r) => plain.close(r));
  await new Promise((r) => secure.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('http checks', () => {
  it('pass on the expected status and body, fail with the reason otherwise', async () => {
    expect(await runCheck({ type: 'http', url: `${plainUrl}/`, body_contains: 'installed' }, { signal })).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^status 200 in \d+ ms$/),
    });
    expect(await runCheck({ type: 'http', url: `${plainUrl}/`, body_matches: 'version \\d+\\.\\d+' }, { signal })).toMatchObject({
      ok: true,
    });
    expect(await runCheck({ type: 'http', url: `${plainUrl}/down` }, { signal })).toMatchObject({
      ok: false,
      detail: 'status 503, expected 2xx or 3xx',
    });
    expect(await runCheck({ type: 'http', url: `${plainUrl}/down`, expect_status: [503] }, { signal })).toMatchObject({ ok: true });
    expect(await runCheck({ type: 'http', url: `${plainUrl}/`, body_contains: 'Welcome' }, { signal })).toMatchObject({
      ok: false,
      detail: 'status 200, but the body does not contain "Welcome"',
    });
    expect(await runCheck({ type: 'http', url: `${plainUrl}/slow`, timeout: 0.3 }, { signal })).toMatchObject({
      ok: false,
      detail: 'no answer within 0.3s',
    });
  });
  it('verify TLS unless told the certificate is self-signed (or given its CA)', async () => {
    const refused = await runCheck({ type: 'http', url: `${secureUrl}/` }, { signal });
    expect(refused.ok).toBe(false);
    expect(refused.detail).toMatch(/self[- ]signed|DEPTH_ZERO_SELF_SIGNED_CERT/i);
    expect(await runCheck({ type: 'http', url: `${secureUrl}/`, insecure: true }, { signal })).toMatchObject({ ok: true });
    expect(await runCheck({ type: 'http', url: `${secureUrl}/`, ca_file: path.join(dir, 'cert.pem') }, { signal })).toMatchObject({
      ok: true,
    });
  });
  it('never names a password from the URL', () => {
    expect(describeCheck({ type: 'http', url: 'https://admin:s3cret@nas.lan/health' })).toBe('http https://nas.lan/health');
  });
});

describe('tcp, command and running checks', () => {
  it('tcp: a connection opens, or the reason it did not', async () => {
    const port = (plain.address() as AddressInfo).port;
    expect(await runCheck({ type: 'tcp', host: '127.0.0.1', port }, { signal })).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^connected in \d+ ms$/),
    });
    expect((await runCheck({ type: 'tcp', host: '127.0.0.1', port: 1 }, { signal })).detail).toMatch(/ECONNREFUSED/);
  });
  it('command: its exit code, run without a shell', async () => {
    expect(await runCheck({ type: 'command', command: ['test', '-d', dir] }, { signal })).toMatchObject({ ok: true, detail: 'exit 0' });
    expect(await runCheck({ type: 'command', command: 'sh -c "echo broken >&2; exit 3"', expect_exit: 0 }, { signal })).toMatchObject({
      ok: false,
      detail: 'exit 3, expected 0: broken',
    });
    // a string is split into words, not given to a shell: $(…) stays literal
    expect(await runCheck({ type: 'command', command: 'test -e $(touch /tmp/ha-injected)' }, { signal })).toMatchObject({ ok: false });
    expect(fs.existsSync('/tmp/ha-injected')).toBe(false);
  });
  it('running: asks the service; all checks must pass', async () => {
    const r = await runChecks([{ type: 'running' }, { type: 'tcp', host: '127.0.0.1', port: 1 }], { signal, running: async () => true });
    expect(r.ok).toBe(false);
    expect(r.results.map((x) => x.ok)).toEqual([true, false]);
    expect(await runCheck({ type: 'running' }, { signal })).toMatchObject({
      ok: false,
      detail: 'this service type cannot tell whether it runs',
    });
  });
});

describe('the checks of an update', () => {
  it('leave backup freshness to the monitor (it says nothing about whether the update worked)', () => {
    const svc = (checks: HealthCheck[]): never => ({ name: 'web', type: 'lxc', health_checks: checks }) as never;
    const backup: HealthCheck = { type: 'backup', max_age: '26h' };
    const tcp: HealthCheck = { type: 'tcp', host: '127.0.0.1', port: 1 };
    expect(checksOf({ svc: svc([backup, tcp]), driver: {} as never })).toEqual([tcp]);
    expect(checksOf({ svc: svc([backup]), driver: { running: async () => true } as never })).toEqual([{ type: 'running' }]);
  });
});

describe('every check type of the monitor, in an update too', () => {
  it('runs icmp, dns, tls and backup checks as what they are (they once fell through to running)', async () => {
    expect(await runCheck({ type: 'icmp', host: '127.0.0.1' }, { signal })).toMatchObject({ ok: true, check: 'icmp 127.0.0.1' });
    expect(await runCheck({ type: 'dns', query: 'x.test', server: 'not-an-address' }, { signal })).toMatchObject({
      ok: false,
      detail: 'invalid DNS server "not-an-address": an address, address:port, or [IPv6]:port',
    });
    const tls = await runCheck({ type: 'tls', url: `${secureUrl}/`, ca_file: path.join(dir, 'cert.pem') }, { signal });
    expect(tls).toMatchObject({ ok: true, detail: expect.stringMatching(/^certificate valid until .* \([12](\.\d)? days\)$/) });
    expect(await runCheck({ type: 'backup', max_age: '26h' }, { signal, service: { name: 'web' } as never })).toMatchObject({
      ok: false,
      detail: 'backup freshness needs the state database, which is not open',
    });
  });
  it('names each check', () => {
    expect(describeCheck({ type: 'icmp', host: 'router.lan' })).toBe('icmp router.lan');
    expect(describeCheck({ type: 'dns', query: 'cloud.lan', server: '10.0.0.53' })).toBe('dns cloud.lan A @10.0.0.53');
    expect(describeCheck({ type: 'tls', url: 'https://cloud.example.org:8443/' })).toBe('tls cloud.example.org:8443');
    expect(describeCheck({ type: 'tls', host: 'nas.lan' })).toBe('tls nas.lan:443');
    expect(describeCheck({ type: 'backup', max_age: '26h' })).toBe('backup within 26h');
  });
});
