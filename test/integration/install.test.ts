/**
 * install / uninstall: the unit rendered with the real paths and checked by systemd-analyze
 * verify, the cron file written and removed under a root prefix (never the real /etc).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { basicConfig, BIN, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

function setup(): { dir: string; cfg: string; env: NodeJS.ProcessEnv } {
  const dir = tmpDir();
  const cfg = write(
    path.join(dir, 'ha.yaml'),
    basicConfig(dir, {
      services: `  - name: f\n    type: files\n    paths: [${dir}]`,
      backup: `  destinations:\n    - name: nas\n      path: /mnt/nas backups\n`,
    }) +
      'schedules:\n  backup: "30 2 * * *"\n  update: { cron: "0 4 * * 0", args: [web] }\n  monitor: 5m\ndaemon:\n  shutdown_timeout: 120\n',
  );
  return { dir, cfg, env: { HOMELAB_AUTOPILOT_ROOT_PREFIX: path.join(dir, 'root') } };
}

describe('install and uninstall', () => {
  it('install systemd --dry-run prints the hardened unit with the real paths; systemd-analyze verify passes it', async () => {
    const { dir, cfg, env } = setup();
    const r = await runCli(['install', 'systemd', '--dry-run', '--config', cfg], { env });
    expect(r.code).toBe(0);
    const unit = path.join(dir, 'root/etc/systemd/system/homelab-autopilot.service');
    expect(r.stdout).toContain(`would write ${unit}:`);
    expect(r.stdout).toContain(`ExecStart=${process.execPath} ${BIN} daemon --config ${cfg}`);
    expect(r.stdout).toContain(
      `ReadWritePaths=-${dir}/state -${dir}/logs -/var/cache/homelab-autopilot -${dir}/backups "-/mnt/nas backups"`,
    );
    for (const line of [
      'ProtectSystem=strict',
      'ProtectHome=read-only',
      'PrivateTmp=yes',
      'NoNewPrivileges=yes',
      'Restart=on-failure',
      'KillMode=mixed',
    ])
      expect(r.stdout).toContain(`\n${line}\n`);
    expect(r.stdout).toContain('TimeoutStopSec=180\n');
    expect(r.stdout).toContain('ExecReload=/bin/kill -HUP $MAINPID\n');
    expect(r.stdout).toMatch(/would run: systemctl daemon-reload\nwould run: systemctl enable --now homelab-autopilot.service\n/);
    expect(r.stdout).toContain('dry run: nothing was changed');
    expect(fs.existsSync(unit)).toBe(false);

    const plan = json(await runCli(['install', 'systemd', '--dry-run', '--json', '--user', 'backup', '--config', cfg], { env }));
    const out = tmpDir();
    const file = write(path.join(out, 'homelab-autopilot.service'), plan.files[0].content);
    expect(plan.files[0].content).toContain('\nUser=backup\nExecStart=');
    // systemd-analyze exits 0 on an unknown key or a bad value: it only says so on stderr
    const verified = spawnSync('/usr/bin/systemd-analyze', ['verify', file], { encoding: 'utf8' });
    expect({ status: verified.status, stderr: verified.stderr, stdout: verified.stdout }).toEqual({ status: 0, stderr: '', stdout: '' });
    // and it does see a mistake
    const bad = write(path.join(out, 'bad.service'), plan.files[0].content.replace('ProtectHome=read-only', 'ProtectHome=maybe'));
    expect(spawnSync('/usr/bin/systemd-analyze', ['verify', bad], { encoding: 'utf8' }).stderr).toMatch(/protect home/i);
  });

  it('install systemd without systemd running writes the unit and prints the commands to run', async () => {
    const { dir, cfg, env } = setup();
    const r = await runCli(['install', 'systemd', '--config', cfg], { env });
    expect(r.code).toBe(0);
    const unit = path.join(dir, 'root/etc/systemd/system/homelab-autopilot.service');
    expect(r.stdout).toContain(
      `wrote ${unit}\nrun as root where systemd runs:\n  systemctl daemon-reload\n  systemctl enable --now homelab-autopilot.service`,
    );
    expect(r.stdout).toContain('note: systemd is not running here');
    expect(fs.readFileSync(unit, 'utf8')).toMatch(/^# Written by homelab-autopilot install/);
    const un = await runCli(['uninstall', 'systemd'], { env });
    expect(un.code).toBe(0);
    expect(un.stdout).toContain(
      `removed ${unit}\nrun as root where systemd runs:\n  systemctl disable --now homelab-autopilot.service\n  systemctl daemon-reload`,
    );
    expect(fs.existsSync(unit)).toBe(false);
  });

  it('install cron writes one line per job with the real paths; refuses a file not its own; uninstall removes it', async () => {
    const { dir, cfg, env } = setup();
    const file = path.join(dir, 'root/etc/cron.d/homelab-autopilot');
    write(file, '# my own cron file\n0 1 * * * root true\n');
    const refused = await runCli(['install', 'cron', '--config', cfg], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`error: ${file} was not written by homelab-autopilot install: not overwriting it`);
    expect(refused.stderr).toContain('hint: look at it and move it away, or give --force');
    expect((await runCli(['uninstall', 'cron'], { env })).code).toBe(2);
    expect(fs.readFileSync(file, 'utf8')).toBe('# my own cron file\n0 1 * * * root true\n');

    const r = await runCli(['install', 'cron', '--force', '--user', 'backup', '--config', cfg], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${file}`);
    // schedules.monitor: a monitor pass every 5 minutes
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain(`\n30 2 * * * backup ${process.execPath} ${BIN} backup --all --config ${cfg} >/dev/null\n`);
    expect(text).toContain(`\n0 4 * * 0 backup ${process.execPath} ${BIN} update web --config ${cfg} >/dev/null\n`);
    expect(text).toContain('\nSHELL=/bin/sh\n');
    expect(text).toContain(`\n*/5 * * * * backup ${process.execPath} ${BIN} monitor --config ${cfg} >/dev/null\n`);
    expect(text).not.toContain('restore-test');
    expect((await runCli(['install', 'cron', '--user', 'backup', '--config', cfg], { env })).stdout).toContain(`${file} is up to date`);

    const dry = await runCli(['uninstall', 'cron', '--dry-run'], { env });
    expect(dry.stdout).toContain(`would remove ${file}`);
    expect(fs.existsSync(file)).toBe(true);
    const un = await runCli(['uninstall', 'cron'], { env });
    expect(un.code).toBe(0);
    expect(fs.existsSync(file)).toBe(false);
    expect((await runCli(['uninstall', 'cron'], { env })).stdout).toContain('is not there: nothing to remove');
  });
});
