/**
 * What every job (backup, update, monitor, restore-test) does around its work, from cron or
 * the daemon alike: it pings its dead-man switch (`schedules.<job>.ping_url`) when it starts,
 * and at its end pings success or failure with its exit code and rewrites the metrics
 * textfile (`metrics.textfile`). Neither can fail the job: a problem is a warning.
 */
import { randomUUID } from 'node:crypto';
import { ping, type PingResult } from '../../lib/deadman';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import { writeTextfile } from '../../lib/textfile';
import type { AutopilotConfig, SchedulesConfig } from '../config/types';
import { collectMetrics } from './collect';

/** The jobs of `schedules:`. */
export type JobKind = 'backup' | 'update' | 'monitor' | 'restore_test';

export interface JobDeps {
  config: Pick<AutopilotConfig, 'backup' | 'monitoring' | 'schedules' | 'metrics'>;
  state: StateManager | null;
  logger: Logger;
}

export interface JobOptions {
  /** false: no dead-man pings (`--no-ping`, a run by hand) */
  ping?: boolean;
  /** false: leave the textfile alone (default: write it when metrics.textfile is set) */
  textfile?: boolean;
  /** each ping's whole budget, tries included (default 10 s) */
  pingTimeoutMs?: number;
  /** tries after the first (default 2) */
  pingRetries?: number;
}

export interface JobHooks {
  /** the ping URL in use (undefined: none); a secret, never to be printed */
  readonly pingUrl: string | undefined;
  /** The job ended with this exit code: the end ping and the textfile. Never throws; only the first call counts. */
  finish(exitCode: number): Promise<JobEnd>;
}

export interface JobEnd {
  /** the start ping's and the end ping's results (null: none sent) */
  start: PingResult | null;
  end: PingResult | null;
  /** whether the textfile was written (null: not configured) */
  textfile: boolean | null;
}

/** The dead-man URL of a job, when its schedule has one. */
export function pingUrlOf(schedules: SchedulesConfig | undefined, kind: JobKind): string | undefined {
  const s = schedules?.[kind];
  if (!s || typeof s !== 'object') return undefined;
  return typeof s.ping_url === 'string' && s.ping_url ? s.ping_url : undefined;
}

/** Rewrites metrics.textfile (when set) from state. A failure is a warning; returns whether it was written. */
export async function writeMetricsTextfile(deps: JobDeps): Promise<boolean | null> {
  const file = deps.config.metrics?.textfile;
  if (!file) return null;
  try {
    const { body } = await collectMetrics({ config: deps.config, state: deps.state });
    await writeTextfile(file, body);
    deps.logger.debug(`metrics written to ${file}`);
    return true;
  } catch (e) {
    deps.logger.warn(`could not write the metrics textfile ${file}: ${mask((e as Error).message)} (the job's result is not affected)`);
    return false;
  }
}

/**
 * A job begins: its start ping is sent now, in the background (the work does not wait for
 * it); finish() waits for it before the end ping, so that the switch sees them in order.
 */
export function beginJob(deps: JobDeps, kind: JobKind, opts: JobOptions = {}): JobHooks {
  const url = opts.ping === false ? undefined : pingUrlOf(deps.config.schedules, kind);
  const logger = deps.logger;
  const startedAt = Date.now();
  const runId = randomUUID();
  const pingOpts = { runId, logger, timeoutMs: opts.pingTimeoutMs, retries: opts.pingRetries };
  const started: Promise<PingResult | null> = url ? ping(url, 'start', pingOpts) : Promise.resolve(null);
  let finished: Promise<JobEnd> | null = null;
  const finish = async (exitCode: number): Promise<JobEnd> => {
    const textfile = opts.textfile === false ? null : await writeMetricsTextfile(deps);
    const start = await started;
    const end = url
      ? await ping(url, exitCode === 0 ? 'success' : 'fail', { ...pingOpts, exitCode, durationMs: Date.now() - startedAt })
      : null;
    return { start, end, textfile };
  };
  return {
    pingUrl: url,
    finish(exitCode: number): Promise<JobEnd> {
      finished ??= finish(exitCode).catch((e: unknown) => {
        logger.warn(`after the job: ${mask((e as Error).message)} (the job's result is not affected)`);
        return { start: null, end: null, textfile: null };
      });
      return finished;
    },
  };
}
