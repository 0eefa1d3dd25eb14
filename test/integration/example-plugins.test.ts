import * as fs from 'node:fs';
import * as path from 'node:path';
import { createPlugins, discoverPlugins } from '../../core/plugins/host';
import type { HypervisorPlugin, NotificationPlugin, OperationContext } from '../../core/plugins/contract';
import { silentLogger } from '../../lib/log';
import { cleanupTmp, ROOT, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

const op: OperationContext = { signal: new AbortController().signal, logger: silentLogger, dryRun: false };

describe('the example plugins in examples/plugins.d work through the public contract', () => {
  it('the notification example appends messages and the hypervisor example reads unit states', async () => {
    const dir = tmpDir();
    // a stand-in for systemctl: `is-active -- UNIT` prints active for nginx.service
    const fake = write(path.join(dir, 'systemctl'), '#!/bin/sh\n[ "$3" = nginx.service ] && echo active && exit 0\necho inactive; exit 3\n', 0o755);
    const found = await discoverPlugins({ builtinRoot: path.join(ROOT, 'dist', 'plugins'), pluginsDir: path.join(ROOT, 'examples', 'plugins.d') });
    expect(found.failures).toEqual([]);
    const store = new Map<string, string>();
    const registry = await createPlugins(found, {
      options: { 'jsonl-notify': { path: path.join(dir, 'out/notifications.jsonl') }, 'systemd-units': { systemctl: fake } },
      configDir: dir,
      locator: (p) => ({ file: 'test', line: p.length }),
      logger: silentLogger,
      signal: op.signal,
      store: () => ({ get: (k) => store.get(k), set: (k, v) => void store.set(k, JSON.stringify(v)), delete: (k) => void store.delete(k), exists: (k) => store.has(k) }),
    });
    expect(registry.failures).toEqual([]);

    const notify = registry.require<NotificationPlugin>('notification', 'jsonl-notify', 'test');
    const message = { event: 'backup_failed', severity: 'critical' as const, subject: 'photos', title: 'Backup of photos failed', text: '/srv/photos does not exist', time: '2026-11-22T02:30:00Z' };
    await notify.send(message, {}, op);
    await notify.send({ ...message, event: 'backup_success', severity: 'success' }, {}, op);
    const lines = fs.readFileSync(path.join(dir, 'out/notifications.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l: { event: string }) => l.event)).toEqual(['backup_failed', 'backup_success']);

    const hv = registry.require<HypervisorPlugin>('hypervisor', 'systemd-units', 'test');
    expect(await hv.guestStatus({ service: 'web', id: 'nginx.service' }, op)).toMatchObject({ id: 'nginx.service', state: 'running' });
    expect(await hv.guestStatus({ service: 'db', id: 'postgresql.service' }, op)).toMatchObject({ state: 'stopped' });
    await expect(hv.guestStatus({ service: 'x', id: 'bad; rm -rf /' }, op)).rejects.toThrow(/invalid unit name/);
  });
});
