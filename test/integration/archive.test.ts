import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createArchive, verifyArchive } from '../../lib/archive';
import { basicConfig, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';
import { makeAwkwardTree, snapshotTree } from '../helpers/tree';

afterAll(cleanupTmp);

const ARCHIVE_NAME = /^[a-z]+_\d{8}_\d{6}(-\d+)?\.tar\.(zst|gz)$/;

describe('archives that GNU tar and the zstd CLI read without us', () => {
  for (const compression of ['zstd', 'gzip'] as const) {
    it(`a ${compression} backup extracts with the standard tools, identical to the source`, async () => {
      const dir = tmpDir();
      const src = path.join(dir, 'src');
      makeAwkwardTree(src);
      write(
        path.join(dir, 'ha.yaml'),
        basicConfig(dir, {
          backup: `  compression: ${compression}\n  destinations:\n    - name: nas\n      path: ${dir}/nas`,
          services: `  - name: awkward\n    type: files\n    paths: [./src]`,
        }),
      );
      const r = await runCli(['backup', '--all', '--json', '--config', path.join(dir, 'ha.yaml')]);
      expect(r.code).toBe(0);
      const report = json(r);
      const svc = report.services[0];
      expect(svc.status).toBe('success');
      expect(svc.archive.verified).toBe(true);
      const file = svc.archive.path as string;
      expect(path.basename(file)).toMatch(ARCHIVE_NAME);
      expect(fs.statSync(file).size).toBe(svc.archive.size);
      expect(execFileSync('sha256sum', [file]).toString().split(' ')[0]).toBe(svc.archive.sha256);

      // list with the standard tools
      const listing = execFileSync('tar', ['--list', `--${compression === 'zstd' ? 'zstd' : 'gzip'}`, '--file', file]).toString();
      expect(listing).toContain(`${src.slice(1)}/etc/with space/ünïcødé naïve.txt`);
      if (compression === 'zstd') execFileSync('zstd', ['-t', '-q', file]);
      else execFileSync('gzip', ['-t', file]);

      // extract with decompressor | tar, as a user would without us
      const out = path.join(dir, 'restore');
      fs.mkdirSync(out);
      const decompressed = execFileSync(compression === 'zstd' ? 'zstd' : 'gzip', ['-d', '-c', file], { maxBuffer: 1 << 30 });
      execFileSync('tar', ['-x', '-p', '-f', '-', '-C', out], { input: decompressed });
      expect(snapshotTree(path.join(out, src.slice(1)))).toEqual(snapshotTree(src));

      // the copy on the second destination is the same file, and extracts with tar's own option too
      const copy = svc.copies[0];
      expect(copy).toMatchObject({ destination: 'nas', ok: true });
      expect(fs.readFileSync(copy.path).equals(fs.readFileSync(file))).toBe(true);
      const out2 = path.join(dir, 'restore2');
      fs.mkdirSync(out2);
      execFileSync('tar', ['-x', '-p', `--${compression === 'zstd' ? 'zstd' : 'gzip'}`, '-f', copy.path, '-C', out2]);
      expect(snapshotTree(path.join(out2, src.slice(1)))).toEqual(snapshotTree(src));
    });
  }

  it('excludes what the service excludes', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'src/keep.txt'), 'keep');
    write(path.join(dir, 'src/cache/big.tmp'), 'drop');
    write(path.join(dir, 'src/sub/also.tmp'), 'drop');
    write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: `  - name: ex\n    type: files\n    paths: [./src]\n    exclude: ["*.tmp", cache]` }),
    );
    const r = await runCli(['backup', 'ex', '--json', '--config', path.join(dir, 'ha.yaml')]);
    expect(r.code).toBe(0);
    const listing = execFileSync('tar', ['--zstd', '-tf', json(r).services[0].archive.path]).toString();
    expect(listing).toContain('src/keep.txt');
    expect(listing).not.toContain('.tmp');
    expect(listing).not.toContain('cache');
  });
});

describe('verification', () => {
  it('passes a good archive and catches truncation, a changed byte and a wrong checksum', async () => {
    const dir = tmpDir();
    makeAwkwardTree(path.join(dir, 'src'), 256 * 1024);
    const dest = path.join(dir, 'out', 'v_20260101_000000.tar.zst');
    const a = await createArchive({ sources: [path.join(dir, 'src')], compression: 'zstd', dest });
    expect(fs.readdirSync(path.dirname(dest))).toEqual([path.basename(dest)]); // no temporary file left
    const ok = await verifyArchive(dest, { size: a.size, sha256: a.sha256 });
    expect(ok).toMatchObject({ ok: true, size: a.size, sha256: a.sha256 });
    expect(ok.entries).toBeGreaterThan(200);

    expect(await verifyArchive(dest, { size: a.size + 1 })).toMatchObject({ ok: false, error: expect.stringMatching(/^size is/) });
    expect(await verifyArchive(dest, { sha256: 'f'.repeat(64) })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^checksum is/),
    });

    const bad = path.join(dir, 'out', 'bad_20260101_000000.tar.zst');
    const buf = fs.readFileSync(dest);
    buf[Math.floor(buf.length / 2)] ^= 0xff;
    fs.writeFileSync(bad, buf);
    expect(await verifyArchive(bad, {})).toMatchObject({ ok: false, error: expect.stringMatching(/cannot decompress it|cannot list it/) });

    const cut = path.join(dir, 'out', 'cut_20260101_000000.tar.zst');
    fs.writeFileSync(cut, fs.readFileSync(dest).subarray(0, Math.floor(a.size / 2)));
    expect(await verifyArchive(cut, {})).toMatchObject({ ok: false });
    expect(await verifyArchive(path.join(dir, 'nope.tar.zst'), {})).toMatchObject({
      ok: false,
      error: expect.stringMatching(/does not exist/),
    });
  });
});

describe('a compressor that is not installed', () => {
  /** A PATH that holds tar (and setpriv, when asked) but no zstd. */
  function pathWithout(dir: string, withSetpriv: boolean): string {
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    for (const tool of withSetpriv ? ['tar', 'setpriv'] : ['tar'])
      fs.symlinkSync(execFileSync('which', [tool]).toString().trim(), path.join(bin, tool));
    return bin;
  }

  for (const withSetpriv of [true, false]) {
    it(`is named, with what to install, and leaves no file behind (${withSetpriv ? 'started through setpriv' : 'started directly'})`, async () => {
      const dir = tmpDir();
      write(path.join(dir, 'src/f.txt'), 'data');
      const cfg = write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services: '  - name: data\n    type: files\n    paths: [./src]' }));
      const r = await runCli(['backup', '--all', '--json', '--config', cfg], { env: { PATH: pathWithout(dir, withSetpriv) } });
      expect(r.code).toBe(1);
      const svc = json(r).services[0];
      expect(svc.status).toBe('failed');
      expect(svc.error).toBe('zstd is not installed');
      expect(svc.hint).toBe('install zstd (apt-get install zstd)');
      expect(fs.readdirSync(path.join(dir, 'backups/data'))).toEqual([]);
    });
  }
});
