/**
 * Archives that GNU tar and the zstd (or gzip) CLI read without us: a tar stream piped
 * straight into the compressor, which writes the file under a temporary name itself (the
 * data never passes through Node); Node checksums the file as it grows, fsyncs it, and
 * renames it into place. Verification decompresses and lists the whole archive. The formats
 * and temporary files are in ./archive-files.ts, copies, listings, decompress tests and
 * restores in ./archive-ops.ts (both re-exported here), the child processes in ./spawn.ts.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import {
  compressArgs,
  compressionOf,
  decompressArgs,
  DEFAULT_LEVEL,
  fsyncPath,
  partialName,
  TAR_CHANGED,
  tarSelection,
  type Compression,
} from './archive-files';
import { AutopilotError } from './errors';
import { isDiskFull, makeDir, writeError } from './fsx';
import { tarLineReader, type TarTally } from './archive-restore';
import { lastLines, spawnTied, track } from './spawn';

export * from './archive-files';
export * from './archive-ops';
export * from './archive-restore';

/** The block in which archives are read for their checksum. */
const HASH_BLOCK = 4 * 1024 * 1024;
/** While writing, flush to disk every so many bytes, so that the final fsync has little left to do. */
const SYNC_EVERY = 64 * 1024 * 1024;

export interface CreateArchiveOptions {
  sources: string[];
  exclude?: string[];
  /** files stored under another absolute name: `path` (inside the sources) is archived as `as` */
  storeAs?: { path: string; as: string }[];
  compression: Compression;
  level?: number;
  threads?: number;
  /** the final path; the file appears there only when complete */
  dest: string;
  /** cancels the work (a caller's deadline is an AbortSignal.timeout in it) */
  signal?: AbortSignal;
  onProgress?(bytesWritten: number): void;
  /** how often an archive whose files changed while read is made again (default 2) */
  changeRetries?: number;
  /** told when an attempt is discarded */
  onRetry?(why: string): void;
}

export interface ArchiveResult {
  path: string;
  size: number;
  sha256: string;
  durationMs: number;
  warnings: string[];
}

/** tar said files changed while it read them: the attempt is discarded and made again. */
class FilesChanged extends Error {}

/**
 * Writes the archive. When tar reports that files changed while it read them (a database
 * being written, a log growing), the archive could hold a torn copy: it is thrown away and
 * made again, up to `changeRetries` times (default 2); after that it is kept with a warning.
 */
export async function createArchive(opts: CreateArchiveOptions): Promise<ArchiveResult> {
  const retries = opts.changeRetries ?? 2;
  for (let attempt = 0; ; attempt++) {
    try {
      return await writeArchiveOnce(opts, attempt >= retries, attempt + 1);
    } catch (e) {
      if (!(e instanceof FilesChanged)) throw e;
      opts.onRetry?.(`files changed while they were archived (${e.message}); making the archive again`);
    }
  }
}

async function writeArchiveOnce(opts: CreateArchiveOptions, acceptChanged: boolean, attempts: number): Promise<ArchiveResult> {
  const started = Date.now();
  const level = opts.level ?? DEFAULT_LEVEL[opts.compression];
  const tmp = partialName(opts.dest);
  await makeDir(path.dirname(opts.dest));
  if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'the backup was cancelled');

  let lastReport = 0;
  let lastSync = 0;
  const syncs: Promise<void>[] = [];
  let fh: fsp.FileHandle | null = await fsp.open(tmp, 'wx', 0o640).catch((e: unknown) => {
    throw writeError(e, path.dirname(opts.dest));
  });
  const file = fh;
  const tar = spawnTied('tar', ['--create', '--file=-', '--sparse', ...tarSelection(opts.sources, opts.exclude ?? [], opts.storeAs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [cmd, args] = compressArgs(opts.compression, level, opts.threads ?? 1);
  // the compressor reads tar's pipe and writes the file itself: the data never passes through Node
  const comp = spawnTied(cmd, args, { stdio: [tar.child.stdout!, file.fd, 'pipe'] });
  tar.child.stdout!.destroy();

  const procs = [tar, comp];
  const kill = (): void => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  const onAbort = (): void => kill();
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  let compressorDone = false;
  const compressed = comp.done.finally(() => {
    compressorDone = true;
  });
  try {
    // the checksum is taken from the file as it grows (from the page cache, while the
    // compressor goes on), so it covers exactly the bytes that landed on disk
    const hashing = hashFile(tmp, {
      growing: () => !compressorDone,
      signal: opts.signal,
      onBytes(bytes) {
        if (bytes - lastSync >= SYNC_EVERY) {
          // start writing out what is there so far, so that the final fsync has little left to do
          lastSync = bytes;
          syncs.push(file.datasync().catch(() => undefined));
        }
        const now = Date.now();
        if (opts.onProgress && now - lastReport >= 500) {
          lastReport = now;
          opts.onProgress(bytes);
        }
      },
    });
    const [tarCode, compCode, { size, sha256 }] = await Promise.all([tar.done, compressed, hashing]);
    if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'the backup was cancelled');
    const warnings: string[] = [];
    // the compressor first: when it fails (a full disk), tar only sees its pipe closed ("Connection reset by peer")
    if (compCode !== 0) throw compressorError(cmd, compCode, comp.stderr, opts.dest);
    if (tarCode === TAR_CHANGED) {
      if (!acceptChanged) throw new FilesChanged(lastLines(tar.stderr, 2));
      warnings.push(
        `some files kept changing while they were archived (${attempts} attempts), their copies may be inconsistent: ${lastLines(tar.stderr, 3)}`,
      );
    } else if (tarCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `tar failed (exit ${tarCode}): ${lastLines(tar.stderr) || 'no message'}`);
    await Promise.all(syncs);
    await fh.sync().catch((e: unknown) => {
      throw writeError(e, path.dirname(opts.dest));
    });
    const st = await fh.stat();
    if (st.size !== size)
      throw new AutopilotError(
        'ARCHIVE_FAILED',
        `${tmp} holds ${st.size} bytes but ${size} were checksummed: did something else write to it?`,
      );
    await fh.close();
    fh = null;
    // never overwrite: a name taken since we chose it is an error, not a silent replacement
    if (fs.existsSync(opts.dest)) throw new AutopilotError('ARCHIVE_FAILED', `${opts.dest} appeared while the archive was being written`);
    await fsp.rename(tmp, opts.dest);
    await fsyncPath(path.dirname(opts.dest));
    opts.onProgress?.(size);
    return { path: opts.dest, size, sha256, durationMs: Date.now() - started, warnings };
  } catch (e) {
    kill();
    await Promise.allSettled(procs.map((p) => p.done));
    await Promise.allSettled(syncs);
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'the backup was cancelled');
    if (e instanceof AutopilotError || e instanceof FilesChanged) throw e;
    if (isDiskFull(e) || ['EROFS', 'EACCES', 'EPERM'].includes(String((e as NodeJS.ErrnoException).code)))
      throw writeError(e, path.dirname(opts.dest));
    throw new AutopilotError('ARCHIVE_FAILED', `writing ${opts.dest} failed: ${(e as Error).message}`, { cause: e });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** The compressor's failure in its own words; a full disk with a hint. */
function compressorError(cmd: string, code: number | null, stderr: string, dest: string): AutopilotError {
  const said = lastLines(stderr) || 'no message';
  if (isDiskFull(null, stderr))
    return new AutopilotError(
      'ARCHIVE_FAILED',
      `${cmd} failed: No space left on device (the disk of ${path.dirname(dest)} is full): ${said}`,
      {
        hint: 'free space on that disk (older archives, other files), lower the keep-* retention, or point backup.root at a bigger disk',
      },
    );
  return new AutopilotError('ARCHIVE_FAILED', `${cmd} failed (exit ${code}): ${said}`);
}

/** How long the reader of a growing file waits before it looks again for more. */
const GROW_POLL_MS = 10;

/**
 * The sha256 and size of a file, read in 4 MiB blocks. With `growing`, the file is still
 * being written by another process: at its end the reader waits and reads on, and stops only
 * at an end it reached after `growing()` turned false (so nothing written is missed).
 */
async function hashFile(
  file: string,
  opts: { growing?: () => boolean; signal?: AbortSignal; onBytes?(bytes: number): void } = {},
): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'r');
  const buf = Buffer.allocUnsafe(HASH_BLOCK);
  let size = 0;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'cancelled');
      const more = opts.growing?.() ?? false;
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (bytesRead > 0) {
        hash.update(buf.subarray(0, bytesRead));
        size += bytesRead;
        opts.onBytes?.(size);
        continue;
      }
      if (!more) break;
      await new Promise((r) => setTimeout(r, GROW_POLL_MS));
    }
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest('hex') };
}

export interface VerifyResult {
  ok: boolean;
  size: number;
  sha256: string | null;
  entries: number;
  /** why it failed, when it did */
  error?: string;
}

/** Exists, size, checksum, and a full decompress and tar listing, in one read of the file. */
export async function verifyArchive(
  file: string,
  expect: { size?: number; sha256?: string | null },
  opts: {
    signal?: AbortSignal;
    /** bytes of the file read so far, at most every 500 ms */ onProgress?(bytes: number, total: number): void;
    /** filled with what tar lists (files, bytes, top-level names): tar then lists verbosely */
    tally?: TarTally;
  } = {},
): Promise<VerifyResult> {
  const compression = compressionOf(file);
  let st: fs.Stats;
  try {
    st = await fsp.stat(file);
  } catch {
    return { ok: false, size: 0, sha256: null, entries: 0, error: `${file} does not exist` };
  }
  if (expect.size !== undefined && st.size !== expect.size) {
    return { ok: false, size: st.size, sha256: null, entries: 0, error: `size is ${st.size} bytes, expected ${expect.size}` };
  }
  if (!compression) return { ok: false, size: st.size, sha256: null, entries: 0, error: `${file} is not a .tar.zst or .tar.gz archive` };
  const [cmd, args] = decompressArgs(compression);
  // the decompressor reads the file itself while Node checksums it: two readers of one file,
  // the second served from the page cache, and no archive data through Node's pipes
  const dec = track(spawn(cmd, [...args, '--', file], { stdio: ['ignore', 'pipe', 'pipe'] }), cmd);
  const tally = opts.tally;
  const tar = track(
    spawn('tar', ['--list', '--file=-', ...(tally ? ['--verbose'] : [])], {
      stdio: [dec.child.stdout!, 'pipe', 'pipe'],
      env: tally ? { ...process.env, LC_ALL: 'C' } : process.env,
    }),
    'tar',
  );
  dec.child.stdout!.destroy();
  const procs = [dec, tar];
  const kill = (): void => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  opts.signal?.addEventListener('abort', kill, { once: true });
  let entries = 0;
  const count = (c: Buffer): void => {
    for (let i = 0; i < c.length; i++) if (c[i] === 10) entries++;
  };
  const read = tally ? tarLineReader((m) => tally.add(m)) : null;
  tar.child.stdout!.on('data', (c: Buffer) => {
    count(c);
    read?.(c);
  });
  try {
    // at once (the phase has changed), then at most every 500 ms
    opts.onProgress?.(0, st.size);
    let lastReport = Date.now();
    const onBytes = (bytes: number): void => {
      const now = Date.now();
      if (!opts.onProgress || now - lastReport < 500) return;
      lastReport = now;
      opts.onProgress(bytes, st.size);
    };
    const [{ sha256 }, decCode, tarCode] = await Promise.all([hashFile(file, { signal: opts.signal, onBytes }), dec.done, tar.done]);
    if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'verification was cancelled');
    if (decCode !== 0)
      return {
        ok: false,
        size: st.size,
        sha256,
        entries,
        error: `${cmd} cannot decompress it: ${lastLines(dec.stderr) || `exit ${decCode}`}`,
      };
    if (tarCode !== 0)
      return { ok: false, size: st.size, sha256, entries, error: `tar cannot list it: ${lastLines(tar.stderr) || `exit ${tarCode}`}` };
    if (expect.sha256 && sha256 !== expect.sha256)
      return { ok: false, size: st.size, sha256, entries, error: `checksum is ${sha256}, expected ${expect.sha256}` };
    if (entries === 0) return { ok: false, size: st.size, sha256, entries, error: 'the archive holds no entries' };
    return { ok: true, size: st.size, sha256, entries };
  } catch (e) {
    if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'verification was cancelled');
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', kill);
    kill();
  }
}
