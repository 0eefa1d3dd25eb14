/**
 * Restoring an archive into a folder, and reading what tar says about each member: GNU tar's
 * verbose listing (`tar -tv`, or `tar -xvv` while it extracts) parsed line by line, with the
 * names unescaped (tar runs with LC_ALL=C, so every byte that is not printable ASCII comes as
 * an octal escape and a name is exactly the bytes it has on disk).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { compressionOf, decompressArgs } from './archive-files';
import { AutopilotError } from './errors';
import { makeDir } from './fsx';
import { lastLines, spawnTied } from './spawn';

export interface TarMember {
  /** tar's type letter: '-' a file, 'd' a folder, 'l' a symbolic link, 'h' a hard link… */
  type: string;
  size: number;
  /** the member's name (relative, as stored), as bytes */
  name: Buffer;
}

const ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, '?': 63, '"': 34, "'": 39 };

/** A name as tar's `escape` quoting style prints it, back to its bytes. */
export function unescapeTarName(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (s[i] !== '\\' || i + 1 >= s.length) {
      out.push(c & 0xff);
      continue;
    }
    const oct = /^[0-7]{3}/.exec(s.slice(i + 1, i + 4));
    if (oct) {
      out.push(parseInt(oct[0], 8));
      i += 3;
    } else if (ESCAPES[s[i + 1]] !== undefined) {
      out.push(ESCAPES[s[i + 1]]);
      i += 1;
    } else out.push(c);
  }
  return Buffer.from(out);
}

const LINE = /^(\S)\S*\s+\S+\s+(\d+|\d+,\s*\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? (.*)$/;

/** One line of tar's verbose listing; null for what is not a member line. */
export function parseTarLine(line: string): TarMember | null {
  const m = LINE.exec(line);
  if (!m) return null;
  let name = m[3];
  if (m[1] === 'l') name = name.replace(/ -> .*$/, '');
  else if (m[1] === 'h') name = name.replace(/ link to .*$/, '');
  return { type: m[1], size: /,/.test(m[2]) ? 0 : Number(m[2]), name: unescapeTarName(name) };
}

/** Feeds chunks of tar's verbose output, calls `on` for each member line. */
export function tarLineReader(on: (m: TarMember) => void): (chunk: Buffer) => void {
  let rest = '';
  return (chunk) => {
    const lines = (rest + chunk.toString('latin1')).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      const m = parseTarLine(l);
      if (m) on(m);
    }
  };
}

/** What a listing or an extraction saw: entries, regular files and their bytes, the top-level names. */
export class TarTally {
  entries = 0;
  files = 0;
  bytes = 0;
  /** the names no other member is inside of (the service's paths, relative to /), without a trailing / */
  readonly roots: string[] = [];
  private readonly rootSet = new Set<string>();

  add(m: TarMember): void {
    this.entries++;
    if (m.type === '-') {
      this.files++;
      this.bytes += m.size;
    }
    const name = m.name.toString('utf8').replace(/\/+$/, '');
    const parts = name.split('/');
    for (let i = 1; i <= parts.length; i++) if (this.rootSet.has(parts.slice(0, i).join('/'))) return;
    this.rootSet.add(name);
    this.roots.push(name);
  }
}

export interface ExtractResult {
  entries: number;
  files: number;
  bytes: number;
  /** the regular files tar wrote (names relative to the folder, sizes as listed) */
  written: { name: Buffer; size: number }[];
}

/**
 * Extracts an archive written by createArchive() into `dir` (created): `zstd -d | tar -x -C dir`,
 * keeping permissions (and owners when run as root: GNU tar's default then). Members keep their
 * names, which are relative to /: `srv/photos/a.jpg` lands in `<dir>/srv/photos/a.jpg`.
 */
export async function extractInto(
  file: string,
  dir: string,
  opts: { signal?: AbortSignal; onEntry?(entries: number): void } = {},
): Promise<ExtractResult> {
  const compression = compressionOf(file);
  if (!compression) throw new AutopilotError('ARCHIVE_FAILED', `${file} is not a .tar.zst or .tar.gz archive`);
  if (!path.isAbsolute(dir)) throw new AutopilotError('USAGE', `${dir} is not an absolute path`);
  await makeDir(dir);
  const [cmd, args] = decompressArgs(compression);
  const env = { ...process.env, LC_ALL: 'C' };
  const dec = spawnTied(cmd, [...args, '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tar = spawnTied(
    'tar',
    ['--extract', '--file=-', `--directory=${dir}`, '--preserve-permissions', '--sparse', '--verbose', '--verbose'],
    {
      stdio: [dec.child.stdout!, 'pipe', 'pipe'],
      env,
    },
  );
  dec.child.stdout!.destroy();
  const kill = (): void => {
    for (const p of [dec, tar]) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  };
  opts.signal?.addEventListener('abort', kill, { once: true });
  const result: ExtractResult = { entries: 0, files: 0, bytes: 0, written: [] };
  tar.child.stdout!.on(
    'data',
    tarLineReader((m) => {
      result.entries++;
      if (m.type === '-') {
        result.files++;
        result.bytes += m.size;
        result.written.push({ name: m.name, size: m.size });
      }
      opts.onEntry?.(result.entries);
    }),
  );
  try {
    const [decCode, tarCode] = await Promise.all([dec.done, tar.done]);
    if (opts.signal?.aborted) throw new AutopilotError('ABORTED', 'the restore was cancelled');
    if (decCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `${cmd} cannot decompress ${file}: ${lastLines(dec.stderr) || `exit ${decCode}`}`);
    if (tarCode !== 0)
      throw new AutopilotError('ARCHIVE_FAILED', `tar cannot extract ${file} into ${dir}: ${lastLines(tar.stderr) || `exit ${tarCode}`}`);
    return result;
  } finally {
    opts.signal?.removeEventListener('abort', kill);
    kill();
  }
}

/**
 * Whether every regular file tar wrote is there under `dir` with the size it was listed with.
 * Returns the problems (at most `limit`), none when all is well.
 */
export async function checkExtracted(dir: string, written: ExtractResult['written'], limit = 5): Promise<string[]> {
  const problems: string[] = [];
  const base = Buffer.from(dir.endsWith('/') ? dir : dir + '/');
  for (const w of written) {
    if (problems.length >= limit) break;
    const shown = path.join(dir, w.name.toString('utf8'));
    try {
      const st = await fsp.stat(Buffer.concat([base, w.name]));
      if (!st.isFile()) problems.push(`${shown} is not a file`);
      else if (st.size !== w.size) problems.push(`${shown} holds ${st.size} bytes, the archive lists ${w.size}`);
    } catch {
      problems.push(`${shown} is missing`);
    }
  }
  return problems;
}
