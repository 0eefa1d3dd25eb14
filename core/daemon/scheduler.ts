/**
 * The daemon's scheduler: one timer, armed for the earliest next run of all jobs (no polling);
 * each job a child process of the CLI (child.ts). A job still running when it is due again is
 * skipped, not queued. A job's `timeout` ends it (SIGTERM, then SIGKILL after a grace). The
 * start of each run is kept in state (`daemon.lastRun.<job>`), so that a run missed while the
 * daemon was down runs once at start (catch_up). Nothing here prints or exits.
 */
import type { Logger } from '../../lib/log';
import type { JobEnd, JobProcess, StartJob } from './child';
import type { TimerClock } from './clock';
import { nextRun, parseCron, previousRun, type CronSchedule } from './cron-time';
import type { JobName, JobSpec } from './jobs';

export interface KvLike {
  get<T = unknown>(key: string, fallback?: T): T | undefined;
  set(key: string, value: unknown): void;
}

export interface LastRun {
  start: string;
  end?: string;
  exitCode?: number | null;
  signal?: string | null;
  durationMs?: number;
  error?: string;
  /** the deadline or the daemon's stop ended it */
  stoppedBy?: 'timeout' | 'shutdown';
}

export interface JobStatus {
  name: JobName;
  cron: string;
  argv: string[];
  running: boolean;
  pid?: number;
  nextRun: string | null;
  last: LastRun | null;
  runs: number;
  failures: number;
  skipped: number;
}

export interface SchedulerOptions {
  clock: TimerClock;
  logger: Logger;
  startJob: StartJob;
  /** where the last start of each job is kept (state's kv); null: nowhere, no catch-up */
  store: KvLike | null;
  /** between SIGTERM and SIGKILL (a job's time-out, the daemon's stop); default 30 s */
  killGraceMs?: number;
  onJobEnd?(status: JobStatus): void;
}

interface Running {
  proc: JobProcess;
  started: Date;
  record: LastRun;
  cancelTimers: (() => void)[];
}

interface JobState {
  spec: JobSpec;
  schedule: CronSchedule;
  next: Date | null;
  running: Running | null;
  last: LastRun | null;
  runs: number;
  failures: number;
  skipped: number;
}

export const lastRunKey = (job: string): string => `daemon.lastRun.${job}`;
const lastResultKey = (job: string): string => `daemon.lastResult.${job}`;

/**
 * The run to catch up at start: the last time the expression fired before now, when it is
 * after the last recorded start (and within one period of now, so at most one run). Null
 * when nothing was missed, or when the job never ran under the daemon (a first start is not a
 * missed run).
 */
export function missedRun(schedule: CronSchedule, lastStart: Date | undefined, now: Date): Date | null {
  if (!lastStart) return null;
  const prev = previousRun(schedule, now);
  if (!prev || prev.getTime() <= lastStart.getTime()) return null;
  const after = nextRun(schedule, prev);
  if (after && now.getTime() - prev.getTime() >= after.getTime() - prev.getTime()) return null;
  return prev;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export class Scheduler {
  private jobs = new Map<JobName, JobState>();
  /** runs of jobs that a reload removed, still going */
  private retired = new Set<Running>();
  private cancelTimer: (() => void) | null = null;
  private isStopped = true;
  private readonly grace: number;

  constructor(private readonly opts: SchedulerOptions) {
    this.grace = opts.killGraceMs ?? 30_000;
  }

  get stopped(): boolean {
    return this.isStopped;
  }

  /** Starts scheduling; runs missed runs once (catch_up). Returns the jobs caught up. */
  start(specs: JobSpec[], timezone?: string): JobName[] {
    this.isStopped = false;
    this.install(specs, timezone);
    const now = this.opts.clock.now();
    const caught: JobName[] = [];
    for (const j of this.jobs.values()) {
      if (!j.spec.catchUp || !this.opts.store) continue;
      const raw = this.opts.store.get<string>(lastRunKey(j.spec.name));
      const missed = missedRun(j.schedule, raw ? new Date(raw) : undefined, now);
      if (!missed) continue;
      this.opts.logger.info(
        `job ${j.spec.name}: the run due at ${missed.toISOString()} was missed while the daemon was down; running it now`,
      );
      if (this.run(j, 'catch-up')) caught.push(j.spec.name);
    }
    this.arm();
    return caught;
  }

  /** New schedules (a reload): running jobs go on; a job that is no longer scheduled still ends on its own. */
  replace(specs: JobSpec[], timezone?: string): void {
    const old = this.jobs;
    this.install(specs, timezone);
    for (const [name, o] of old) {
      const n = this.jobs.get(name);
      if (n) Object.assign(n, { running: o.running, last: o.last, runs: o.runs, failures: o.failures, skipped: o.skipped });
      else if (o.running) this.retired.add(o.running);
    }
    this.arm();
  }

  /** Stops scheduling (running jobs go on; drain() waits for them). */
  stop(): void {
    this.isStopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    for (const j of this.jobs.values()) j.next = null;
  }

  status(): JobStatus[] {
    return [...this.jobs.values()].map((j) => ({
      name: j.spec.name,
      cron: j.spec.cron,
      argv: j.spec.argv,
      running: Boolean(j.running),
      pid: j.running?.proc.pid,
      nextRun: j.next?.toISOString() ?? null,
      last: j.running?.record ?? j.last ?? this.opts.store?.get<LastRun>(lastResultKey(j.spec.name)) ?? null,
      runs: j.runs,
      failures: j.failures,
      skipped: j.skipped,
    }));
  }

  runningJobs(): JobName[] {
    return [...this.jobs.values()].filter((j) => j.running).map((j) => j.spec.name);
  }

  /** Runs a job now, unless it is running already (then the run is skipped and logged). */
  runNow(name: JobName): boolean {
    const j = this.jobs.get(name);
    return j ? this.run(j, 'by hand') : false;
  }

  /**
   * After stop(): gives running jobs `deadlineMs`, then SIGTERM (an update rolls back), then
   * SIGKILL after the grace. Resolves when every job has ended; `clean` is false when one had
   * to be killed.
   */
  async drain(deadlineMs: number): Promise<{ clean: boolean; signalled: string[] }> {
    const all = [...[...this.jobs.values()].map((j) => j.running), ...this.retired].filter((r): r is Running => Boolean(r));
    if (!all.length) return { clean: true, signalled: [] };
    const names = (rs: Running[]): string => rs.map((r) => r.record.start).join(', ');
    const still = (): Running[] => all.filter((r) => r.record.end === undefined);
    this.opts.logger.info(`waiting up to ${seconds(deadlineMs)} for ${all.length} running job(s) to end`);
    await this.waitFor(all, deadlineMs);
    const signalled: string[] = [];
    if (still().length) {
      for (const r of still()) {
        r.record.stoppedBy = 'shutdown';
        signalled.push(r.record.start);
        r.proc.kill('SIGTERM');
      }
      this.opts.logger.warn(`jobs still running after the shutdown deadline were sent SIGTERM (started ${names(still())})`);
      await this.waitFor(all, this.grace);
    }
    const killed = still();
    for (const r of killed) r.proc.kill('SIGKILL');
    if (killed.length)
      this.opts.logger.error(`jobs still running ${seconds(this.grace)} after SIGTERM were killed (started ${names(killed)})`);
    await Promise.all(all.map((r) => r.proc.done));
    return { clean: killed.length === 0, signalled };
  }

  private waitFor(runs: Running[], ms: number): Promise<void> {
    return new Promise((resolve) => {
      const cancel = this.opts.clock.setTimer(ms, resolve);
      void Promise.all(runs.map((r) => r.proc.done)).then(() => {
        cancel();
        resolve();
      });
    });
  }

  private install(specs: JobSpec[], timezone?: string): void {
    const now = this.opts.clock.now();
    this.jobs = new Map();
    for (const spec of specs) {
      const schedule = parseCron(spec.cron, timezone);
      this.jobs.set(spec.name, {
        spec,
        schedule,
        next: nextRun(schedule, now),
        running: null,
        last: null,
        runs: 0,
        failures: 0,
        skipped: 0,
      });
    }
  }

  /** One timer, for the earliest due job; when it fires, every job due runs and the timer is armed again. */
  private arm(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    if (this.isStopped) return;
    const next = Math.min(...[...this.jobs.values()].map((j) => j.next?.getTime() ?? Infinity));
    if (!Number.isFinite(next)) return;
    this.cancelTimer = this.opts.clock.setTimer(Math.max(0, next - this.opts.clock.now().getTime()), () => this.fire());
  }

  private fire(): void {
    this.cancelTimer = null;
    const now = this.opts.clock.now();
    for (const j of this.jobs.values()) {
      if (!j.next || j.next.getTime() > now.getTime()) continue;
      // from the later of the due time and now: the next time is always later than the last
      j.next = nextRun(j.schedule, new Date(Math.max(now.getTime(), j.next.getTime())));
      this.run(j, 'schedule');
    }
    this.arm();
  }

  private run(j: JobState, why: string): boolean {
    const name = j.spec.name;
    const log = this.opts.logger;
    if (j.running) {
      j.skipped++;
      log.warn(
        `job ${name}: skipped the ${why} run: the run started at ${j.running.record.start} (pid ${j.running.proc.pid ?? '?'}) is still going`,
      );
      return false;
    }
    const started = this.opts.clock.now();
    const record: LastRun = { start: started.toISOString() };
    const out = log.child(`job:${name}`);
    let proc: JobProcess;
    try {
      proc = this.opts.startJob(j.spec.argv, (stream, line) => (stream === 'stderr' ? out.warn(line) : out.info(line)));
    } catch (e) {
      proc = { kill: () => {}, done: Promise.resolve({ code: null, signal: null, error: (e as Error).message }) };
    }
    const running: Running = { proc, started, record, cancelTimers: [] };
    j.running = running;
    j.runs++;
    this.keep(lastRunKey(name), record.start);
    log.info(`job ${name} started (${why}, pid ${proc.pid ?? '?'}): ${j.spec.argv.join(' ')}`);
    if (j.spec.timeoutMs !== undefined)
      running.cancelTimers.push(this.opts.clock.setTimer(j.spec.timeoutMs, () => this.timeout(j, running)));
    void proc.done.then((end) => this.ended(j, running, end));
    return true;
  }

  private timeout(j: JobState, r: Running): void {
    r.record.stoppedBy = 'timeout';
    this.opts.logger.warn(`job ${j.spec.name}: still running after its timeout of ${seconds(j.spec.timeoutMs ?? 0)}: sending SIGTERM`);
    r.proc.kill('SIGTERM');
    r.cancelTimers.push(
      this.opts.clock.setTimer(this.grace, () => {
        this.opts.logger.error(`job ${j.spec.name}: still running ${seconds(this.grace)} after SIGTERM: sending SIGKILL`);
        r.proc.kill('SIGKILL');
      }),
    );
  }

  private ended(j: JobState, r: Running, end: JobEnd): void {
    for (const c of r.cancelTimers) c();
    const now = this.opts.clock.now();
    Object.assign(r.record, {
      end: now.toISOString(),
      exitCode: end.code,
      signal: end.signal,
      durationMs: now.getTime() - r.started.getTime(),
      ...(end.error ? { error: end.error } : {}),
    });
    const ok = end.code === 0;
    if (!ok) j.failures++;
    const how = end.error
      ? `could not start: ${end.error}`
      : end.signal
        ? `killed by ${end.signal}`
        : `exit ${end.code}${end.code === 75 ? ' (another run of the job holds its lock)' : ''}`;
    const line = `job ${j.spec.name} ended: ${how} after ${seconds(r.record.durationMs ?? 0)}${r.record.stoppedBy ? ` (stopped by the ${r.record.stoppedBy})` : ''}`;
    if (ok) this.opts.logger.info(line);
    else this.opts.logger.warn(line);
    this.retired.delete(r);
    if (j.running === r) {
      j.running = null;
      j.last = r.record;
    }
    this.keep(lastResultKey(j.spec.name), r.record);
    const status = this.status().find((s) => s.name === j.spec.name);
    if (status) this.opts.onJobEnd?.(status);
  }

  /** State is shared with the jobs' own processes: a write that fails is logged, never fatal. */
  private keep(key: string, value: unknown): void {
    try {
      this.opts.store?.set(key, value);
    } catch (e) {
      this.opts.logger.warn(`${key} could not be kept in state: ${(e as Error).message}`);
    }
  }
}
