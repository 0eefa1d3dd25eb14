/**
 * Backups against what a homelab's disks and clock do to them: a clock set back, a lost or
 * damaged state database, a full or read-only disk, a run killed while it verifies, names the
 * fall-back hour repeats, kernel file systems, unmounted disks, and a state copied from another
 * folder. Real tar and zstd, real SQLite files, real (tmpfs) mounts: these tests run as root.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { basicConfig, cleanupTmp, json, runCli, sleep, startCli, collect, tmpDir, write } from '../helpers/cli';

const mounted: string[] = [];
afterAll(() => {
  for (const m of mounted.splice(0)) execFileSync('umount', ['-l', m]);
  cleanupTmp();
});

/** A tmpfs of `size` at `dir` (unmounted after the tests). */
function tmpfs(dir: string, size: string, ro = false): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `${ro ? 'ro,' : ''}size=${size}`, 'tmpfs', dir]);
  mounted.push(dir);
}

const archivesIn = (dir: string): string[] =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /\.tar\.(zst|gz)$/.test(f) && !f.startsWith('.'))
        .sort()
    : [];

const sha256 = (f: string): string => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const DAY = 24 * 3600 * 1000;

/** A files service `svc` under a new folder; `@DIR@` in the extra config stands for that folder. */
function setup(extra: { backup?: string; global?: string } = {}): { dir: string; cfg: string } {
  const dir = tmpDir();
  write(path.join(dir, 'src/f.txt'), 'some data');
  write(
    path.join(dir, 'ha.yaml'),
    basicConfig(dir, { ...extra, services: '  - name: svc\n    type: files\n    paths: [./src]' }).replaceAll('@DIR@', dir),
  );
  return { dir, cfg: path.join(dir, 'ha.yaml') };
}

describe('a clock set back (point 17)', () => {
  it('never prunes the archive it just made, and warns about archives dated in the future', async () => {
    const { dir, cfg } = setup({ backup: '  retention:\n    keep_last: 2' });
    // two runs while the clock was three days ahead
    for (const off of [3 * DAY, 3 * DAY + 5000])
      expect((await runCli(['backup', 'svc', '--config', cfg], { clockOffsetMs: off })).code).toBe(0);
    const ahead = archivesIn(path.join(dir, 'backups/svc'));
    expect(ahead).toHaveLength(2);
    // the clock was corrected: the new archive is the oldest by date
    const r = await runCli(['backup', 'svc', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const made = path.basename(json(r).services[0].archive.path);
    const now = archivesIn(path.join(dir, 'backups/svc'));
    expect(now).toContain(made);
    expect(json(r).services[0].warnings.join('\n')).toMatch(/2 recorded backups are dated in the future .*clock set back/);
    expect(json(r).services[0].pruned.map((p: { path: string }) => path.basename(p.path))).not.toContain(made);
    const list = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(list.map((a: { location: string }) => path.basename(a.location))).toContain(made);
  });
});

describe('a lost or damaged state database (point 18)', () => {
  it('a 0-byte database is refused with the way back, and state rebuild records the archives again', async () => {
    const { dir, cfg } = setup({ backup: '  destinations:\n    - name: nas\n      path: @DIR@/nas' });
    const first = json(await runCli(['backup', 'svc', '--json', '--config', cfg]));
    const archive = first.services[0].archive.path as string;
    const db = path.join(dir, 'state/state.db');
    fs.truncateSync(db, 0);
    for (const ext of ['-wal', '-shm']) fs.rmSync(db + ext, { force: true });

    for (const args of [
      ['backups', 'list'],
      ['backup', 'svc'],
    ]) {
      const r = await runCli([...args, '--config', cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`the state database ${db} is empty (0 bytes)`);
      expect(r.stderr).toContain("hint: run 'homelab-autopilot state rebuild'");
    }
    // nothing was written meanwhile: no new empty database, no archive
    expect(fs.statSync(db).size).toBe(0);
    expect(archivesIn(path.join(dir, 'backups/svc'))).toEqual([path.basename(archive)]);

    const rb = await runCli(['state', 'rebuild', '--config', cfg]);
    expect(rb.code).toBe(0);
    expect(rb.stdout).toContain('recorded 2 archives: 2 verified, 0 failed verification');
    const kept = fs.readdirSync(path.join(dir, 'state')).filter((n) => /^state\.db\.damaged-\d{8}_\d{6}$/.test(n));
    expect(kept).toHaveLength(1);
    expect(fs.statSync(path.join(dir, 'state', kept[0])).size).toBe(0);
    const list = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(list.map((a: { destination: string }) => a.destination).sort()).toEqual(['nas', 'primary']);
    const primary = list.find((a: { destination: string }) => a.destination === 'primary');
    expect(primary).toMatchObject({
      location: archive,
      size: fs.statSync(archive).size,
      sha256: sha256(archive),
      verifyStatus: 'ok',
      present: true,
    });
    expect(new Date(primary.createdAt).getTime()).toBeCloseTo(new Date(first.startedAt).getTime(), -4);
    // and retention sees them again
    const cfg1 = path.join(dir, 'keep1.yaml');
    write(cfg1, fs.readFileSync(cfg, 'utf8').replace('backup:\n', 'backup:\n  retention:\n    keep_last: 1\n'));
    expect((await runCli(['backup', 'svc', '--config', cfg1], { clockOffsetMs: 5000 })).code).toBe(0);
    expect(archivesIn(path.join(dir, 'backups/svc'))).not.toContain(path.basename(archive));
  });

  it('a damaged database exits 1 with what happened, not 70, and a sound one is rebuilt only with --force', async () => {
    const { dir, cfg } = setup();
    for (let i = 0; i < 3; i++) expect((await runCli(['backup', 'svc', '--config', cfg], { clockOffsetMs: i * 2000 })).code).toBe(0);
    const refused = await runCli(['state', 'rebuild', '--config', cfg]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('is sound: nothing to rebuild');
    const db = path.join(dir, 'state/state.db');
    // everything in the main file: the last writer to close removes the WAL
    const h = new Database(db);
    h.pragma('wal_checkpoint(TRUNCATE)');
    h.close();
    expect(fs.existsSync(db + '-wal')).toBe(false);
    // every page after the first overwritten
    const size = fs.statSync(db).size;
    const fd = fs.openSync(db, 'r+');
    fs.writeSync(fd, Buffer.alloc(size - 4096, 0x5a), 0, size - 4096, 4096);
    fs.closeSync(fd);
    for (const args of [['history'], ['backup', 'svc'], ['status']]) {
      const r = await runCli([...args, '--config', cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the state database .* is damaged \(/);
      expect(r.stderr).toContain('state rebuild');
      expect(r.stderr).not.toContain('this is a bug');
    }
    const rb = await runCli(['state', 'rebuild', '--json', '--config', cfg]);
    expect(rb.code).toBe(0);
    const report = json(rb);
    expect(report.reason).toMatch(/is damaged/);
    expect(report.archives).toHaveLength(3);
    expect(fs.readFileSync(report.keptAs).length).toBe(size);
    expect((await runCli(['history', '--config', cfg])).code).toBe(0);
  });
});

describe('a full disk and a run killed while it verifies (point 19)', () => {
  it('a full disk is reported as such, with a hint', async () => {
    const { dir, cfg } = setup();
    write(path.join(dir, 'src/big'), randomBytes(20_000_000));
    tmpfs(path.join(dir, 'backups'), '1m');
    const r = await runCli(['backup', 'svc', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('No space left on device');
    expect(r.stdout).toMatch(/hint: free space on that disk/);
    expect(r.stdout).not.toContain('Connection reset by peer');
    expect(fs.readdirSync(path.join(dir, 'backups/svc'))).toEqual([]);
  });

  it('an archive whose verification was killed is verified and recorded by the next run', async () => {
    const { dir, cfg } = setup();
    // a zstd that hangs when asked to decompress: the run is killed while it verifies
    const shim = path.join(dir, 'shim');
    const real = execFileSync('sh', ['-c', 'command -v zstd']).toString().trim();
    write(
      path.join(shim, 'zstd'),
      `#!/bin/sh\nfor a in "$@"; do if [ "$a" = "-d" ]; then echo $$ > ${dir}/verifying.pid; exec sleep 60; fi; done\nexec ${real} "$@"\n`,
      0o755,
    );
    const child = startCli(['backup', 'svc', '--config', cfg], { env: { PATH: `${shim}:${process.env.PATH}` } });
    const done = collect(child);
    for (let i = 0; i < 400 && !fs.existsSync(path.join(dir, 'verifying.pid')); i++) await sleep(25);
    expect(fs.existsSync(path.join(dir, 'verifying.pid'))).toBe(true);
    child.kill('SIGKILL');
    await done;
    process.kill(Number(fs.readFileSync(path.join(dir, 'verifying.pid'), 'utf8')), 'SIGKILL');
    const left = archivesIn(path.join(dir, 'backups/svc'));
    expect(left).toHaveLength(1);

    // an info line: shown on a piped stderr only with --log-level info
    const r = await runCli(['backup', 'svc', '--log-level', 'info', '--config', cfg], { clockOffsetMs: 2000 });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`verified ${path.join(dir, 'backups/svc', left[0])}, left unverified by an earlier run that was stopped`);
    const list = json(await runCli(['backups', 'list', '--json', '--config', cfg]));
    expect(list).toHaveLength(2);
    const old = list.find((a: { location: string }) => path.basename(a.location) === left[0]);
    expect(old).toMatchObject({ verifyStatus: 'ok', present: true, sha256: sha256(path.join(dir, 'backups/svc', left[0])) });
  });
});

describe('names, read-only disks and kernel file systems (point 20)', () => {
  it('the -N name is free at every destination (the hour the clock falls back)', async () => {
    const { dir, cfg } = setup({ backup: '  destinations:\n    - name: nas\n      path: @DIR@/nas' });
    // the copies of the first pass through the repeated hour are there already, at the destination only
    const stamp = (d: Date): string => {
      const p = (n: number): string => String(n).padStart(2, '0');
      return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
    };
    for (let s = 0; s < 30; s++) write(path.join(dir, `nas/svc/svc_${stamp(new Date(Date.now() + s * 1000))}.tar.zst`), 'earlier');
    const r = await runCli(['backup', 'svc', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const res = json(r).services[0];
    expect(path.basename(res.archive.path)).toMatch(/^svc_\d{8}_\d{6}-2\.tar\.zst$/);
    expect(res.copies).toEqual([expect.objectContaining({ destination: 'nas', ok: true })]);
  });

  it('a read-only backup root says so, with a hint', async () => {
    const { dir, cfg } = setup();
    tmpfs(path.join(dir, 'backups'), '1m', true);
    const r = await runCli(['backup', 'svc', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`cannot write to ${dir}/backups/svc: its file system is mounted read-only`);
    expect(r.stdout).toContain('hint: remount it read-write');
    expect(r.stdout).not.toContain('no such file or directory');
  });

  it('folders under /proc are refused, and one reached through a link does not hang the run', async () => {
    const { dir, cfg } = setup();
    write(cfg, fs.readFileSync(cfg, 'utf8').replace(`root: ${dir}/backups`, 'root: /proc/autopilot'));
    const v = await runCli(['config', 'validate', '--config', cfg]);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('backup.root: /proc/autopilot is under /proc, a file system of the kernel');
    fs.symlinkSync('/proc', path.join(dir, 'kernel'));
    for (const [key, value] of [
      ['root', `${dir}/kernel/autopilot`],
      ['state_dir', `${dir}/kernel/autopilot/state`],
    ]) {
      const c = path.join(dir, `${key}.yaml`);
      write(
        c,
        basicConfig(dir, { services: '  - name: svc\n    type: files\n    paths: [./src]' }).replace(
          new RegExp(`${key}: .*`),
          `${key}: ${value}`,
        ),
      );
      const r = await runCli(['backup', 'svc', '--config', c], { timeoutMs: 20_000 });
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toMatch(/no such file or directory|cannot create/i);
    }
  });
});

describe('mounts and folders retention may touch (point 21)', () => {
  it('require_mount refuses a folder that is not a mounted file system', async () => {
    const { dir, cfg } = setup({
      backup: '  require_mount: true\n  destinations:\n    - name: usb\n      path: @DIR@/usb\n      require_mount: true',
    });
    fs.mkdirSync(path.join(dir, 'backups'));
    const r = await runCli(['backup', 'svc', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${dir}/backups is not a mounted file system (require_mount is set for backup.root): nothing was written`);
    expect(fs.readdirSync(path.join(dir, 'backups'))).toEqual([]);
    tmpfs(path.join(dir, 'backups'), '4m');
    const j = json(await runCli(['backup', 'svc', '--json', '--config', cfg]));
    expect(j.services[0].archive.verified).toBe(true);
    expect(j.services[0].copies[0]).toMatchObject({ destination: 'usb', ok: false });
    expect(j.services[0].copies[0].error).toContain(`${dir}/usb is not a mounted file system (require_mount is set for destination 'usb')`);
    expect(fs.existsSync(path.join(dir, 'usb'))).toBe(false);
  });

  it('a state copied with its config prunes nothing outside the configured folders, and says so', async () => {
    const a = setup({ backup: '  retention:\n    keep_last: 1' });
    for (const off of [0, 2000]) expect((await runCli(['backup', 'svc', '--config', a.cfg], { clockOffsetMs: off })).code).toBe(0);
    const oldArchives = archivesIn(path.join(a.dir, 'backups/svc'));
    expect(oldArchives).toHaveLength(1);
    // moved to a new folder: config and state copied, the archives stay where they were
    const b = setup({ backup: '  retention:\n    keep_last: 1' });
    fs.cpSync(path.join(a.dir, 'state'), path.join(b.dir, 'state'), { recursive: true });
    for (const off of [4000, 6000]) {
      const r = await runCli(['backup', 'svc', '--json', '--config', b.cfg], { clockOffsetMs: off });
      expect(r.code).toBe(0);
      expect(json(r).services[0].warnings.join('\n')).toContain(`1 recorded backup of primary lies outside ${b.dir}/backups`);
    }
    expect(archivesIn(path.join(a.dir, 'backups/svc'))).toEqual(oldArchives);
    expect(archivesIn(path.join(b.dir, 'backups/svc'))).toHaveLength(1);
  });
});

describe('what the summary says (point 22)', () => {
  it('with verify: false it does not say verified', async () => {
    const { cfg } = setup({ backup: '  verify: false' });
    const r = await runCli(['backup', 'svc', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^1 service backed up in /m);
    expect(r.stdout).not.toContain('verified');
  });
});
