import * as fs from 'node:fs';
import * as path from 'node:path';
import { basicConfig, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

/** Every file under a folder, relative, with its bytes. */
function contents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of fs.readdirSync(d)) {
      const f = path.join(d, n);
      if (fs.lstatSync(f).isDirectory()) walk(f);
      else out[path.relative(dir, f)] = fs.readFileSync(f).toString('base64');
    }
  };
  walk(dir);
  return out;
}

/** A files service `photos` (and a guest `box`) backed up once, to backup.root and a destination `nas`. */
async function backedUp(): Promise<{ dir: string; cfg: string; data: string; before: Record<string, string> }> {
  const dir = tmpDir('ha-restore-');
  const data = path.join(dir, 'data');
  write(path.join(data, 'a.txt'), 'alpha\n');
  write(path.join(data, 'sub/é b.bin'), Buffer.from([0, 1, 2, 255, 254, 10]));
  write(path.join(data, 'sub/deep/c.txt'), 'x'.repeat(100_000));
  const cfg = write(
    path.join(dir, 'ha.yaml'),
    basicConfig(dir, {
      backup: `  destinations:\n    - name: nas\n      path: ${dir}/nas`,
      services: '  - name: photos\n    type: files\n    paths: [./data]\n  - name: box\n    type: lxc\n    vmid: 100',
    }),
  );
  const b = await runCli(['backup', 'photos', '--config', cfg]);
  expect(b.code).toBe(0);
  return { dir, cfg, data, before: contents(data) };
}

const restored = (out: string, data: string): string => path.join(out, data.replace(/^\//, ''));

describe('restore of a files service', () => {
  it('lists the archive at backup.root and at the destination, newest first, with sizes and verification', async () => {
    const { cfg } = await backedUp();
    const list = json(await runCli(['restore', 'photos', '--list', '--json', '--config', cfg]));
    expect(list.map((p: { destination: string }) => p.destination)).toEqual(['primary', 'nas']);
    for (const p of list) expect(p).toMatchObject({ verifyStatus: 'ok', present: true, kind: 'backup', size: expect.any(Number) });
    const text = await runCli(['restore', 'photos', '--list', '--config', cfg]);
    expect(text.stdout).toMatch(/^ID\s+CREATED\s+DESTINATION\s+SIZE\s+VERIFIED\s+STATE/m);
    expect(text.stdout).toMatch(/\snas\s+\d+ B\s+ok\s+present\s+backup\s/);
  });

  it('restores into a folder byte for byte after files were changed and deleted; the folder must be empty', async () => {
    const { dir, cfg, data, before } = await backedUp();
    fs.writeFileSync(path.join(data, 'a.txt'), 'changed');
    fs.rmSync(path.join(data, 'sub'), { recursive: true });
    const out = path.join(dir, 'out');
    const r = await runCli(['restore', 'photos', '--to', out, '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/restored archive \d+ \(primary/);
    expect(r.stdout).toContain('3 files');
    expect(contents(restored(out, data))).toEqual(before);
    expect(r.stderr).toMatch(/check ok: 3 files/);

    const again = await runCli(['restore', 'photos', '--to', out, '--config', cfg]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${out} is not empty`);
    const forced = await runCli(['restore', 'photos', '--to', out, '--force', '--config', cfg]);
    expect(forced.code).toBe(0);
  });

  it('--from takes the destination copy when the file at backup.root is gone', async () => {
    const { dir, cfg, data, before } = await backedUp();
    const list = json(await runCli(['restore', 'photos', '--list', '--json', '--config', cfg]));
    fs.rmSync(list[0].location);
    const none = await runCli(['restore', 'photos', '--from', 'primary', '--to', path.join(dir, 'o1'), '--config', cfg]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no verified archive at primary whose file is present');
    const out = path.join(dir, 'o2');
    const r = json(await runCli(['restore', 'photos', '--from', 'nas', '--to', out, '--json', '--config', cfg]));
    expect(r).toMatchObject({ status: 'success', archive: { destination: 'nas', id: list[1].id } });
    expect(contents(restored(out, data))).toEqual(before);
  });

  it('refuses a corrupted archive before anything is written, with the reason', async () => {
    const { dir, cfg } = await backedUp();
    const list = json(await runCli(['restore', 'photos', '--list', '--json', '--config', cfg]));
    const fd = fs.openSync(list[0].location, 'r+');
    const buf = Buffer.alloc(4);
    fs.readSync(fd, buf, 0, 4, 40);
    for (let i = 0; i < 4; i++) buf[i] ^= 0xff;
    fs.writeSync(fd, buf, 0, 4, 40);
    fs.closeSync(fd);
    const out = path.join(dir, 'out');
    const r = await runCli(['restore', 'photos', '--archive', String(list[0].id), '--to', out, '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/RESTORE FAILED: the archive failed verification, nothing was changed: .*(checksum|decompress)/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('--in-place needs --yes; with it, restores over the paths and leaves a recorded safety archive', async () => {
    const { dir, cfg, data, before } = await backedUp();
    fs.writeFileSync(path.join(data, 'a.txt'), 'changed since');
    fs.rmSync(path.join(data, 'sub/deep'), { recursive: true });
    const now = contents(data);
    const no = await runCli(['restore', 'photos', '--in-place', '--config', cfg]);
    expect(no.code).toBe(2);
    expect(no.stderr).toContain('--in-place replaces the files of photos where they are: add --yes to do it');
    expect(contents(data)).toEqual(now);

    const r = json(await runCli(['restore', 'photos', '--in-place', '--yes', '--json', '--config', cfg]));
    expect(r).toMatchObject({ status: 'success', target: '/', inPlace: true });
    expect(contents(data)).toEqual(before);
    expect(path.basename(r.safety.path)).toMatch(/^photos_pre-restore_\d{8}_\d{6}\.tar\.zst$/);
    expect(path.dirname(r.safety.path)).toBe(path.join(dir, 'backups', 'photos'));
    // the safety archive holds what was there before the restore, and is listed (but not the default pick)
    const list = json(await runCli(['restore', 'photos', '--list', '--json', '--config', cfg]));
    const safety = list.find((p: { kind: string }) => p.kind === 'pre-restore');
    expect(safety).toMatchObject({ location: r.safety.path, verifyStatus: 'ok', present: true });
    const back = path.join(dir, 'back');
    expect((await runCli(['restore', 'photos', '--archive', String(safety.id), '--to', back, '--config', cfg])).code).toBe(0);
    expect(contents(restored(back, data))).toEqual(now);
    const dry = json(await runCli(['restore', 'photos', '--to', path.join(dir, 'x'), '--dry-run', '--json', '--config', cfg]));
    expect(dry.archive.id).not.toBe(safety.id);
  });

  it('--dry-run shows the archive, where and its size, and writes nothing', async () => {
    const { dir, cfg, data } = await backedUp();
    const out = path.join(dir, 'out');
    const r = await runCli(['restore', 'photos', '--to', out, '--dry-run', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dry run: nothing is changed');
    expect(r.stdout).toMatch(/archive \d+ \(primary, .*, \d+ B\): .*photos_\d{8}_\d{6}\.tar\.zst/);
    expect(r.stdout).toContain(`into ${out}`);
    expect(fs.existsSync(out)).toBe(false);
    const inPlace = await runCli(['restore', 'photos', '--in-place', '--dry-run', '--config', cfg]);
    expect(inPlace.code).toBe(0);
    expect(inPlace.stdout).toMatch(/safety archive of what is there now, into .*photos_pre-restore_/);
    expect(fs.readdirSync(path.join(dir, 'backups', 'photos')).filter((n) => n.includes('pre-restore'))).toEqual([]);
    expect(fs.existsSync(data)).toBe(true);
  });

  it('an unknown service or a guest type is a usage error (exit 2) with a clear message', async () => {
    const { dir, cfg } = await backedUp();
    const unknown = await runCli(['restore', 'nosuch', '--to', path.join(dir, 'o'), '--config', cfg]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("error: no service named 'nosuch' in the config");
    const guest = await runCli(['restore', 'box', '--to', path.join(dir, 'o'), '--config', cfg]);
    expect(guest.code).toBe(2);
    expect(guest.stderr).toContain('error: restore of lxc services arrives later');
    expect(guest.stderr).not.toMatch(/\n\s+at /);
    const list = await runCli(['restore', 'box', '--list', '--json', '--config', cfg]);
    expect(list.code).toBe(2);
    expect(json(list).error.message).toBe('restore of lxc services arrives later');
  });
});
