/**
 * Archives that GNU tar and the zstd (or gzip) CLI read without us: a tar stream piped
 * straight into the compressor, which writes the file under a temporary name itself (the
 * data never passes through Node); Node checksums the file as it grows, fsyncs it, and
 * renames it into place. Verification decompresses and lists the whole archive.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AutopilotError } from './errors';
import { processAlive } from './state';

export type Compression = 'zstd' | 'gzip';

export const EXTENSION: Record<Compression, string> = { zstd: '.tar.zst', gzip: '.tar.gz' };
export const DEFAULT_LEVEL: Record<Compression, number> = { zstd: 3, gzip: 6 };

function compressArgs(c: Compression, level: number, threads: number): [string, string[]] {
  return c === 'zstd' ? ['zstd', ['-q', `-${level}`, `-T${threads}`, '-c']] : ['gzip', ['-c', '-n', `-${level}`]];
}

function decompressArgs(c: Compression): [string, string[]] {
  return c === 'zstd' ? ['zstd', ['-q', '-d', '-c']] : ['gzip', ['-d', '-c']];
}

export function compressionOf(file: string): Compression | null {
  if (file.endsWith('.tar.zst')) return 'zstd';
  if (file.endsWith('.tar.gz')) return 'gzip';
  return null;
}

/** Member names are stored relative to / (like GNU tar does by default); excludes are matched the same way. */
function tarSelection(sources: string[], exclude: string[]): string[] {
  const args = ['--directory=/'];
  for (const e of exclude) args.push(`--exclude=${e.startsWith('/') ? e.slice(1) : e}`);
  args.push('--');
  for (const s of sources) args.push(s === '/' ? '.' : s.replace(/^\/+/, ''));
  return args;
}

interface Proc {
  child: ChildProcess;
  name: string;
  stderr: string;
  done: Promise<number | null>;
}

function notInstalled(name: string): AutopilotError {
  return new AutopilotError('ARCHIVE_FAILED', `${name} is not installed`, { hint: `install ${name} (apt-get install ${name})` });
}

function track(child: ChildProcess, name: string, tied = false): Proc {
  const p: Proc = { child, name, stderr: '', done: Promise.resolve(null) };
  child.stderr?.on('data', (c: Buffer) => {
    if (p.stderr.length < 64 * 1024) p.stderr += c.toString('utf8');
  });
  p.done = new Promise((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? notInstalled(name) : new AutopilotError('ARCHIVE_FAILED', `cannot run ${name}: ${e.message}`)),
    );
    child.on('close', (code) => {
      // setpriv could not start the command (127: not found, 126: not executable)
      if (tied && (code === 127 || code === 126) && /^setpriv: failed to execute/m.test(p.stderr))
        reject(code === 127 ? notInstalled(name) : new AutopilotError('ARCHIVE_FAILED', `cannot run ${name}: ${lastLines(p.stderr)}`));
      else resolve(code);
    });
  });
  return p;
}

const setprivByPath = new Map<string, string | null>();

/** util-linux's setpriv on $PATH (on every Debian and Proxmox host), or null. */
function setpriv(): string | null {
  if (process.platform !== 'linux') return null;
  const PATH = process.env.PATH ?? '';
  if (!setprivByPath.has(PATH)) {
    let found: string | null = null;
    for (const dir of PATH.split(':').filter(Boolean)) {
      try {
        fs.accessSync(path.join(dir, 'setpriv'), fs.constants.X_OK);
        found = path.join(dir, 'setpriv');
        break;
      } catch {
        /* not here */
      }
    }
    setprivByPath.set(PATH, found);
  }
  return setprivByPath.get(PATH)!;
}

/**
 * Starts a command that must not outlive us: through `setpriv --pdeathsig KILL`, the kernel
 * kills it when our process dies, even by SIGKILL or the OOM killer. Needed where no pipe of
 * ours would stop it: the compressor writes the archive file itself, and may hold all of its
 * input in its buffers after tar has ended. Without setpriv, the command is started directly.
 */
function spawnTied(cmd: string, args: string[], options: SpawnOptions): Proc {
  const sp = setpriv();
  if (!sp) return track(spawn(cmd, args, options), cmd);
  return track(spawn(sp, ['--pdeathsig', 'KILL', '--', cmd, ...args], options), cmd, true);
}

function lastLines(s: string, n = 4): string {
  return s
    .trim()
    .split('\n')
    .filter((l) => l && !/Removing leading/.test(l))
    .slice(-n)
    .join(' | ');
}

/** Buffer sizes for the streams that carry archive data: big enough that writes are few. */
const STREAM_BUFFER = 1024 * 1024;
/** The block in which archives are read for their checksum. */
const HASH_BLOCK = 4 * 1024 * 1024;
/** While writing, flush to disk every so many bytes, so that the final fsync has little left to do. */
const SYNC_EVERY = 64 * 1024 * 1024;

/** tar's exit status 1 means "some files changed while being read": the archive is complete but not a consistent snapshot. */
const TAR_CHANGED = 1;

export interface CreateArchiveOptions {
  sources: string[];
  exclude?: string[];
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

async function fsyncPath(p: string, flags = 'r'): Promise<void> {
  const fh = await fsp.open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
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
  await fsp.mkdir(path.dirname(opts.dest), { recursive: true });
  if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'the backup was cancelled');

  let lastReport = 0;
  let lastSync = 0;
  const syncs: Promise<void>[] = [];
  let fh: fsp.FileHandle | null = await fsp.open(tmp, 'wx', 0o640);
  const file = fh;
  const tar = spawnTied('tar', ['--create', '--file=-', '--sparse', ...tarSelection(opts.sources, opts.exclude ?? [])], {
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
    if (tarCode === TAR_CHANGED) {
      if (!acceptChanged) throw new FilesChanged(lastLines(tar.stderr, 2));
      warnings.push(
        `some files kept changing while they were archived (${attempts} attempts), their copies may be inconsistent: ${lastLines(tar.stderr, 3)}`,
      );
    } else if (tarCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `tar failed (exit ${tarCode}): ${lastLines(tar.stderr) || 'no message'}`);
    if (compCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `${cmd} failed (exit ${compCode}): ${lastLines(comp.stderr) || 'no message'}`);
    await Promise.all(syncs);
    await fh.sync();
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
    throw new AutopilotError('ARCHIVE_FAILED', `writing ${opts.dest} failed: ${(e as Error).message}`, { cause: e });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
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
  opts: { signal?: AbortSignal } = {},
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
  const tar = track(spawn('tar', ['--list', '--file=-'], { stdio: [dec.child.stdout!, 'pipe', 'pipe'] }), 'tar');
  dec.child.stdout!.destroy();
  const procs = [dec, tar];
  const kill = (): void => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  opts.signal?.addEventListener('abort', kill, { once: true });
  let entries = 0;
  tar.child.stdout!.on('data', (c: Buffer) => {
    for (let i = 0; i < c.length; i++) if (c[i] === 10) entries++;
  });
  try {
    const [{ sha256 }, decCode, tarCode] = await Promise.all([hashFile(file, { signal: opts.signal }), dec.done, tar.done]);
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

/** Copies a finished archive to another folder the same careful way: temporary name, fsync, rename. */
export async function copyArchive(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new AutopilotError('ABORTED', 'the copy was cancelled');
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = partialName(dest);
  try {
    await pipeline(
      fs.createReadStream(src, { highWaterMark: STREAM_BUFFER }),
      fs.createWriteStream(tmp, { flags: 'wx', mode: 0o640, highWaterMark: STREAM_BUFFER }),
      { signal },
    );
    await fsyncPath(tmp, 'r+');
    if (fs.existsSync(dest)) throw new AutopilotError('ARCHIVE_FAILED', `${dest} already exists`);
    await fsp.rename(tmp, dest);
    await fsyncPath(path.dirname(dest));
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    if (e instanceof AutopilotError) throw e;
    if ((e as Error).name === 'AbortError') throw new AutopilotError('ABORTED', 'the copy was cancelled');
    throw new AutopilotError('ARCHIVE_FAILED', `copying to ${dest} failed: ${(e as Error).message}`, { cause: e });
  }
}

export interface ListedSelection {
  files: number;
  bytes: number;
}

/** What an archive of these sources would hold, without reading file contents (tar writing to /dev/null). */
export async function listSelection(sources: string[], exclude: string[], signal?: AbortSignal): Promise<ListedSelection> {
  const tar = track(
    spawn('tar', ['--create', '--file=/dev/null', '--verbose', '--verbose', ...tarSelection(sources, exclude)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    'tar',
  );
  const onAbort = (): void => {
    tar.child.kill('SIGKILL');
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let files = 0;
  let bytes = 0;
  let rest = '';
  tar.child.stdout!.on('data', (c: Buffer) => {
    const text = rest + c.toString('utf8');
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      const m = /^(\S)\S*\s+\S+\s+(\d+)\s/.exec(l);
      if (!m) continue;
      if (m[1] === '-') {
        files++;
        bytes += Number(m[2]);
      }
    }
  });
  try {
    const code = await tar.done;
    if (signal?.aborted) throw new AutopilotError('ABORTED', 'cancelled');
    if (code !== 0 && code !== TAR_CHANGED)
      throw new AutopilotError('ARCHIVE_FAILED', `tar cannot read the sources: ${lastLines(tar.stderr)}`);
    return { files, bytes };
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * A decompress test of an archive someone else wrote (a vzdump .tar/.vma, compressed with
 * zstd, gzip or lzo or not at all): the whole file is decompressed, and a tar is listed too.
 * Returns `skipped` with the reason when the format or its tool is not available here.
 */
export async function testDecompress(
  file: string,
  signal?: AbortSignal,
): Promise<{ ok: boolean; skipped?: string; entries?: number; error?: string }> {
  const m = /\.(tar|vma)(?:\.(zst|gz|lzo))?$/.exec(file);
  if (!m) return { ok: false, skipped: `${path.basename(file)} is not a .tar or .vma archive` };
  const [, kind, comp] = m;
  const tool: Record<string, [string, string[]]> = {
    zst: ['zstd', ['-q', '-d', '-c']],
    gz: ['gzip', ['-d', '-c']],
    lzo: ['lzop', ['-d', '-c']],
  };
  const procs: Proc[] = [];
  const kill = (): void => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  signal?.addEventListener('abort', kill, { once: true });
  try {
    let source: NodeJS.ReadableStream | 'file' = 'file';
    if (comp) {
      const [cmd, args] = tool[comp];
      const dec = track(spawn(cmd, [...args, '--', file], { stdio: ['ignore', 'pipe', 'pipe'] }), cmd);
      procs.push(dec);
      source = dec.child.stdout!;
    }
    let entries = 0;
    if (kind === 'tar') {
      const tar = track(
        spawn('tar', ['--list', `--file=${source === 'file' ? file : '-'}`], {
          stdio: [source === 'file' ? 'ignore' : (source as never), 'pipe', 'pipe'],
        }),
        'tar',
      );
      procs.push(tar);
      if (source !== 'file') (source as unknown as { destroy(): void }).destroy(); // tar holds the pipe now
      tar.child.stdout!.on('data', (c: Buffer) => {
        for (let i = 0; i < c.length; i++) if (c[i] === 10) entries++;
      });
    } else if (source !== 'file') {
      source.resume(); // a .vma: decompressing it all is the test
    }
    let codes: (number | null)[];
    try {
      codes = await Promise.all(procs.map((p) => p.done));
    } catch (e) {
      if (comp === 'lzo' && e instanceof AutopilotError && /not installed/.test(e.message))
        return { ok: false, skipped: 'lzop is not installed here' };
      throw e;
    }
    if (signal?.aborted) throw new AutopilotError('ABORTED', 'the decompress test was cancelled');
    const bad = procs.findIndex((_, i) => codes[i] !== 0);
    if (bad >= 0) return { ok: false, error: `${procs[bad].name} failed on it: ${lastLines(procs[bad].stderr) || `exit ${codes[bad]}`}` };
    if (kind === 'tar' && entries === 0) return { ok: false, error: 'the archive holds no entries' };
    if (!comp && kind === 'vma') return { ok: true, skipped: 'an uncompressed .vma has nothing to decompress' };
    return { ok: true, entries: kind === 'tar' ? entries : undefined };
  } finally {
    signal?.removeEventListener('abort', kill);
    kill();
  }
}

/**
 * Restores an archive written by createArchive() to where its members came from (their
 * names are relative to /): `zstd -d | tar -x -C /`, keeping permissions and owners.
 */
export async function extractArchive(file: string, signal?: AbortSignal): Promise<void> {
  const compression = compressionOf(file);
  if (!compression) throw new AutopilotError('ARCHIVE_FAILED', `${file} is not a .tar.zst or .tar.gz archive`);
  const [cmd, args] = decompressArgs(compression);
  const dec = track(spawn(cmd, [...args, '--', file], { stdio: ['ignore', 'pipe', 'pipe'] }), cmd);
  const tar = track(
    spawn('tar', ['--extract', '--file=-', '--directory=/', '--preserve-permissions', '--same-owner', '--sparse'], {
      stdio: [dec.child.stdout!, 'ignore', 'pipe'],
    }),
    'tar',
  );
  dec.child.stdout!.destroy();
  const kill = (): void => {
    for (const p of [dec, tar]) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  signal?.addEventListener('abort', kill, { once: true });
  try {
    const [decCode, tarCode] = await Promise.all([dec.done, tar.done]);
    if (signal?.aborted) throw new AutopilotError('ABORTED', 'the restore was cancelled');
    if (decCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `${cmd} cannot decompress ${file}: ${lastLines(dec.stderr) || `exit ${decCode}`}`);
    if (tarCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `tar cannot extract ${file}: ${lastLines(tar.stderr) || `exit ${tarCode}`}`);
  } finally {
    signal?.removeEventListener('abort', kill);
    kill();
  }
}
