import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Entry {
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  sha256?: string;
  target?: string;
}

/** Every entry under `root`: type, permission bits, content hash or link target. */
export function snapshotTree(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (dir: string, rel: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(full);
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', mode: 0, target: fs.readlinkSync(full) };
      else if (st.isDirectory()) {
        out[r] = { type: 'dir', mode: st.mode & 0o7777 };
        walk(full, r);
      } else out[r] = { type: 'file', mode: st.mode & 0o7777, sha256: createHash('sha256').update(fs.readFileSync(full)).digest('hex') };
    }
  };
  walk(root, '');
  return out;
}

/** A source tree with the awkward cases: spaces, unicode, empty files and folders, links, modes, binary data. */
export function makeAwkwardTree(root: string, randomBytes = 3 * 1024 * 1024): void {
  const w = (rel: string, content: string | Buffer, mode = 0o644): void => {
    const f = path.join(root, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, content);
    fs.chmodSync(f, mode);
  };
  w('etc/app.conf', 'key = value\n');
  w('etc/with space/ünïcødé naïve.txt', 'unicode ✓\n');
  w('etc/empty-file', '');
  w('bin/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  w('secret/key.pem', 'not really a key\n', 0o600);
  w('data/random.bin', Buffer.from(Array.from({ length: randomBytes }, (_, i) => (i * 2654435761) >>> 24)));
  w('data/log.txt', 'line of a compressible log\n'.repeat(20000));
  fs.mkdirSync(path.join(root, 'empty-dir'), { recursive: true });
  fs.symlinkSync('../etc/app.conf', path.join(root, 'bin', 'link-to-conf'));
  for (let i = 0; i < 200; i++) w(`many/f${i}.txt`, `file ${i}\n`);
}

/** Random letters from a 16-letter alphabet: zstd -19 needs seconds per MiB of it (to be caught mid-archive). */
export function slowToCompress(bytes: number, seed = 12345): Buffer {
  const buf = Buffer.alloc(bytes);
  let x = seed;
  for (let i = 0; i < buf.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = 97 + ((x >>> 0) % 16);
  }
  return buf;
}
