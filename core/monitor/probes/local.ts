/**
 * Probes that look at this host or its plugins: a command (run without a shell, its exit code),
 * `running` (the service's plugin says whether it runs) and backup freshness (the newest backup
 * with verification 'ok' recorded in state, against max_age).
 */
import { execFile, splitCommandLine } from '../../../lib/exec';
import { durationSeconds, formatDuration } from '../../../lib/duration';
import { stampText } from '../../../lib/time';
import type { HealthCheck } from '../../health/checks';
import type { Probe, ProbeDeps } from '../types';
import { ProbeFailure, runProbe } from './run';

export type CommandCheck = Extract<HealthCheck, { type: 'command' }>;
export type BackupCheck = Extract<HealthCheck, { type: 'backup' }>;

export function commandProbe(c: CommandCheck): Probe {
  return (env) =>
    runProbe(env, async (signal) => {
      const argv = Array.isArray(c.command) ? c.command : splitCommandLine(c.command);
      if (!argv.length || !argv[0]) throw new ProbeFailure('the command is empty');
      const r = await execFile(argv[0], argv.slice(1), { timeoutMs: env.timeoutMs, signal });
      const want = c.expect_exit ?? 0;
      if (r.code !== want) {
        const err = r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` : '';
        throw new ProbeFailure(`exit ${r.code ?? r.signal}, expected ${want}${err}`);
      }
      return { detail: `exit ${r.code}` };
    });
}

export function runningProbe(deps: ProbeDeps): Probe {
  return (env) =>
    runProbe(env, async (signal) => {
      if (!deps.running) throw new ProbeFailure('this service type cannot tell whether it runs');
      if (!(await deps.running(signal))) throw new ProbeFailure('not running');
      return { detail: 'running' };
    });
}

export function backupProbe(c: BackupCheck, deps: ProbeDeps): Probe {
  const maxAge = durationSeconds(c.max_age);
  const service = deps.service?.name ?? deps.subject;
  return (env) =>
    runProbe(env, async () => {
      if (!service) throw new ProbeFailure('a backup check needs the service it belongs to');
      if (!env.state) throw new ProbeFailure('backup freshness needs the state database, which is not open');
      const all = env.state.listArtifacts({ service });
      const newest = all.find((a) => a.verifyStatus === 'ok');
      if (!newest) {
        const other = all[0];
        const why = other ? `; the newest, of ${stampText(new Date(other.createdAt))}, is ${other.verifyStatus ?? 'not verified'}` : '';
        throw new ProbeFailure(`no verified backup of ${service}${why}`);
      }
      const made = new Date(newest.createdAt);
      const age = Math.max(0, (env.now().getTime() - made.getTime()) / 1000);
      const hours = Math.round((age / 3600) * 100) / 100;
      const what = `newest verified backup ${formatDuration(age)} old (${stampText(made)}, ${newest.destination})`;
      if (age > maxAge) throw new ProbeFailure(`${what}: older than ${formatDuration(maxAge)}`, hours);
      return { detail: what, value: hours };
    });
}
