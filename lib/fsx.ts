/**
 * File system helpers for the folders backups and state are written to: creating a folder one
 * level at a time (Node's recursive mkdir loops for ever, at full CPU and deaf to signals, when
 * a parent is /proc, and says "no such file or directory" on a read-only file system), refusing
 * the kernel's pseudo file systems, telling a mounted file system from a folder on its parent's,
 * and one message (with a hint) for the errors a full or read-only disk gives.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutopilotError } from './errors';

/** The kernel's pseudo file systems: nothing of ours is written under them. */
export const PSEUDO_ROOTS = ['/proc', '/sys', '/dev'];

/** The pseudo file system root `p` lies under (after resolving `.` and `..`), or null. */
export function pseudoRootOf(p: string): string | null {
  const abs = path.resolve(p);
  return PSEUDO_ROOTS.find((r) => abs === r || abs.startsWith(`${r}/`)) ?? null;
}

function refusePseudo(dir: string): void {
  const root = pseudoRootOf(dir);
  if (root)
    throw new AutopilotError('USAGE', `${dir} is under ${root}, a file system of the kernel: nothing can be stored there`, {
      hint: 'point the setting at a folder on a disk',
    });
}

/**
 * Creates `dir` and its missing parents, one level at a time (bounded: at most one mkdir per
 * path component). Errors are the real ones (EROFS, EACCES, ENOSPC), explained by writeError.
 */
export function makeDirSync(dir: string, mode = 0o755): void {
  const abs = path.resolve(dir);
  refusePseudo(abs);
  const missing: string[] = [];
  for (let d = abs; ; d = path.dirname(d)) {
    if (fs.existsSync(d)) break;
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw writeError(e, d);
    }
  }
  if (!fs.statSync(abs).isDirectory()) throw new AutopilotError('ARCHIVE_FAILED', `${abs} is not a folder`);
}

export async function makeDir(dir: string, mode = 0o755): Promise<void> {
  makeDirSync(dir, mode);
}

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** Whether an error (or the stderr of a program) says the disk is full. */
export function isDiskFull(e: unknown, stderr = ''): boolean {
  return (
    code(e) === 'ENOSPC' ||
    code(e) === 'EDQUOT' ||
    /No space left on device|Disk quota exceeded/i.test(`${stderr} ${(e as Error)?.message ?? ''}`)
  );
}

/**
 * A write to `where` failed: a full disk, a read-only file system and a missing permission get
 * their own message and hint; anything else is returned as it is (an AutopilotError is kept).
 */
export function writeError(e: unknown, where: string): Error {
  if (e instanceof AutopilotError) return e;
  const c = code(e);
  if (isDiskFull(e))
    return new AutopilotError('ARCHIVE_FAILED', `no space left on device: the disk of ${where} is full`, {
      hint: 'free space there (older archives, other files), or lower the keep-* retention or point the setting at a bigger disk',
      cause: e,
    });
  if (c === 'EROFS')
    return new AutopilotError('ARCHIVE_FAILED', `cannot write to ${where}: its file system is mounted read-only`, {
      hint: 'remount it read-write (it may have gone read-only after disk errors: check dmesg), or point the setting at another folder',
      cause: e,
    });
  if (c === 'EACCES' || c === 'EPERM')
    return new AutopilotError('ARCHIVE_FAILED', `cannot write to ${where}: permission denied`, {
      hint: 'give this user write access to the folder (or run as root), or point the setting at another folder',
      cause: e,
    });
  return e instanceof Error ? e : new Error(String(e));
}

/** Undoes the octal escapes of /proc/self/mountinfo (a space is \040). */
const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The mount points of this process's mount namespace (empty where /proc/self/mountinfo cannot be read). */
export function mountPoints(): Set<string> {
  try {
    return new Set(
      fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => unescapeMount(l.split(' ')[4])),
    );
  } catch {
    return new Set();
  }
}

/**
 * Whether `dir` is the root of a mounted file system of its own: it is a mount point in
 * /proc/self/mountinfo (bind mounts too), or its device differs from its parent's.
 */
export function isMountPoint(dir: string): boolean {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch {
    return false;
  }
  if (real === '/') return true;
  if (mountPoints().has(real)) return true;
  try {
    return fs.statSync(real).dev !== fs.statSync(path.dirname(real)).dev;
  } catch {
    return false;
  }
}

/** Refuses a folder set with `require_mount: true` that is not a mounted file system (an unmounted disk). */
export function assertMounted(dir: string, setting: string): void {
  if (isMountPoint(dir)) return;
  throw new AutopilotError(
    'ARCHIVE_FAILED',
    `${dir} is not a mounted file system (require_mount is set for ${setting}): nothing was written`,
    {
      hint: `mount the disk at ${dir} (check /etc/fstab and dmesg), or remove require_mount`,
    },
  );
}

/** Whether `file` lies inside `dir` (after resolving both; the folder itself is not inside). */
export function isInside(file: string, dir: string): boolean {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}
