/**
 * Whether code on disk may be trusted before it is loaded (a plugins.d plugin, a cached
 * compiled validator): the checks sudo and sshd make. As root, the file or folder, all that
 * is in it and every folder above it must be owned by root and writable by nobody else;
 * otherwise nothing on the way may be writable by others.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError } from './errors';

/** Whether this process runs as root (and so holds code to root's rules). */
export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Why one file or folder may not be trusted (its owner, its mode), or null. */
export function unsafeReason(file: string, st: fs.Stats, asRoot: boolean): string | null {
  const what = st.isDirectory() ? 'folder' : 'file';
  if (asRoot && st.uid !== 0) return `${what} ${file} is owned by uid ${st.uid}, not root: run chown root:root ${file}`;
  if (asRoot && st.mode & 0o022)
    return `${what} ${file} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): run chmod go-w ${file}`;
  if (!asRoot && st.mode & 0o002)
    return `${what} ${file} is writable by others (mode ${(st.mode & 0o777).toString(8)}): run chmod o-w ${file}`;
  return null;
}

const MAX_CHECKED = 5000;

/** The folders above a path, each of which could swap what is below it. */
function parentProblem(real: string, asRoot: boolean): string | null {
  for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
    const st = fs.statSync(dir);
    // a sticky folder owned by root (like /tmp) lets no one replace another's entries
    const sticky = (st.mode & 0o1000) !== 0 && st.uid === 0;
    if (!sticky) {
      if (asRoot && st.uid !== 0) return `folder ${dir} (above it) is owned by uid ${st.uid}, not root: run chown root:root ${dir}`;
      if ((asRoot ? st.mode & 0o022 : st.mode & 0o002) !== 0)
        return `folder ${dir} (above it) is writable by ${asRoot ? 'group or others' : 'others'}: run chmod ${asRoot ? 'go-w' : 'o-w'} ${dir}`;
    }
    if (dir === path.dirname(dir)) return null;
  }
}

/**
 * The first reason a plugin path may not be trusted: the file or folder (everything in it,
 * following links to what they point to) and every folder above it.
 */
export function checkPermissions(location: string, asRoot: boolean): string | null {
  let real: string;
  try {
    real = fs.realpathSync(location);
  } catch (e) {
    return `cannot check ${location}: ${describeError(e)}`;
  }
  const above = parentProblem(real, asRoot);
  if (above) return above;
  const stack = [real];
  let seen = 0;
  while (stack.length) {
    if (++seen > MAX_CHECKED) return `${location} holds more than ${MAX_CHECKED} files, too many to check: ship the plugin bundled`;
    const p = stack.pop() as string;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
      if (st.isSymbolicLink()) {
        const target = fs.realpathSync(p);
        const why = unsafeReason(target, fs.statSync(target), asRoot) ?? parentProblem(target, asRoot);
        if (why) return `${p} links to ${target}: ${why}`;
        continue;
      }
    } catch (e) {
      return `cannot check ${p}: ${describeError(e)}`;
    }
    const why = unsafeReason(p, st, asRoot);
    if (why) return why;
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) stack.push(path.join(p, n));
  }
  return null;
}
