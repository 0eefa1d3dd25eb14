/**
 * What else is done with archives: a verified copy to another destination, the listing of what
 * a backup would hold (for --dry-run), a decompress test of a file someone else wrote (a
 * hypervisor's backup), and a restore in place (tar -x -C /).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { compressionOf, decompressArgs, fsyncPath, partialName, STREAM_BUFFER, TAR_CHANGED, tarSelection } from './archive-files';
import { AutopilotError } from './errors';
import { makeDir, writeError } from './fsx';
import { lastLines, track, type Proc } from './spawn';

/** Copies a finished archive to another folder the same careful way: temporary name, fsync, rename. */
export async function copyArchive(src: string, dest: string, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new AutopilotError('ABORTED', 'the copy was cancelled');
  await makeDir(path.dirname(dest));
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
    const explained = writeError(e, path.dirname(dest));
    if (explained instanceof AutopilotError) throw explained;
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
