/**
 * The files of archives: their formats (tar with zstd or gzip, how each is compressed and read
 * back), member names relative to /, the hidden temporary name of an archive being written and
 * the clean-up of those a killed run left, and fsync of a file or folder.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { processAlive } from './proc';

export type Compression = 'zstd' | 'gzip';

export const EXTENSION: Record<Compression, string> = { zstd: '.tar.zst', gzip: '.tar.gz' };
export const DEFAULT_LEVEL: Record<Compression, number> = { zstd: 3, gzip: 6 };

export function compressArgs(c: Compression, level: number, threads: number): [string, string[]] {
  return c === 'zstd' ? ['zstd', ['-q', `-${level}`, `-T${threads}`, '-c']] : ['gzip', ['-c', '-n', `-${level}`]];
}

export function decompressArgs(c: Compression): [string, string[]] {
  return c === 'zstd' ? ['zstd', ['-q', '-d', '-c']] : ['gzip', ['-d', '-c']];
}

export function compressionOf(file: string): Compression | null {
  if (file.endsWith('.tar.zst')) return 'zstd';
  if (file.endsWith('.tar.gz')) return 'gzip';
  return null;
}

/** Member names are stored relative to / (like GNU tar does by default); excludes are matched the same way. */
export function tarSelection(sources: string[], exclude: string[], storeAs: { path: string; as: string }[] = []): string[] {
  const args = ['--directory=/'];
  for (const e of exclude) args.push(`--exclude=${e.startsWith('/') ? e.slice(1) : e}`);
  // one member renamed, matched whole: the separator is a character neither name contains (in
  // tar's basic regular expressions an escaped | would mean "or"), the special ones escaped
  const rel = (p: string): string => p.replace(/^\/+/, '');
  const re = (p: string): string => rel(p).replace(/[\\^$.*[\]]/g, '\\$&');
  const sub = (p: string): string => rel(p).replace(/[\\&]/g, '\\$&');
  for (const r of storeAs) {
    const sep = ['|', '#', ',', '%', '@', '!', '\x01'].find((c) => !r.path.includes(c) && !r.as.includes(c)) ?? '\x01';
    args.push(`--transform=flags=r;s${sep}^${re(r.path)}$${sep}${sub(r.as)}${sep}`);
  }
  args.push('--');
  for (const s of sources) args.push(s === '/' ? '.' : s.replace(/^\/+/, ''));
  return args;
}

/** tar's exit status 1 means "some files changed while being read": the archive is complete but not a consistent snapshot. */
export const TAR_CHANGED = 1;

/** Buffer sizes for the streams that carry archive data: big enough that writes are few. */
export const STREAM_BUFFER = 1024 * 1024;

/** The temporary name of an archive being written: hidden, and naming this host and process. */
export function partialName(dest: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.partial-${os.hostname()}-${process.pid}`);
}

/**
 * Removes temporary files left in `dir` by runs of this host whose process is gone (a
 * folder shared by several hosts keeps the others' files). Returns what it removed.
 */
export async function cleanStalePartials(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = /^\..+\.partial-(.+)-(\d+)$/.exec(n);
    if (!m || m[1] !== os.hostname()) continue;
    const pid = Number(m[2]);
    if (pid !== process.pid && processAlive(pid, null)) continue;
    await fsp.rm(path.join(dir, n), { force: true });
    removed.push(path.join(dir, n));
  }
  return removed;
}

export async function fsyncPath(p: string, flags = 'r'): Promise<void> {
  const fh = await fsp.open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
