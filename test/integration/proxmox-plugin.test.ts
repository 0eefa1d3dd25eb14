/**
 * The proxmox plugin's client and operations against the PVE API simulator (test/pve-sim),
 * which behaves like the real API in the points of ../shared/pve-api-notes.md and checks every
 * request against the official API schema (../shared/pve-apidata.json).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PveClient, PveError } from '../../plugins/hypervisors/proxmox/client';
import { ProxmoxApi, parseUpid, taskSucceeded, TaskError } from '../../plugins/hypervisors/proxmox/api';
import { sim as startSim, useSim, type Sim } from '../helpers/pve';

const quiet = { error() {}, warn() {}, info() {}, debug() {} };

let sim: Sim;
useSim((s) => (sim = s));

function api(extra: Partial<ConstructorParameters<typeof PveClient>[0]> = {}): ProxmoxApi {
  const [tokenId, tokenSecret] = [sim.token.slice(0, sim.token.lastIndexOf('=')), sim.token.slice(sim.token.lastIndexOf('=') + 1)];
  const client = new PveClient({
    host: '127.0.0.1',
    port: sim.port,
    tokenId,
    tokenSecret,
    fingerprint: sim.fingerprint,
    timeoutMs: 10_000,
    retries: 2,
    breakerThreshold: 3,
    breakerCooldownMs: 30_000,
    backoffMs: 20,
    logger: quiet,
    ...extra,
  });
  return new ProxmoxApi(client, quiet);
}

const fast = { pollMaxMs: 100 };
const unexpected = (): PveError => {
  throw new Error('expected it to fail');
};

describe('UPIDs and task results', () => {
  it('parses a UPID (9 parts, uppercase hex, token user) and rejects others', () => {
    const u = parseUpid('UPID:pve1:000934AF:0D015579:68BF3A41:vzdump:100:root@pam!autopilot:');
    expect(u).toMatchObject({ node: 'pve1', pid: 0x934af, starttime: 0x68bf3a41, type: 'vzdump', id: '100', user: 'root@pam!autopilot' });
    expect(parseUpid('UPID:pve1:000934AF:0D015579:68BF3A41:vzdump::root@pam:')?.id).toBe('');
    expect(parseUpid('UPID:pve1:000934AF:0D015579:68BF3A41:vzdump:100:root@pam')).toBeNull();
  });
  it('counts OK and WARNINGS: n as success, anything else as failure', () => {
    expect(taskSucceeded('OK')).toBe(true);
    expect(taskSucceeded('WARNINGS: 3')).toBe(true);
    for (const s of ['job errors', 'unexpected status', 'VM 100 already running', undefined]) expect(taskSucceeded(s)).toBe(false);
  });
});

describe('TLS', () => {
  it('talks to the node whose certificate has the configured SHA-256 fingerprint', async () => {
    expect((await api().cluster()).nodes.map((n) => n.node).sort()).toEqual(['pve1', 'pve2', 'pve3']);
  });
  it('refuses a wrong fingerprint before sending anything (not even the token)', async () => {
    sim.resetRequests();
    const wrong = sim.fingerprint.replace(/^../, sim.fingerprint.startsWith('AA') ? 'BB' : 'AA');
    await expect(api({ fingerprint: wrong }).cluster()).rejects.toThrow(
      /refused to talk to 127\.0\.0\.1: the server's certificate fingerprint is .*not the configured/,
    );
    expect(sim.requests).toHaveLength(0);
  });
  it('verifies against a CA file, and refuses a self-signed certificate by default', async () => {
    expect((await api({ fingerprint: undefined, caFile: sim.certFile }).cluster()).quorate).toBe(true);
    const e = await api({ fingerprint: undefined })
      .cluster()
      .then(unexpected, (x: PveError) => x);
    expect(e).toBeInstanceOf(PveError);
    expect(e.message).toMatch(/TLS verification of 127\.0\.0\.1 failed/);
    expect(e.hint).toMatch(/fingerprint/);
  });
});

describe('authentication', () => {
  it('logs in with a ticket, sends the CSRF token on writes, and logs in again when the ticket expired', async () => {
    const a = api({ tokenId: undefined, tokenSecret: undefined, username: 'root@pam', password: 'simpass' });
    expect(await a.nextId()).toBeGreaterThanOrEqual(100);
    const snap = await a.snapshot(100, 'before_ticket', 'test', fast);
    expect(snap.ok).toBe(true);
    sim.faults.expireTickets();
    sim.resetRequests();
    // the old ticket is refused (401), a new login follows, the request is repeated once
    const list = await a.snapshots(100);
    expect(list.map((s) => s.name)).toContain('before_ticket');
    const statuses = sim.requests.map((r: { method: string; path: string; status: number }) => `${r.method} ${r.path} ${r.status}`);
    expect(statuses).toEqual(expect.arrayContaining(['POST /access/ticket 200']));
    expect(statuses.some((s: string) => / 401$/.test(s))).toBe(true);
    await a.deleteSnapshot(100, 'before_ticket', fast);
  });
  it('says what to check on a 401 (wrong password, wrong token)', async () => {
    const e1 = await api({ tokenId: undefined, tokenSecret: undefined, username: 'root@pam', password: 'wrong' })
      .nextId()
      .then(unexpected, (x: PveError) => x);
    expect(e1.status).toBe(401);
    expect(e1.message).toMatch(/Proxmox refused the credentials \(401 authentication failure\)/);
    expect(e1.hint).toMatch(/username .* and password/);
    const e2 = await api({ tokenSecret: 'nope' })
      .nextId()
      .then(unexpected, (x: PveError) => x);
    expect(e2.message).toMatch(/401 Authentication failed!/);
    expect(e2.hint).toMatch(/token_id .* token_secret/);
  });
  it('names the path and privilege on a 403 (a privilege-separated token)', async () => {
    const a = api({ tokenId: 'root@pam!limited', tokenSecret: 'limited-secret' });
    // list endpoints filter silently: the token sees only guest 100
    expect([...(await a.locate()).keys()]).toEqual([100]);
    const e = await a.power(100, 'stop', fast).then(unexpected, (x: PveError) => x);
    expect(e.status).toBe(403);
    expect(e.message).toMatch(
      /permission denied for POST \/nodes\/pve1\/lxc\/100\/status\/stop: Permission check failed \(\/vms\/100, VM\.PowerMgmt\)/,
    );
  });
});

describe('errors and resilience', () => {
  it("shows each parameter error of a 400, and PVE's message or, on older servers, the reason phrase", async () => {
    const a = api();
    const e = await a.client.get('/cluster/nextid', { vmid: 100 }).then(unexpected, (x: PveError) => x);
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/vmid: VM 100 already exists/);
    const e500 = await a.client.post('/nodes/pve1/lxc/100/status/start').then(unexpected, (x: PveError) => x);
    expect(e500.message).toMatch(/failed: 500 CT 100 already running/);
    sim.options.legacyErrors = true;
    try {
      const old = await a.client.post('/nodes/pve1/lxc/100/status/start').then(unexpected, (x: PveError) => x);
      expect(old.pveMessage).toBe('CT 100 already running');
      expect(old.message).toMatch(/500 CT 100 already running/);
    } finally {
      sim.options.legacyErrors = false;
    }
  });
  it('retries an idempotent read on 5xx, never a write', async () => {
    const a = api();
    sim.faults.fail(500, /GET \/cluster\/resources/, 2);
    expect((await a.locate()).size).toBe(4);
    sim.resetRequests();
    sim.faults.fail(503, /POST \/nodes\/pve1\/lxc\/100\/snapshot/, 1);
    await expect(a.snapshot(100, 'never_twice', undefined, fast)).rejects.toThrow(/503/);
    expect(sim.requests.filter((r: { method: string; path: string }) => r.method === 'POST' && /snapshot/.test(r.path))).toHaveLength(1);
  });
  it('reports an offline node (595) and fails fast once its breaker is open', async () => {
    const a = api();
    sim.faults.nodeOffline('pve2');
    const e = await a.client.get('/nodes/pve2/status').then(unexpected, (x: PveError) => x);
    expect(e.message).toMatch(/node pve2 is unreachable \(595/);
    sim.resetRequests();
    let answered = false;
    const pending = a.client.get('/nodes/pve2/lxc').then(unexpected, (x: PveError) => ((answered = true), x));
    // fails fast: settled before the event loop's next turn, so without waiting for a backoff, a time-out or the
    // breaker's cooldown (timers fire on a later turn); an ordering, not a wall-clock bound a loaded machine can miss
    await new Promise((r) => setImmediate(r));
    expect(answered).toBe(true);
    const e2 = await pending;
    expect(e2.message).toMatch(/node pve2 is unreachable \(595 No route to host\): \d+ requests in a row failed/);
    expect(sim.requests).toHaveLength(0);
    // other nodes are not affected
    expect(await a.client.get('/nodes/pve1/status')).toBeTruthy();
  });
  it('times a request out', async () => {
    sim.faults.slow(1500, /GET \/version/);
    const a = api({ timeoutMs: 300, retries: 0 });
    await expect(a.client.get('/version')).rejects.toThrow(/no answer within 0\.3s/);
  });
});

describe('tasks', () => {
  it('treats WARNINGS as success and collects the WARN lines', async () => {
    sim.faults.failTask({ type: 'vzsnapshot' }, 'warnings');
    const out = await api().snapshot(101, 'with_warnings', undefined, fast);
    expect(out.ok).toBe(true);
    expect(out.exitstatus).toMatch(/^WARNINGS: \d+$/);
    expect(out.warnings.length).toBeGreaterThan(0);
    await api().deleteSnapshot(101, 'with_warnings', fast);
  });
  it("fails with the task's own ERROR lines, and with 'unexpected status'", async () => {
    sim.faults.failTask({ type: 'vzdump', vmid: 101 }, 'disk full on target');
    const e = await api()
      .vzdump(101, { storage: 'local', mode: 'snapshot', compress: 'zstd' }, fast)
      .then(unexpected, (x: PveError) => x);
    expect(e).toBeInstanceOf(TaskError);
    expect(e.message).toMatch(/vzdump of CT 101 on pve2 failed \(job errors\): .*ERROR: Backup of VM 101 failed - disk full on target/);
    sim.faults.failTask({ type: 'vzsnapshot' }, 'unexpected status');
    await expect(api().snapshot(101, 'crashes', undefined, fast)).rejects.toThrow(/failed \(unexpected status\)/);
  });
  it('reads the whole log of a long task (paged), not the first 50 lines', async () => {
    const a = api();
    sim.faults.failTask({ type: 'vzdump', vmid: 102 }, 'write error on target');
    const e = (await a
      .vzdump(102, { storage: 'nas', mode: 'snapshot', compress: 'zstd' }, fast)
      .then(unexpected, (x: TaskError) => x)) as TaskError;
    const task = sim.tasks.find((t: { upid: string }) => t.upid === e.outcome.upid);
    expect(task.log.length).toBeGreaterThan(100);
    expect(e.outcome.log).toHaveLength(task.log.length);
    // the ERROR line sits past line 50, where a naive client stops reading
    const at = e.outcome.log.findIndex((l) => l.includes('write error on target'));
    expect(at).toBeGreaterThan(50);
    expect(e.message).toContain('ERROR: Backup of VM 102 failed - write error on target');
    const first = await a.client.get<{ n: number }[]>(`/nodes/pve3/tasks/${encodeURIComponent(e.outcome.upid)}/log`);
    expect(first).toHaveLength(50);
  });
  it('stops the task when cancelled', async () => {
    const ac = new AbortController();
    const a = api();
    sim.options.taskDurationMs = 3000;
    try {
      const p = a.snapshot(103, 'cancelled', undefined, { ...fast, signal: ac.signal });
      setTimeout(() => ac.abort(), 400);
      await expect(p).rejects.toThrow();
      await new Promise((r) => setTimeout(r, 300));
      const t = sim.tasks.find((x: { type: string; id: string }) => x.type === 'vzsnapshot' && x.id === '103');
      expect(t.status).toBe('stopped');
      expect(t.exitstatus).toMatch(/interrupt/);
    } finally {
      sim.options.taskDurationMs = 50;
    }
  });
});

describe('guests', () => {
  it('finds guests on the node they run on now, after a migration', async () => {
    const a = api();
    expect((await a.guest(101)).node).toBe('pve2');
    sim.faults.moveGuest(101, 'pve3');
    expect((await a.guest(101)).node).toBe('pve3');
    const r = await a.vzdump(101, { storage: 'nas', mode: 'snapshot', compress: 'zstd' }, fast);
    expect(r.node).toBe('pve3');
    expect(r.volid).toMatch(/^nas:backup\/vzdump-lxc-101-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$/);
    sim.faults.moveGuest(101, 'pve2');
  });
  it('starts, shuts down and stops, with PVE refusing what makes no sense', async () => {
    const a = api();
    await expect(a.power(103, 'shutdown', fast)).rejects.toThrow(/CT 103 not running/);
    expect((await a.power(103, 'start', fast)).ok).toBe(true);
    expect((await a.status(103)).status).toBe('running');
    expect((await a.power(103, 'shutdown', { ...fast, timeoutSeconds: 30 })).ok).toBe(true);
    expect((await a.status(103)).status).toBe('stopped');
  });
  it('reads IPs from the interfaces of a running guest and from the config of a stopped one', async () => {
    const a = api();
    const running = await a.ips(100);
    expect(running.length).toBeGreaterThan(0);
    expect(running).not.toContain('127.0.0.1');
    const stopped = await a.ips(103);
    expect(stopped.every((ip) => /^[\d.]+$|:/.test(ip))).toBe(true);
  });
  it('creates, lists, rolls back and deletes snapshots with names PVE accepts', async () => {
    const a = api();
    await expect(a.snapshot(100, 'current', undefined, fast)).rejects.toThrow(/reserved/);
    await expect(a.snapshot(100, '1bad', undefined, fast)).rejects.toThrow(/not a valid snapshot name/);
    await a.snapshot(100, 'autopilot_1', 'before update', fast);
    await expect(a.snapshot(100, 'autopilot_1', undefined, fast)).rejects.toThrow(/already used/);
    expect((await a.snapshots(100)).map((s) => s.name)).toContain('autopilot_1');
    expect((await a.rollback(100, 'autopilot_1', true, fast)).ok).toBe(true);
    expect((await a.status(100)).status).toBe('running');
    await a.deleteSnapshot(100, 'autopilot_1', fast);
    expect((await a.snapshots(100)).map((s) => s.name)).not.toContain('autopilot_1');
  });
  it('gets the next free VMID (a string on the wire), restores a backup to it and creates a container from a template', async () => {
    const a = api();
    const id = await a.nextId();
    expect(Number.isInteger(id)).toBe(true);
    const b = await a.vzdump(100, { storage: 'nas', mode: 'snapshot', compress: 'zstd' }, fast);
    expect((await a.restore('lxc', b.volid, { vmid: id, node: 'pve2', storage: 'local-lvm' }, fast)).ok).toBe(true);
    expect((await a.guest(id)).node).toBe('pve2');
    await expect(a.restore('lxc', b.volid, { vmid: id, node: 'pve2', storage: 'local-lvm' }, fast)).rejects.toThrow(/already exists/);
    const id2 = await a.nextId();
    const tmpl = sim.templates?.[0] ?? 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst';
    expect(
      (
        await a.createContainer(
          { vmid: id2, node: 'pve1', ostemplate: tmpl, storage: 'local-lvm', hostname: 'fresh', memory: 512, unprivileged: true },
          fast,
        )
      ).ok,
    ).toBe(true);
    expect((await a.guest(id2)).kind).toBe('lxc');
  });
  it('lists backups on a dir storage and on PBS (UTC snapshot ids, verification state)', async () => {
    const a = api();
    const pbs = await a.vzdump(102, { storage: 'pbs', mode: 'snapshot', compress: '0' }, fast);
    expect(pbs.volid).toMatch(/^pbs:backup\/vm\/102\/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const list = await a.storageBackups('pve3', 'pbs', 102);
    // a fresh PBS backup has no verification state yet
    expect(list.find((b) => b.volid === pbs.volid)).toMatchObject({ format: 'pbs-vm', vmid: 102, verification: null });
    sim.options.pbsVerifyDelayMs = 0;
    try {
      sim.advanceClock(1000); // PBS ids have one-second resolution: the next backup is a (simulated) second later
      const ok = await a.vzdump(102, { storage: 'pbs', mode: 'snapshot', compress: '0' }, fast);
      expect(ok.backup?.verification).toBe('ok');
      sim.faults.pbsVerifyFails(102);
      sim.advanceClock(1000);
      const bad = await a.vzdump(102, { storage: 'pbs', mode: 'snapshot', compress: '0' }, fast);
      expect(bad.backup?.verification).toBe('failed');
    } finally {
      sim.options.pbsVerifyDelayMs = 60_000;
    }
    const dir = await a.vzdump(102, { storage: 'nas', mode: 'snapshot', compress: 'zstd' }, fast);
    expect(dir.volid).toMatch(/^nas:backup\/vzdump-qemu-102-.*\.vma\.zst$/);
    expect(dir.size).toBe(fs.statSync(path.join(sim.storagePath('nas'), 'dump', dir.volid.split('/').pop() as string)).size);
  });
  it('snapshots and restores VMs too, and marks backups protected with notes', async () => {
    const a = api();
    await a.snapshot(102, 'vm_snap', 'before', fast);
    expect((await a.snapshots(102)).map((x) => x.name)).toContain('vm_snap');
    await a.deleteSnapshot(102, 'vm_snap', fast);
    const b = await a.vzdump(
      102,
      { storage: 'nas', mode: 'snapshot', compress: 'zstd', notesTemplate: '{{guestname}} on {{node}}', protected: true },
      fast,
    );
    expect(b.backup).toMatchObject({ protected: true, notes: 'nextcloud on pve3' });
    const id = await a.nextId();
    expect((await a.restore('qemu', b.volid, { vmid: id, node: 'pve1', storage: 'local-lvm', unique: true }, fast)).ok).toBe(true);
    expect((await a.guest(id)).kind).toBe('qemu');
  });
  it('reads node and guest resource figures', async () => {
    const a = api();
    const n = await a.nodeStatus('pve1');
    expect(n).toHaveProperty('uptime');
    expect(n).toHaveProperty('memory');
    const g = (await a.locate()).get(100)!;
    expect(g.resource.maxmem).toBeGreaterThan(0);
    expect(g.uptime).toBeGreaterThan(0);
    // a running VM's IPs come from the guest agent
    expect((await a.ips(102)).length).toBeGreaterThan(0);
  });
});

describe('a single node without a cluster', () => {
  it('has no cluster entry: it is its own quorum', async () => {
    const one = await startSim({ standalone: true, nodes: [{ name: 'pve' }] });
    try {
      const client = new PveClient({
        host: '127.0.0.1',
        port: one.port,
        tokenId: 'root@pam!autopilot',
        tokenSecret: one.token.split('=').pop(),
        fingerprint: one.fingerprint,
        timeoutMs: 5000,
        retries: 0,
        breakerThreshold: 3,
        breakerCooldownMs: 1000,
        logger: quiet,
      });
      const a = new ProxmoxApi(client, quiet);
      expect(await a.cluster()).toEqual({ name: null, quorate: true, nodes: [{ node: 'pve', online: true, local: true }] });
      expect((await a.guest(100)).node).toBe('pve');
      expect(one.violations).toEqual([]);
    } finally {
      await one.close();
    }
  });
});
