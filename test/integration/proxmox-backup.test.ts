/**
 * `backup` and `status` of Proxmox guests, end to end: the built CLI as a child process against
 * the PVE API simulator (a 3-node cluster), with real archives written to the simulated dir
 * storages and tested by our decompress check.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { cleanupTmp, collect, json, ROOT, runCli, sleep, startCli, tmpDir, write } from '../helpers/cli';
import { proxmoxConnection, useSim, type Sim } from '../helpers/pve';

afterAll(cleanupTmp);

let sim: Sim;
useSim((s) => (sim = s));

interface Opts {
  backup?: string;
  services?: string;
  plugin?: string;
}

function config(dir: string, o: Opts = {}): string {
  const file = path.join(dir, 'homelab-autopilot.yaml');
  write(
    file,
    `global:
  state_dir: ./state
  log_dir: ./logs
${proxmoxConnection(sim, dir, '    task_poll_max: 0.3\n    retries: 1\n')}${o.plugin ?? ''}
backup:
  root: ./archives
  retention:
    keep_last: 2
${
  o.backup ??
  `  direct_storage:
    storage: nas
    path: ${sim.storagePath('nas')}`
}
services:
${
  o.services ??
  `  - name: web
    type: lxc
    vmid: 100
  - name: dns
    type: lxc
    vmid: 101
    node: pve1
  - name: nextcloud
    type: vm
    vmid: 102
  - name: media
    type: lxc
    vmid: 103`
}
`,
  );
  return file;
}

const vzdumps = (): { node: string; id: string; started: number; ended: number }[] =>
  sim.tasks.filter((t: { type: string }) => t.type === 'vzdump');

describe('backup of Proxmox guests', () => {
  it('--dry-run shows storage, node and mode per guest and starts nothing', async () => {
    const dir = tmpDir();
    const cfg = config(dir);
    sim.resetRequests();
    const before = sim.tasks.length;
    const r = await runCli(['backup', '--all', '--dry-run', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^web \(lxc\): vzdump on pve1 \(guest running\) to nas: mode snapshot, compress zstd; storage chosen by direct_storage$/m,
    );
    expect(r.stdout).toMatch(/^nextcloud \(vm\): vzdump on pve3 /m);
    expect(r.stdout).toMatch(/^media \(lxc\): vzdump on pve1 \(guest stopped\) to nas: mode stop/m);
    // the config says dns is on pve1; the cluster knows better
    expect(r.stdout).toMatch(/^dns \(lxc\): vzdump on pve2 /m);
    expect(sim.tasks.length).toBe(before);
    expect(sim.requests.every((q: { method: string }) => q.method === 'GET')).toBe(true);
    expect(fs.existsSync(path.join(dir, 'state'))).toBe(false);
  });

  it('--all backs up each guest on its node, one vzdump per node at a time, nodes in parallel, verified', async () => {
    const dir = tmpDir();
    const cfg = config(dir);
    const start = vzdumps().length;
    const r = await runCli(['backup', '--all', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const rep = json(r);
    expect(rep.ok).toBe(true);
    expect(rep.services.map((s: { service: string }) => s.service)).toEqual(['web', 'dns', 'nextcloud', 'media']);
    for (const s of rep.services) {
      expect(s.status).toBe('success');
      expect(s.archive.path).toMatch(/^nas:backup\/vzdump-(lxc|qemu)-10\d-/);
      expect(s.archive.verified).toBe(true);
      expect(s.archive.size).toBeGreaterThan(0);
    }
    expect(rep.services.find((s: { service: string }) => s.service === 'media').guest.mode).toBe('stop');
    // the decompress test ran on the real files
    const state = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(state).toHaveLength(4);
    for (const a of state) {
      expect(a.destination).toBe('pve:nas');
      expect(a.verifyStatus).toBe('ok');
      expect(a.verifyDetail).toMatch(/^\d+ bytes, decompress test passed/);
      expect(a.present).toBe(true);
    }
    // one vzdump per node at a time; different nodes overlap
    const tasks = vzdumps().slice(start);
    expect(tasks).toHaveLength(4);
    const pve1 = tasks.filter((t) => t.node === 'pve1').sort((a, b) => a.started - b.started);
    expect(pve1).toHaveLength(2);
    expect(pve1[1].started).toBeGreaterThanOrEqual(pve1[0].ended);
    const others = tasks.filter((t) => t.node !== 'pve1');
    expect(others.some((t) => t.started < pve1[0].ended)).toBe(true);
  });

  it('goes on when a node goes offline during --all, and reports the failure', async () => {
    const dir = tmpDir();
    const cfg = config(dir);
    sim.options.taskDurationMs = 800;
    // pve3 drops out just after the run began
    const timer = setTimeout(() => sim.faults.nodeOffline('pve3'), 300);
    try {
      const r = await runCli(['backup', '--all', '--json', '--config', cfg]);
      expect(r.code).toBe(1);
      const rep = json(r);
      const by = Object.fromEntries(rep.services.map((s: { service: string }) => [s.service, s]));
      expect(by.web.status).toBe('success');
      expect(by.dns.status).toBe('success');
      expect(by.media.status).toBe('success');
      expect(by.nextcloud.status).toBe('failed');
      expect(by.nextcloud.error).toMatch(/pve3 is unreachable/);
    } finally {
      clearTimeout(timer);
      sim.options.taskDurationMs = 50;
      sim.faults.nodeOffline('pve3', false);
    }
  });

  it('a failing vzdump shows the lines of the task log, and warnings are kept', async () => {
    const dir = tmpDir();
    const cfg = config(dir);
    sim.faults.failTask({ type: 'vzdump', vmid: 100 }, 'mode failure - some volumes do not support snapshots');
    sim.faults.failTask({ type: 'vzdump', vmid: 101 }, 'warnings');
    const r = await runCli(['backup', 'web', 'dns', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^web\s+failed\s+.*ERROR: Backup of VM 100 failed - mode failure - some volumes do not support snapshots/m);
    // a vzdump that ended with 'WARNINGS: 2' is a warning everywhere, not a plain ok
    expect(r.stdout).toMatch(/^dns\s+warning\s+/m);
    expect(r.stdout).toMatch(/dns: warning: vzdump: /);
    const h = await runCli(['history', '--config', cfg]);
    expect(h.stdout).toMatch(/└ dns\s+warning\s/);
    const list = await runCli(['backups', 'list', 'dns', '--config', cfg]);
    expect(list.stdout).toMatch(/pve:nas .* ok, WARNING /);
    expect(json(await runCli(['backups', 'list', 'dns', '--json', '--config', cfg]))[0].warning).toMatch(/vzdump: simulated warning 1/);
    const st = await runCli(['status', 'dns', '--config', cfg]);
    expect(st.stdout).toMatch(/^dns .*verified, with WARNINGS/m);
  });

  it('a stopped guest is backed up in the mode its dry run shows; a backup only listed by its storage is not verified', async () => {
    const dir = tmpDir();
    // no path: this host cannot read the storage, so there is no decompress test
    const cfg = config(dir, { backup: '  direct_storage:\n    storage: nas', services: '  - name: media\n    type: lxc\n    vmid: 103' });
    const plan = await runCli(['backup', 'media', '--dry-run', '--config', cfg]);
    expect(plan.stdout).toMatch(/\(guest stopped\) to nas: mode stop/);
    sim.resetRequests();
    const r = await runCli(['backup', 'media', '--config', cfg]);
    expect(r.code).toBe(0);
    const sent = sim.requests.find((q: { method: string; path: string }) => q.method === 'POST' && /\/vzdump$/.test(q.path));
    expect(sent?.params.mode).toBe('stop');
    expect(r.stdout).toMatch(/^1 service backed up in /m);
    expect(r.stdout).not.toMatch(/verified/);
    const [a] = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(a.verifyStatus).toBeNull();
    expect(a.verifyDetail).toMatch(/listed by the storage; not verified/);
  });

  it('prunes only its own backups on a file storage, keeping protected and foreign ones', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { services: '  - name: web\n    type: lxc\n    vmid: 100' });
    // a backup someone made by hand, not recorded by us
    const foreign = path.join(sim.storagePath('nas'), 'dump', 'vzdump-lxc-100-2020_01_01-00_00_00.tar.zst');
    fs.mkdirSync(path.dirname(foreign), { recursive: true });
    fs.copyFileSync(
      path.join(
        sim.storagePath('nas'),
        'dump',
        fs.readdirSync(path.join(sim.storagePath('nas'), 'dump')).find((f) => f.endsWith('.tar.zst')) as string,
      ),
      foreign,
    );
    const made: string[] = [];
    for (let i = 0; i < 4; i++) {
      const rep = json(await runCli(['backup', 'web', '--json', '--config', cfg]));
      expect(rep.ok).toBe(true);
      made.push(rep.services[0].archive.path);
      if (i === 0) expect((await runCli(['backups', 'protect', '1', '--config', cfg])).code).toBe(0);
      sim.advanceClock(1000); // vzdump names its archives to the second (node time): the next one is a simulated second later
    }
    const left = sim.backups('nas').filter((v: string) => v.includes('-lxc-100-'));
    expect(left).toContain(made[0]); // protected
    expect(left).toContain(made[2]);
    expect(left).toContain(made[3]);
    expect(left).not.toContain(made[1]);
    expect(left).toContain('nas:backup/vzdump-lxc-100-2020_01_01-00_00_00.tar.zst');
  });

  it('sends guests to PBS when proxmox_backup_server is enabled, and leaves pruning to PBS', async () => {
    const dir = tmpDir();
    const cfg = config(dir, {
      backup: '  proxmox_backup_server:\n    enabled: true\n    storage: pbs\n  direct_storage:\n    storage: nas',
      services: '  - name: nextcloud\n    type: vm\n    vmid: 102',
    });
    for (let i = 0; i < 3; i++) {
      const rep = json(await runCli(['backup', '--all', '--json', '--config', cfg]));
      expect(rep.ok).toBe(true);
      expect(rep.services[0].archive.path).toMatch(/^pbs:backup\/vm\/102\/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      expect(rep.services[0].pruned).toEqual([]);
      expect(rep.services[0].archive.verified).toBe(true);
      sim.advanceClock(1000); // PBS snapshot ids have one-second resolution
    }
    const listed = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(listed[0].verifyStatus).toBe('pending');
    expect(listed[0].verifyDetail).toMatch(/^\d+ bytes on PBS; PBS verifies it/);
    expect((await runCli(['status', '--config', cfg])).stdout).toMatch(/^nextcloud\s+vm\s+pve3\s+running.*verification pending$/m);
    const posts = sim.requests.filter((q: { method: string; path: string }) => q.method === 'POST' && q.path.endsWith('/vzdump'));
    expect(posts.at(-1)?.params).toMatchObject({ storage: 'pbs', remove: '0' });
    expect(posts.at(-1)?.params.compress).toBe('0');
  });

  it('backs a guest that moved up on its new node, and uses the default storage when no rule applies', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { backup: '  guests:\n    storage: local', services: '  - name: web\n    type: lxc\n    vmid: 100' });
    sim.faults.moveGuest(100, 'pve2');
    try {
      const plan = await runCli(['backup', 'web', '--dry-run', '--config', cfg]);
      expect(plan.stdout).toMatch(/^web \(lxc\): vzdump on pve2 \(guest running\) to local: .*storage chosen by default$/m);
      const rep = json(await runCli(['backup', 'web', '--json', '--config', cfg]));
      expect(rep.services[0]).toMatchObject({ status: 'success', guest: { node: 'pve2', storage: 'local', rule: 'default' } });
      expect(rep.services[0].archive.path).toMatch(/^local:backup\/vzdump-lxc-100-/);
    } finally {
      sim.faults.moveGuest(100, 'pve1');
    }
  });

  it('a backup that fails the decompress test is reported, kept, and never pruned', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { services: '  - name: dns\n    type: lxc\n    vmid: 101' });
    sim.faults.corruptArchive(101);
    const r = json(await runCli(['backup', 'dns', '--json', '--config', cfg]));
    sim.faults.corruptArchive(101, false);
    expect(r.ok).toBe(false);
    expect(r.services[0].error).toMatch(/decompress test of .*vzdump-lxc-101-.*zstd failed on it/);
    expect(r.services[0].hint).toMatch(/kept for inspection/);
    const bad = r.services[0].archive.path;
    // three good backups later (keep_last: 2), the bad one is still there and still recorded as failed
    for (let i = 0; i < 3; i++) {
      sim.advanceClock(1000); // a simulated second later each time: archive names have one-second resolution
      expect(json(await runCli(['backup', 'dns', '--json', '--config', cfg])).ok).toBe(true);
    }
    expect(sim.backups('nas')).toContain(bad);
    const list = json(await runCli(['backups', 'list', 'dns', '--json', '--config', cfg]));
    expect(list.find((a: { location: string }) => a.location === bad)).toMatchObject({
      verifyStatus: 'failed',
      verifyDetail: expect.any(String),
    });
  });

  it('SIGTERM in the middle stops the running vzdump task and records the run as interrupted', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { services: '  - name: web\n    type: lxc\n    vmid: 100' });
    sim.options.taskDurationMs = 6000;
    try {
      const child = startCli(['backup', 'web', '--config', cfg]);
      const deadline = Date.now() + 10_000;
      while (
        !sim.tasks.some(
          (t: { type: string; id: string; status: string }) => t.type === 'vzdump' && t.id === '100' && t.status === 'running',
        ) &&
        Date.now() < deadline
      )
        await sleep(50);
      child.kill('SIGTERM');
      const r = await collect(child);
      expect(r.code).toBe(143);
      const t = sim.tasks.filter((x: { type: string; id: string }) => x.type === 'vzdump' && x.id === '100').at(-1);
      expect(t.status).toBe('stopped');
      expect(t.exitstatus).toMatch(/interrupt/);
      const h = json(await runCli(['history', '--json', '--config', cfg]));
      expect(h[0].status).toBe('interrupted');
    } finally {
      sim.options.taskDurationMs = 50;
    }
  });

  it('on a terminal, says how long each vzdump has been running', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { services: '  - name: web\n    type: lxc\n    vmid: 100' });
    sim.options.taskDurationMs = 1500;
    try {
      const tty = await new Promise<string>((resolve) => {
        const child = spawn('script', ['-qfec', `${process.execPath} ${ROOT}/bin/run.js backup web --config ${cfg}`, '/dev/null'], {
          env: { ...process.env, HOMELAB_AUTOPILOT_CONFIG: '' },
        });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.on('close', () => resolve(out));
      });
      expect(tty).toMatch(/\r\x1b\[Kweb: vzdump 100 on pve1: running for 0m0\ds/);
      expect(tty).toMatch(/^web\s+ok\s+/m);
    } finally {
      sim.options.taskDurationMs = 50;
    }
  });

  it('warns on every run when TLS verification is turned off', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { services: '  - name: web\n    type: lxc\n    vmid: 100' });
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(/fingerprint: .*/, 'insecure: true'));
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['status', 'web', '--config', cfg]);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/TLS verification of 127\.0\.0\.1 is turned off/);
    }
  });

  it('a wrong fingerprint is refused with a clear error and a hint', async () => {
    const dir = tmpDir();
    const cfg = config(dir, { services: '  - name: web\n    type: lxc\n    vmid: 100' });
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(sim.fingerprint, '00:'.repeat(31) + '00'));
    const r = await runCli(['backup', 'web', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/refused to talk to 127\.0\.0\.1: the server's certificate fingerprint is/);
    expect(r.stdout).toMatch(/hint: .*fingerprint/);
  });
});

describe('status', () => {
  it('shows node, state, uptime, IPs and the last backup of each guest', async () => {
    const dir = tmpDir();
    const cfg = config(dir);
    expect((await runCli(['backup', 'web', '--config', cfg])).code).toBe(0);
    const r = await runCli(['status', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const st = json(r);
    expect(st.clusters[0].status).toMatchObject({ quorate: true });
    expect(st.clusters[0].status.nodes).toHaveLength(3);
    const web = st.services.find((s: { service: string }) => s.service === 'web');
    expect(web.guest).toMatchObject({ node: 'pve1', state: 'running' });
    expect(web.guest.uptimeSeconds).toBeGreaterThan(0);
    expect(web.guest.ips.length).toBeGreaterThan(0);
    expect(web.lastBackup).toMatchObject({ verified: 'ok' });
    expect(web.lastBackup.size).toBeGreaterThan(0);
    expect(st.services.find((s: { service: string }) => s.service === 'media').guest.state).toBe('stopped');
    const human = await runCli(['status', '--config', cfg]);
    expect(human.stdout).toMatch(/^proxmox: cluster \S+, 3 nodes, quorate$/m);
    expect(human.stdout).toMatch(/^web\s+lxc\s+pve1\s+running\s+\S+\s+[\d.,:a-f]+\s+(just now|\dm ago), [\d.]+ \w+, verified$/m);
    expect(human.stdout).toMatch(/^dns\s+lxc\s+pve2\s+running\s+.*never$/m);
  });
  it('exits 1 and says why when the cluster cannot be reached', async () => {
    const dir = tmpDir();
    const cfg = config(dir);
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(`port: ${sim.port}`, 'port: 1'));
    const r = await runCli(['status', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^proxmox: cluster state unknown: cannot reach the Proxmox API at 127\.0\.0\.1:1: connect ECONNREFUSED/m);
    expect(r.stdout).toMatch(/^ {2}web: .*127\.0\.0\.1.*ECONNREFUSED/m);
  });
});
