/**
 * Whether a process still runs, judged by its PID and its start time, so that a PID the
 * kernel has since given to another process is not mistaken for the one we knew.
 */
import * as fs from 'node:fs';

/** The start time of a process (field 22 of /proc/PID/stat), or null where /proc cannot tell. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from its closing one
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether `pid` exists and, when `startTime` is known, is still the process that started then. */
export function processAlive(pid: number, startTime: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists but belongs to someone else
  }
  if (startTime) {
    const current = processStartTime(pid);
    if (current !== null && current !== startTime) return false;
  }
  return true;
}
