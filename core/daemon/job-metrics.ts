/**
 * The daemon's own metrics in the Prometheus text format: its jobs and its uptime. The
 * endpoint takes any `metrics()` callback of this shape; core/metrics.ts (prom-client) serves
 * the full set once it is there.
 */
import type { JobStatus } from './scheduler';

export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function jobMetrics(jobs: JobStatus[], uptimeSeconds: number): { contentType: string; body: string } {
  const lines: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, values: [string | null, number | undefined][]): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [job, v] of values)
      if (v !== undefined && Number.isFinite(v)) lines.push(`${name}${job ? `{job="${label(job)}"}` : ''} ${v}`);
  };
  const per = (f: (j: JobStatus) => number | undefined): [string, number | undefined][] => jobs.map((j) => [j.name, f(j)]);
  const time = (iso?: string): number | undefined => (iso ? Date.parse(iso) / 1000 : undefined);
  family('homelab_autopilot_daemon_uptime_seconds', 'gauge', 'seconds since the daemon started', [[null, uptimeSeconds]]);
  family(
    'homelab_autopilot_daemon_job_running',
    'gauge',
    'whether the job runs now',
    per((j) => (j.running ? 1 : 0)),
  );
  family(
    'homelab_autopilot_daemon_job_last_start_timestamp_seconds',
    'gauge',
    'when the last run started',
    per((j) => time(j.last?.start)),
  );
  family(
    'homelab_autopilot_daemon_job_last_end_timestamp_seconds',
    'gauge',
    'when the last run ended',
    per((j) => time(j.last?.end)),
  );
  family(
    'homelab_autopilot_daemon_job_last_duration_seconds',
    'gauge',
    'how long the last run took',
    per((j) => (j.last?.durationMs ?? NaN) / 1000),
  );
  family(
    'homelab_autopilot_daemon_job_last_exit_code',
    'gauge',
    'exit code of the last run (-1: ended by a signal)',
    per((j) => (j.last?.end ? (j.last.exitCode ?? -1) : undefined)),
  );
  family(
    'homelab_autopilot_daemon_job_next_run_timestamp_seconds',
    'gauge',
    'when the job runs next',
    per((j) => time(j.nextRun ?? undefined)),
  );
  family(
    'homelab_autopilot_daemon_job_runs_total',
    'counter',
    'runs started by this daemon',
    per((j) => j.runs),
  );
  family(
    'homelab_autopilot_daemon_job_failures_total',
    'counter',
    'runs that did not exit 0',
    per((j) => j.failures),
  );
  family(
    'homelab_autopilot_daemon_job_skipped_total',
    'counter',
    'runs skipped because the previous one still ran',
    per((j) => j.skipped),
  );
  return { contentType: PROMETHEUS_TEXT, body: lines.join('\n') + '\n' };
}
