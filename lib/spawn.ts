/**
 * Child processes of the archive pipeline: started without a shell, their stderr kept (the
 * last lines go into error messages), a missing program named with the package to install,
 * and (where util-linux's setpriv is there) tied to our process so that the kernel ends them
 * with us, even on SIGKILL.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutopilotError } from './errors';

export interface Proc {
  child: ChildProcess;
  name: string;
  stderr: string;
  done: Promise<number | null>;
}

export function notInstalled(name: string): AutopilotError {
  return new AutopilotError('ARCHIVE_FAILED', `${name} is not installed`, { hint: `install ${name} (apt-get install ${name})` });
}

export function track(child: ChildProcess, name: string, tied = false): Proc {
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
export function setpriv(): string | null {
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
export function spawnTied(cmd: string, args: string[], options: SpawnOptions): Proc {
  const sp = setpriv();
  if (!sp) return track(spawn(cmd, args, options), cmd);
  return track(spawn(sp, ['--pdeathsig', 'KILL', '--', cmd, ...args], options), cmd, true);
}

export function lastLines(s: string, n = 4): string {
  return s
    .trim()
    .split('\n')
    .filter((l) => l && !/Removing leading/.test(l))
    .slice(-n)
    .join(' | ');
}
