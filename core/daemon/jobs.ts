/**
 * The jobs of `schedules:`: each one a run of this same CLI (`backup --all`, `update --all
 * --yes`, `restore-test --all` unless `args` say otherwise) at the times of its cron expression.
 */
import { durationSeconds } from '../../lib/duration';
import type { JobScheduleConfig, SchedulesConfig } from '../config/types';

export type JobName = 'backup' | 'update' | 'restore_test';

export interface JobSpec {
  name: JobName;
  cron: string;
  /** the CLI's arguments: the command and its own (the daemon adds --config) */
  argv: string[];
  /** stopped (SIGTERM, then SIGKILL) past this; undefined: no limit */
  timeoutMs?: number;
  catchUp: boolean;
}

/** update without a terminal asks for --yes: the daemon's run is the owner's standing yes. */
const DEFAULTS: Record<JobName, { command: string; args: string[] }> = {
  backup: { command: 'backup', args: ['--all'] },
  update: { command: 'update', args: ['--all', '--yes'] },
  restore_test: { command: 'restore-test', args: ['--all'] },
};

export const JOB_NAMES = Object.keys(DEFAULTS) as JobName[];

/** The enabled jobs of the section, in a fixed order. */
export function jobsFromConfig(s: SchedulesConfig): JobSpec[] {
  const out: JobSpec[] = [];
  for (const name of JOB_NAMES) {
    const raw = s[name];
    if (raw === undefined) continue;
    const c: JobScheduleConfig = typeof raw === 'string' ? { cron: raw } : raw;
    if (c.enabled === false || !c.cron) continue;
    const d = DEFAULTS[name];
    out.push({
      name,
      cron: c.cron,
      argv: [d.command, ...(c.args ?? d.args)],
      timeoutMs: c.timeout === undefined ? undefined : durationSeconds(c.timeout) * 1000,
      catchUp: c.catch_up ?? s.catch_up ?? true,
    });
  }
  return out;
}
