import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupTmp, ROOT, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

/**
 * The example plugins in examples/plugins.d, loaded by the built plugin host (in a plain
 * Node process: the notification example is an ES module, which jest's sandbox cannot
 * import) and called through the public contract.
 */
describe('the example plugins in examples/plugins.d work through the public contract', () => {
  it('the notification example appends messages and the hypervisor example reads unit states', () => {
    const dir = tmpDir();
    // a stand-in for systemctl: `is-active -- UNIT` prints active for nginx.service
    const fake = write(
      path.join(dir, 'systemctl'),
      '#!/bin/sh\n[ "$3" = nginx.service ] && echo active && exit 0\necho inactive; exit 3\n',
      0o755,
    );
    const script = write(
      path.join(dir, 'drive.js'),
      `
const path = require('node:path');
const { discoverPlugins, createPlugins } = require(${JSON.stringify(path.join(ROOT, 'dist/core/plugins/host.js'))});
const { silentLogger } = require(${JSON.stringify(path.join(ROOT, 'dist/lib/log.js'))});
const op = { signal: new AbortController().signal, logger: silentLogger, dryRun: false };
(async () => {
  const found = await discoverPlugins({ builtinRoot: ${JSON.stringify(path.join(ROOT, 'dist/plugins'))}, pluginsDir: ${JSON.stringify(path.join(ROOT, 'examples/plugins.d'))} });
  const store = new Map();
  const registry = await createPlugins(found, {
    options: { 'jsonl-notify': { path: ${JSON.stringify(path.join(dir, 'out/notifications.jsonl'))} }, 'systemd-units': { systemctl: ${JSON.stringify(fake)} } },
    configDir: ${JSON.stringify(dir)},
    stateDir: ${JSON.stringify(path.join(dir, 'state'))},
    locator: () => ({ file: 'test' }),
    logger: silentLogger,
    signal: op.signal,
    store: () => ({ get: (k) => store.get(k), set: (k, v) => store.set(k, v), delete: (k) => store.delete(k), exists: (k) => store.has(k) }),
  });
  const notify = registry.require('notification', 'jsonl-notify', 'test');
  const message = { event: 'backup_failed', severity: 'critical', subject: 'photos', title: 'Backup of photos failed', text: '/srv/photos does not exist', time: '2026-11-22T02:30:00Z' };
  await notify.send(message, {}, op);
  await notify.send({ ...message, event: 'backup_success', severity: 'success' }, {}, op);
  const hv = registry.require('hypervisor', 'systemd-units', 'test');
  const running = await hv.guestStatus({ service: 'web', id: 'nginx.service' }, op);
  const stopped = await hv.guestStatus({ service: 'db', id: 'postgresql.service' }, op);
  let refused = null;
  try { await hv.guestStatus({ service: 'x', id: 'bad; rm -rf /' }, op); } catch (e) { refused = e.message; }
  console.log(JSON.stringify({ failures: registry.failures, loaded: registry.loaded.map((p) => p.def.name), running, stopped, refused }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const out = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' }));
    expect(out.failures).toEqual([]);
    expect(out.loaded).toEqual([
      'docker',
      'proxmox',
      'caddy',
      'docker-compose',
      'files',
      'host',
      'nginx-proxy-manager',
      'command',
      'discord',
      'email',
      'gotify',
      'ntfy',
      'slack',
      'webhook',
      'dump',
      'jsonl-notify',
      'systemd-units',
    ]);
    const lines = fs
      .readFileSync(path.join(dir, 'out/notifications.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string });
    expect(lines.map((l) => l.event)).toEqual(['backup_failed', 'backup_success']);
    expect(out.running).toMatchObject({ id: 'nginx.service', state: 'running' });
    expect(out.stopped).toMatchObject({ id: 'postgresql.service', state: 'stopped' });
    expect(out.refused).toMatch(/invalid unit name/);
  });
});
