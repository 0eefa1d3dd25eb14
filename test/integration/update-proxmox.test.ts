/**
 * `update` of a Proxmox container end to end: the built CLI against the PVE API simulator.
 * The command runner inside the guest is `pct exec`; here `pct` is a recorder script that
 * writes down what it was asked to run and fails when a test tells it to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupTmp, collect, json, runCli, sleep, startCli, tmpDir, write } from '../helpers/cli';
import { proxmoxConnection, useSim, type Sim } from '../helpers/pve';
import { Recorder, webhookNotifications } from '../helpers/recorder';

afterAll(cleanupTmp);

let sim: Sim;
useSim((s) => (sim = s));
let hook: Recorder;
beforeAll(async () => {
  hook = await new Recorder().start();
});
afterAll(async () => {
  await hook?.stop();
});

interface Setup {
  dir: string;
  cfg: string;
  calls(): string[][];
  /** makes `pct exec` fail (exit 1) for a command containing this word, or sleep */
  failOn(word: string | null): void;
  marker: string;
}

function setup(extra: { checks?: string; keep?: number; services?: string; exec?: string } = {}): Setup {
  const dir = tmpDir();
  const record = path.join(dir, 'pct-calls.jsonl');
  const control = path.join(dir, 'pct-fail');
  const marker = path.join(dir, 'service-healthy');
  fs.writeFileSync(marker, 'ok');
  const pct = path.join(dir, 'pct');
  write(
    pct,
    `#!/usr/bin/env node
const fs = require('fs');
const argv = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(record)}, JSON.stringify(argv) + '\\n');
const word = fs.existsSync(${JSON.stringify(control)}) ? fs.readFileSync(${JSON.stringify(control)}, 'utf8').trim() : '';
if (word === 'sleep' && argv.includes('dist-upgrade')) { setTimeout(() => process.exit(0), 20000); }
else if (word === 'break' && argv.includes('dist-upgrade')) { fs.rmSync(${JSON.stringify(marker)}, { force: true }); process.exit(0); }
else if (word && argv.includes(word)) { process.stderr.write('E: Sub-process /usr/bin/dpkg returned an error code (1)\\n'); process.exit(100); }
else process.stdout.write('ok\\n');
`,
  );
  fs.chmodSync(pct, 0o755);
  const cfg = path.join(dir, 'homelab-autopilot.yaml');
  write(
    cfg,
    `global:
  state_dir: ./state
  log_dir: ./logs
${proxmoxConnection(sim, dir, `    task_poll_max: 0.2\n    guest_exec:\n${extra.exec ?? `      via: pct\n      pct: ${pct}`}\n`)}updates:
  settle_seconds: 2
  check_interval: 1
  keep_snapshots: ${extra.keep ?? 3}
  min_free_mb: 100
${webhookNotifications(hook.url)}services:
  - name: web
    type: lxc
    vmid: 100
    health_checks:
${extra.checks ?? '      - type: running'}
${extra.services ?? ''}
`,
  );
  return {
    dir,
    cfg,
    marker,
    calls: () =>
      fs.existsSync(record)
        ? fs
            .readFileSync(record, 'utf8')
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as string[])
        : [],
    failOn: (w) => (w ? fs.writeFileSync(control, w) : fs.rmSync(control, { force: true })),
  };
}

const autopilotSnaps = (vmid: number): string[] =>
  (sim.guest(vmid).snapshots as { name: string }[]).map((x) => x.name).filter((n) => n.startsWith('autopilot_'));
const alerts = (): { event: string; severity: string; title: string; text: string }[] => hook.requests.map((r) => JSON.parse(r.body));
const tasksOf = (type: string, id: string): unknown[] =>
  sim.tasks.filter((t: { type: string; id: string }) => t.type === type && t.id === id);

describe('update of a Proxmox guest', () => {
  it('--dry-run prints the plan and changes nothing', async () => {
    const s = setup();
    const snaps = JSON.stringify(sim.guest(100).snapshots ?? {});
    const tasks = sim.tasks.length;
    sim.resetRequests();
    const r = await runCli(['update', 'web', '--dry-run', '--config', s.cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}1\. precheck +would pass now \(running; lock free; free space\)$/m);
    expect(r.stdout).toMatch(/^ {2}2\. snapshot +a proxmox snapshot of CT 100, named autopilot_<time>$/m);
    expect(r.stdout).toMatch(
      /^ {2}3\. update +run in CT 100: apt-get update; then run in CT 100: env DEBIAN_FRONTEND=noninteractive apt-get -y .* dist-upgrade$/m,
    );
    expect(r.stdout).toMatch(/^ {2}4\. validate +running: every 1s; healthy within 2s, then for 2s without a failure$/m);
    expect(r.stdout).toMatch(/^ {2}6\. rollback +roll CT 100 back to that snapshot/m);
    expect(JSON.stringify(sim.guest(100).snapshots ?? {})).toBe(snaps);
    expect(sim.tasks.length).toBe(tasks);
    expect(sim.requests.every((q) => q.method === 'GET')).toBe(true);
    expect(s.calls()).toEqual([]);
    expect(fs.existsSync(path.join(s.dir, 'state'))).toBe(false);
    expect(hook.requests).toHaveLength(0);
  });

  it('snapshots, runs the update inside the guest, validates, keeps N snapshots and reports success', async () => {
    const s = setup({ keep: 2 });
    hook.requests.length = 0;
    for (let i = 0; i < 3; i++) {
      const r = await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]);
      expect(r.code).toBe(0);
      const rep = json(r);
      expect(rep.services[0]).toMatchObject({ service: 'web', status: 'success' });
      expect(rep.services[0].steps.map((x: { step: string; status: string }) => `${x.step}:${x.status}`)).toEqual([
        'precheck:success',
        'snapshot:success',
        'update:success',
        'validate:success',
        'cleanup:success',
      ]);
      // no wait for the next snapshot name (one-second resolution): each run validates for a check_interval (1s) after its snapshot
    }
    expect(s.calls().slice(0, 2)).toEqual([
      ['exec', '100', '--', 'apt-get', 'update'],
      [
        'exec',
        '100',
        '--',
        'env',
        'DEBIAN_FRONTEND=noninteractive',
        'apt-get',
        '-y',
        '-o',
        'Dpkg::Options::=--force-confdef',
        '-o',
        'Dpkg::Options::=--force-confold',
        'dist-upgrade',
      ],
    ]);
    expect(autopilotSnaps(100)).toHaveLength(2);
    expect(alerts().filter((a) => a.event === 'update_success')).toHaveLength(3);
    // every run and step is in state, with timings
    const h = json(await runCli(['history', '--kind', 'update', '--json', '--config', s.cfg]));
    expect(h[0].children[0]).toMatchObject({ target: 'web', status: 'success' });
    expect(h[0].children[0].summary.steps.map((x: { step: string }) => x.step)).toEqual([
      'precheck',
      'snapshot',
      'update',
      'validate',
      'cleanup',
    ]);
  });

  it('a failing update command is rolled back, validated again, and alerted', async () => {
    const s = setup();
    s.failOn('dist-upgrade');
    hook.requests.length = 0;
    const before = tasksOf('vzrollback', '100').length;
    const r = await runCli(['update', 'web', '--yes', '--config', s.cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^web\s+ROLLED BACK\s+autopilot_\d{8}_\d{6}\s+\S+\s+'env .*dist-upgrade' in CT 100 exited 100: E: Sub-process \/usr\/bin\/dpkg returned an error code \(1\)/m,
    );
    expect(tasksOf('vzrollback', '100').length).toBe(before + 1);
    expect(sim.guest(100).status).toBe('running');
    const a = alerts();
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ event: 'rollback_executed', severity: 'warning' });
    expect(a[0].title).toBe('Update of web failed and was ROLLED BACK');
    // human history says what happened to the service, not only that the run failed
    const h = await runCli(['history', '--kind', 'update', '--config', s.cfg]);
    expect(h.stdout).toMatch(/└ web +rolled back: 'env .*dist-upgrade' in CT 100 exited 100/);
  });

  it('when the rollback does not bring it back, a critical alert says what to do by hand', async () => {
    const s = setup({ checks: `      - type: command\n        command: [test, -e, PLACEHOLDER]` });
    fs.writeFileSync(s.cfg, fs.readFileSync(s.cfg, 'utf8').replace('PLACEHOLDER', s.marker));
    s.failOn('break'); // the update "succeeds" but breaks the service; the snapshot cannot bring the marker back
    hook.requests.length = 0;
    const r = await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0].status).toBe('rollback_failed');
    expect(rep.services[0].error).toMatch(
      /validation failed: still unhealthy after \d+ rounds? \(2s\): command test -e .*: exit 1, expected 0; then the rollback failed: after the rollback the service is still unhealthy/,
    );
    expect(rep.services[0].manual).toMatch(/^on the node of CT 100: pct rollback 100 autopilot_\d{8}_\d{6} && pct start 100$/);
    const a = alerts();
    expect(a[0]).toMatchObject({ event: 'update_failed', severity: 'critical' });
    expect(a[0].text).toMatch(/What to do by hand: on the node of CT 100: pct rollback 100/);
  });

  it('refuses to start when the service is unhealthy now (nothing changed)', async () => {
    const s = setup({ checks: `      - type: tcp\n        host: 127.0.0.1\n        port: 1` });
    const snaps = autopilotSnaps(100).length;
    const r = await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0].status).toBe('failed');
    expect(rep.services[0].error).toMatch(/pre-checks failed: not healthy now: tcp 127\.0\.0\.1:1: .*ECONNREFUSED/);
    expect(rep.services[0].hint).toMatch(/nothing was changed/);
    expect(autopilotSnaps(100).length).toBe(snaps);
    expect(s.calls()).toEqual([]);
  });

  it('SIGTERM during the update rolls back what was started', async () => {
    const s = setup();
    s.failOn('sleep');
    const before = tasksOf('vzrollback', '100').length;
    const child = startCli(['update', 'web', '--yes', '--config', s.cfg]);
    const deadline = Date.now() + 15_000;
    while (!s.calls().some((c) => c.includes('dist-upgrade')) && Date.now() < deadline) await sleep(100);
    // a backup of it meanwhile is refused: its data may be half-restored
    const b = json(await runCli(['backup', 'web', '--json', '--config', s.cfg]));
    expect(b.services[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/^an update of web is running \(pid \d+ on /) });
    // a second update of it: the lock is held, exit 75 (try again later), and --lock-wait exists
    const second = await runCli(['update', 'web', '--yes', '--lock-wait', '1', '--config', s.cfg]);
    expect(second.code).toBe(75);
    expect(second.stdout).toMatch(/^web +FAILED .*another run holds the 'update\.web' lock/m);
    expect(second.stdout).toMatch(/hint: wait for it to finish, or give --lock-wait SECONDS/);
    child.kill('SIGTERM');
    const r = await collect(child, 60_000);
    expect(r.code).toBe(143);
    expect(tasksOf('vzrollback', '100').length).toBe(before + 1);
    // newest first: the second update (refused by the lock), then this one
    const [refused, h0] = json(await runCli(['history', '--kind', 'update', '--json', '--config', s.cfg]));
    expect(refused.children[0].summary.error).toMatch(/lock/);
    const h = [h0];
    expect(h[0].status).toBe('interrupted');
    // the alert still goes out after the signal
    expect(alerts().at(-1)).toMatchObject({ event: 'rollback_executed', severity: 'warning' });
    expect(alerts().at(-1)?.text).toMatch(/^The update was interrupted\. The service was rolled back to snapshot autopilot_/);
    expect(h[0].children[0].summary.steps.map((x: { step: string; status: string }) => `${x.step}:${x.status}`)).toEqual([
      'precheck:success',
      'snapshot:success',
      'update:interrupted',
      'rollback:success',
      'revalidate:success',
    ]);
  });

  it('--all goes on past a failure and exits 1 (here two at once with --parallel 2)', async () => {
    const s = setup({
      services:
        '  - name: dns\n    type: lxc\n    vmid: 101\n    update: {}\n  - name: media\n    type: lxc\n    vmid: 103\n  - name: notes\n    type: files\n    paths: [.]',
    });
    fs.writeFileSync(
      s.cfg,
      fs.readFileSync(s.cfg, 'utf8').replace('    vmid: 100\n', '    vmid: 100\n    update:\n      keep_snapshots: 5\n'),
    );
    s.failOn('101');
    const r = await runCli(['update', '--all', '--yes', '--json', '--parallel', '2', '--config', s.cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    // two at once: both services' update steps overlapped
    const [w, d] = json(await runCli(['history', '--kind', 'update', '--json', '--config', s.cfg]))[0].children;
    expect(new Date(w.startedAt).getTime()).toBeLessThan(new Date(d.endedAt).getTime());
    expect(new Date(d.startedAt).getTime()).toBeLessThan(new Date(w.endedAt).getTime());
    // files services cannot be updated, and a guest without update: is not updated by --all (the default commands suit Debian-like guests only)
    expect(rep.services.map((x: { service: string; status: string }) => `${x.service}:${x.status}`)).toEqual([
      'web:success',
      'dns:rolled_back',
    ]);
    expect(rep.services[1].error).toMatch(/'apt-get update' in CT 101 exited 100/);
  });

  it('runs the commands over ssh (quoted for the remote shell) when the guest is elsewhere', async () => {
    const dir = tmpDir();
    const ssh = path.join(dir, 'ssh');
    const rec = path.join(dir, 'ssh-calls.jsonl');
    // records what it was asked, then runs the remote command line with a real shell, as sshd would
    write(
      ssh,
      `#!/usr/bin/env node\nconst argv = process.argv.slice(2);\nrequire('fs').appendFileSync(${JSON.stringify(rec)}, JSON.stringify(argv) + '\\n');\nprocess.exit(require('child_process').spawnSync('sh', ['-c', argv.at(-1)], { stdio: 'inherit' }).status);\n`,
    );
    fs.chmodSync(ssh, 0o755);
    const s = setup({ exec: `      via: ssh\n      ssh: ${ssh}\n      ssh_user: admin` });
    fs.writeFileSync(
      s.cfg,
      fs
        .readFileSync(s.cfg, 'utf8')
        .replace('    vmid: 100\n', `    vmid: 100\n    update:\n      command:\n        - [sh, -c, 'echo "it''s done" > ${dir}/out']\n`),
    );
    const r = await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]);
    expect(json(r).services[0].status).toBe('success');
    const calls = fs
      .readFileSync(rec, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(calls[0].slice(0, -1)).toEqual(['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', 'admin@10.0.0.100', '--']);
    // first a marker that says the command started, then the command, quoted for the remote shell
    expect(calls[0].at(-1)).toMatch(
      /^printf '%s\\n' homelab-autopilot-started-[0-9a-f]{12} >&2 && sh -c 'echo "it'\\''s done" > \S+\/out'$/,
    );
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe("it's done\n");
  });

  it('when the commands cannot reach the guest at all, nothing is rolled back and the snapshot is removed', async () => {
    const dir = tmpDir();
    const ssh = path.join(dir, 'ssh');
    write(ssh, '#!/bin/sh\necho "ssh: connect to host 10.0.0.100 port 22: Connection refused" >&2\nexit 255\n');
    fs.chmodSync(ssh, 0o755);
    const s = setup({ exec: `      via: ssh\n      ssh: ${ssh}` });
    const snaps = autopilotSnaps(100).length;
    const rollbacks = tasksOf('vzrollback', '100').length;
    const r = await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0]).toMatchObject({ status: 'failed', hint: expect.stringMatching(/^nothing was changed/) });
    expect(rep.services[0].error).toMatch(
      /cannot reach CT 100 to run commands in it: ssh: connect to host 10\.0\.0\.100 port 22: Connection refused/,
    );
    expect(tasksOf('vzrollback', '100').length).toBe(rollbacks);
    expect(autopilotSnaps(100).length).toBe(snaps);
  });

  it('a login refused as "user@host: Permission denied (publickey)." did not reach the guest: nothing is rolled back', async () => {
    const dir = tmpDir();
    const ssh = path.join(dir, 'ssh');
    // OpenSSH's words with the "user@host: " prefix it puts on them
    write(ssh, '#!/bin/sh\necho "root@10.0.0.100: Permission denied (publickey)." >&2\nexit 255\n');
    fs.chmodSync(ssh, 0o755);
    const s = setup({ exec: `      via: ssh\n      ssh: ${ssh}` });
    const rollbacks = tasksOf('vzrollback', '100').length;
    const snaps = autopilotSnaps(100).length;
    const r = await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0]).toMatchObject({ status: 'failed', hint: expect.stringMatching(/^nothing was changed/) });
    expect(rep.services[0].error).toBe('cannot reach CT 100 to run commands in it: root@10.0.0.100: Permission denied (publickey).');
    expect(tasksOf('vzrollback', '100').length).toBe(rollbacks);
    expect(autopilotSnaps(100).length).toBe(snaps);
  });

  it('a command exiting 255 after it started is a failed update (rolled back), not an unreachable guest', async () => {
    const dir = tmpDir();
    const ssh = path.join(dir, 'ssh');
    write(ssh, `#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n`);
    fs.chmodSync(ssh, 0o755);
    const s = setup({ exec: `      via: ssh\n      ssh: ${ssh}` });
    fs.writeFileSync(
      s.cfg,
      fs
        .readFileSync(s.cfg, 'utf8')
        .replace('    vmid: 100\n', `    vmid: 100\n    update:\n      command:\n        - [sh, -c, 'echo broken >&2; exit 255']\n`),
    );
    const rollbacks = tasksOf('vzrollback', '100').length;
    const rep = json(await runCli(['update', 'web', '--yes', '--json', '--config', s.cfg]));
    expect(rep.services[0].status).toBe('rolled_back');
    expect(rep.services[0].error).toMatch(/in CT 100 exited 255: broken$/);
    expect(tasksOf('vzrollback', '100').length).toBe(rollbacks + 1);
  });

  it('config validate refuses an update.command string with a shell operator, with file and line', async () => {
    const s = setup();
    fs.writeFileSync(
      s.cfg,
      fs
        .readFileSync(s.cfg, 'utf8')
        .replace(
          '    vmid: 100\n',
          `    vmid: 100\n    update:\n      command:\n        - apt-get update\n        - "apt-get -y upgrade; reboot"\n`,
        ),
    );
    const line =
      fs
        .readFileSync(s.cfg, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('reboot')) + 1;
    const r = await runCli(['config', 'validate', '--config', s.cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `${s.cfg}:${line}:11: services[0].update.command[1]: shell operator ';' is not supported: commands run without a shell`,
    );
    // and nothing reaches the guest
    const u = await runCli(['update', 'web', '--yes', '--config', s.cfg]);
    expect(u.code).toBe(2);
    expect(s.calls()).toEqual([]);
  });

  it('after the tool is killed mid-update (SIGKILL): status shows it, rollback goes back to its snapshot, the next update names it', async () => {
    const s = setup();
    s.failOn('sleep');
    const killMidUpdate = async (): Promise<void> => {
      const n = s.calls().filter((c) => c.includes('dist-upgrade')).length;
      const child = startCli(['update', 'web', '--yes', '--config', s.cfg]);
      const deadline = Date.now() + 15_000;
      while (s.calls().filter((c) => c.includes('dist-upgrade')).length === n && Date.now() < deadline) await sleep(100);
      child.kill('SIGKILL');
      await collect(child, 10_000);
    };
    await killMidUpdate();
    s.failOn(null);
    const st = json(await runCli(['status', 'web', '--json', '--config', s.cfg]));
    const u = st.services[0].unfinishedUpdate;
    expect(u).toMatchObject({ step: 'update', snapshot: expect.stringMatching(/^autopilot_\d{8}_\d{6}/) });
    expect(autopilotSnaps(100)).toContain(u.snapshot);
    const human = await runCli(['status', 'web', '--config', s.cfg]);
    expect(human.stdout).toContain(`web: UNFINISHED UPDATE: an update of web did not finish: its process (pid`);
    expect(human.stdout).toContain(`ended during its update step`);
    expect(human.stdout).toContain(`snapshot ${u.snapshot} holds web as it was before: go back with 'homelab-autopilot rollback web'`);
    const dry = await runCli(['rollback', 'web', '--dry-run', '--config', s.cfg]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`web (lxc): back to ${u.snapshot}`);
    expect(dry.stdout).toMatch(/the snapshot of the update that did not finish/);
    const rollbacks = tasksOf('vzrollback', '100').length;
    const rb = await runCli(['rollback', 'web', '--yes', '--json', '--config', s.cfg]);
    expect(rb.code).toBe(0);
    expect(json(rb)).toMatchObject({ status: 'success', snapshot: { id: u.snapshot } });
    expect(tasksOf('vzrollback', '100').length).toBe(rollbacks + 1);
    expect(json(await runCli(['status', 'web', '--json', '--config', s.cfg])).services[0].unfinishedUpdate).toBeNull();
    // and history no longer says "running" for the killed update
    const h = json(await runCli(['history', '--json', '--config', s.cfg]));
    expect(h[0]).toMatchObject({ kind: 'rollback', target: 'web', status: 'success' });
    expect(h.find((e: { kind: string }) => e.kind === 'update').children[0].status).toBe('interrupted');

    // killed again: the next update says what happened and names the snapshot it holds
    s.failOn('sleep');
    await killMidUpdate();
    s.failOn(null);
    const held = json(await runCli(['status', 'web', '--json', '--config', s.cfg])).services[0].unfinishedUpdate.snapshot;
    const next = await runCli(['update', 'web', '--yes', '--config', s.cfg]);
    expect(next.stdout).toContain(`web: EARLIER: an update of web did not finish`);
    expect(next.stdout).toContain(`snapshot ${held} holds web as it was before`);
  });

  it('rollback names the snapshots there are when the one asked for does not exist', async () => {
    const s = setup();
    const r = await runCli(['rollback', 'web', '--snapshot', 'autopilot_19990101_000000', '--yes', '--config', s.cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: web has no autopilot snapshot named autopilot_19990101_000000\nhint: its autopilot snapshots: /);
  });

  it('asks before changing anything, and refuses without a terminal unless --yes', async () => {
    const s = setup();
    const r = await runCli(['update', 'web', '--config', s.cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not asking for confirmation without a terminal/);
    expect(r.stderr).toMatch(/hint: add --yes/);
    expect(s.calls()).toEqual([]);
  });
});
