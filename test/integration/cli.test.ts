import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { basicConfig, cleanupTmp, collect, json, ROOT, runCli, sleep, startCli, tmpDir, write } from '../helpers/cli';
import { slowToCompress } from '../helpers/tree';

afterAll(cleanupTmp);

describe('the quick start', () => {
  it('backs up the sample folder with the example config, anywhere, without root or Proxmox', async () => {
    const dir = tmpDir();
    fs.cpSync(path.join(ROOT, 'examples'), path.join(dir, 'examples'), {
      recursive: true,
      filter: (s) => !/quickstart-(state|backups)/.test(s),
    });
    const cfg = path.join(dir, 'examples', 'quickstart.yaml');
    const r = await runCli(['backup', '--all', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^sample-app\s+ok\s+/m);
    expect(r.stdout).toContain('copy to second-disk ok');
    const list = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(list.map((a: { destination: string }) => a.destination).sort()).toEqual(['primary', 'second-disk']);
    expect(fs.existsSync(path.join(dir, 'examples/quickstart-state/state.db'))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'examples/quickstart-state/logs/homelab-autopilot.log'), 'utf8')).toContain('"level":"info"');
    // the example notification plugin wrote the run's digest
    const note = JSON.parse(fs.readFileSync(path.join(dir, 'examples/quickstart-state/notifications.jsonl'), 'utf8').trim().split('\n')[0]);
    expect(note).toMatchObject({
      event: 'backup_success',
      subject: 'backup --all',
      title: expect.stringMatching(/^Backup: 1 service backed up on /),
    });
  });
});

describe('config discovery', () => {
  it('uses $HOMELAB_AUTOPILOT_CONFIG, then a homelab-autopilot.yaml in the working directory', async () => {
    const dir = tmpDir();
    write(
      path.join(dir, 'elsewhere.yaml'),
      basicConfig(dir, { services: '  - name: from-env\n    type: files\n    paths: [/etc/hostname]' }),
    );
    write(
      path.join(dir, 'work/homelab-autopilot.yaml'),
      basicConfig(dir, { services: '  - name: from-cwd\n    type: files\n    paths: [/etc/hostname]' }),
    );
    const viaEnv = json(
      await runCli(['config', 'validate', '--json'], {
        cwd: path.join(dir, 'work'),
        env: { HOMELAB_AUTOPILOT_CONFIG: path.join(dir, 'elsewhere.yaml') },
      }),
    );
    expect(viaEnv.file).toBe(path.join(dir, 'elsewhere.yaml'));
    const viaCwd = json(await runCli(['config', 'validate', '--json'], { cwd: path.join(dir, 'work') }));
    expect(viaCwd.file).toBe(path.join(dir, 'work/homelab-autopilot.yaml'));
    const flagWins = json(
      await runCli(['config', 'validate', '--json', '--config', path.join(dir, 'work/homelab-autopilot.yaml')], {
        env: { HOMELAB_AUTOPILOT_CONFIG: path.join(dir, 'elsewhere.yaml') },
      }),
    );
    expect(flagWins.file).toBe(path.join(dir, 'work/homelab-autopilot.yaml'));
  });

  it('merges services.d and reports them in the resolved config', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: main\n    type: files\n    paths: [/etc/hostname]' }));
    write(path.join(dir, 'services.d/one.yaml'), 'name: one\ntype: files\npaths: [./data]\n');
    write(
      path.join(dir, 'services.d/two.yml'),
      'services:\n  - name: two\n    type: host\n    include_defaults: false\n    backup_paths: [/etc/hosts]\n',
    );
    const show = json(await runCli(['config', 'show', '--json', '--config', path.join(dir, 'ha.yaml')]));
    expect(show.services.map((s: { name: string }) => s.name)).toEqual(['main', 'one', 'two']);
    expect(show.services[1].paths).toEqual([path.join(dir, 'data')]); // relative to the config folder
    expect(show.global.state_dir).toBe(path.join(dir, 'state'));
  });
});

describe('output and exit codes', () => {
  it('--json prints exactly the command result on stdout and logs on stderr', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname]' }));
    const r = await runCli(['backup', '--all', '--json', '--log-level', 'info', '--config', path.join(dir, 'ha.yaml')]);
    expect(r.code).toBe(0);
    const report = json(r);
    expect(Object.keys(report).sort()).toEqual([
      'dryRun',
      'durationMs',
      'interrupted',
      'notifications',
      'ok',
      'runId',
      'services',
      'startedAt',
    ]);
    expect(r.stderr).toContain('[backup:h] archiving /etc/hostname');
    const usage = await runCli(['backup', '--all', '--bogus', '--json', '--config', path.join(dir, 'ha.yaml')]);
    expect(usage.code).toBe(2);
    expect(json(usage).error.code).toBe('USAGE');
  });

  it('--log-format json writes machine-readable log lines', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname]' }));
    const r = await runCli(['backup', '--all', '--log-format', 'json', '--log-level', 'info', '--config', path.join(dir, 'ha.yaml')]);
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: string; message: string; label: string });
    expect(lines.some((l) => l.level === 'info' && l.label === 'backup:h' && l.message.startsWith('archiving'))).toBe(true);
  });

  it('shows progress on a terminal and none when not (cron)', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'big.bin'), Buffer.alloc(8 << 20, 7));
    const rnd = Buffer.alloc(48 << 20);
    for (let i = 0; i < rnd.length; i += 4) rnd.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
    write(path.join(dir, 'rand.bin'), rnd);
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        backup: '  compression_level: 12',
        services: `  - name: p\n    type: files\n    paths: [${dir}/rand.bin, ${dir}/big.bin]`,
      }),
    );
    const plain = await runCli(['backup', '--all', '--config', path.join(dir, 'ha.yaml')]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).not.toContain('\r');
    // under a pseudo-terminal (util-linux script), the progress line is redrawn in place
    const tty = spawnSync('script', ['-qfec', `${process.execPath} ${ROOT}/bin/run.js backup --all --config ${dir}/ha.yaml`, '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, HOMELAB_AUTOPILOT_CONFIG: '' },
    });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/\r\x1b\[K\[1\/1\] p: [\d.]+ (KiB|MiB) written \([\d.]+ (B|KiB|MiB)\/s\)/);
    // verification has its progress too
    expect(tty.stdout).toMatch(/\r\x1b\[K\[1\/1\] p: verifying [\d.]+ (B|KiB|MiB) of [\d.]+ MiB \(\d+ %, [\d.]+ (B|KiB|MiB|GiB)\/s\)/);
    // a log line starts on a line of its own: the progress line is erased before it
    const logLines = [...tty.stdout.matchAll(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S*(info|warn|error)/g)];
    expect(logLines.some((m) => m[0].includes('info'))).toBe(true); // on a terminal, info lines are shown
    for (const m of logLines) expect(tty.stdout.slice(Math.max(0, (m.index ?? 0) - 3), m.index)).toMatch(/(\x1b\[K|\n)$|^$/);
    expect(tty.stdout).toMatch(/\r\x1b\[K\d{4}-[^\n]*\[backup:p\] verified /);
  });

  it('cron: when stderr is not a terminal only warnings and errors go there, the log file keeps everything, --log-level wins', async () => {
    const dir = tmpDir();
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname]' }) + 'plugins:\n  nope:\n    x: 1\n',
    );
    const quiet = await runCli(['backup', '--all', '--config', cfg]);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toMatch(
      /^\S+ \S+ warn  \S+ha\.yaml:\d+:\d+: plugins\.nope: no plugin named 'nope' is installed; these options are ignored\n$/,
    );
    const log = fs.readFileSync(path.join(dir, 'logs/homelab-autopilot.log'), 'utf8');
    expect(log).toContain('archiving /etc/hostname');
    const loud = await runCli(['backup', '--all', '--log-level', 'info', '--config', cfg]);
    expect(loud.stderr).toContain('[backup:h] archiving /etc/hostname');
    const cron = fs.readFileSync(path.join(ROOT, 'templates/cron/homelab-autopilot'), 'utf8');
    expect(cron).toMatch(/not a terminal/);
  });

  it('SIGTERM in the middle of an archive stops cleanly: no partial file, the run recorded as interrupted, exit 143', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'big.dat'), slowToCompress(4 << 20, 99));
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, {
        backup: '  compression_level: 19',
        services: `  - name: big\n    type: files\n    paths: [./big.dat]\n  - name: after\n    type: files\n    paths: [/etc/hostname]`,
      }),
    );
    const child = startCli(['backup', '--all', '--config', path.join(dir, 'ha.yaml')]);
    const done = collect(child);
    const svcDir = path.join(dir, 'backups/big');
    for (let i = 0; i < 400 && !(fs.existsSync(svcDir) && fs.readdirSync(svcDir).some((f) => f.includes('.partial-'))); i++)
      await sleep(50);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(143);
    expect(r.stderr).toContain('SIGTERM received: stopping after cleaning up');
    expect(fs.readdirSync(svcDir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'backups/after'))).toBe(false);
    const h = json(await runCli(['history', '--json', '--config', path.join(dir, 'ha.yaml')]));
    expect(h[0].status).toBe('interrupted');
    const again = await runCli(['backup', '--all', '--config', path.join(dir, 'ha.yaml')], { timeoutMs: 120_000 });
    expect(again.stderr).not.toContain('took over the backup lock'); // it was released
  });

  it('documents exit codes and examples in --help', async () => {
    const r = await runCli(['backup', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(
      'Exit codes: 0 all succeeded, 1 a service failed, 2 bad usage or config, 75 another backup run holds the lock, 130/143 interrupted.',
    );
    expect(r.stdout).toContain('$ homelab-autopilot backup --all --dry-run');
    const v = await runCli(['--version']);
    expect(v.stdout).toMatch(/^homelab-autopilot\/\d+\.\d+\.\d+ /);
  });
});

describe('usage errors', () => {
  it('exit 2 with the whole reason, never "this is a bug"', async () => {
    const dir = tmpDir();
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname]' }),
    );
    const protect = await runCli(['backups', 'protect', 'abc', '--config', cfg]);
    expect({ code: protect.code, stderr: protect.stderr }).toEqual({
      code: 2,
      stderr: 'error: expected an integer but received: abc\nhint: see homelab-autopilot backups protect --help\n',
    });
    const asJson = json(await runCli(['backups', 'protect', 'abc', '--json', '--config', cfg]));
    expect(asJson.error).toMatchObject({ code: 'USAGE', message: 'expected an integer but received: abc' });
    const limit = await runCli(['history', '--limit', 'abc', '--config', cfg]);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toBe('error: --limit: expected an integer but received: abc\nhint: see homelab-autopilot history --help\n');
    const missing = await runCli(['backups', 'protect', '--config', cfg]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('error: missing 1 required arg: id (the archive id (from backups list --json))');
  });

  it('a misspelled command gets "did you mean", in the tool\'s own style', async () => {
    for (const [typed, shown, meant] of [
      [['histroy'], 'histroy', 'history'],
      [['confg', 'validate'], 'confg validate', 'config validate'],
      [['backups', 'lst'], 'backups lst', 'backups list'],
      [['bakup', 'web', '--all'], 'bakup', 'backup'],
    ] as const) {
      const r = await runCli([...typed]);
      expect({ typed, code: r.code, stderr: r.stderr }).toEqual({
        typed,
        code: 2,
        stderr: `error: '${shown}' is not a homelab-autopilot command (did you mean '${meant}'?)\nhint: 'homelab-autopilot help' lists the commands\n`,
      });
    }
    const far = await runCli(['frobnicate']);
    expect(far.code).toBe(2);
    expect(far.stderr).toBe("error: 'frobnicate' is not a homelab-autopilot command\nhint: 'homelab-autopilot help' lists the commands\n");
    const j = await runCli(['histroy', '--json']);
    expect(json(j).error).toMatchObject({
      code: 'USAGE',
      message: "'histroy' is not a homelab-autopilot command (did you mean 'history'?)",
    });
  });

  it("has a help command: the commands, or one command's help", async () => {
    const all = await runCli(['help']);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^ {2}backup +Back up services/m);
    expect(all.stdout).toMatch(/^ {2}help +Show the commands/m);
    const one = await runCli(['help', 'backups', 'list']);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe((await runCli(['backups', 'list', '--help'])).stdout);
    const bad = await runCli(['help', 'histroy']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error: 'histroy' is not a homelab-autopilot command (did you mean 'history'?)");
  });
});
