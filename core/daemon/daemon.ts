/**
 * The long-running mode: the scheduler of `schedules:`, the in-process services (the monitor)
 * and the HTTP endpoint, over one opened app. reload() (SIGHUP) opens and validates the config
 * again and swaps it in only when it is valid; otherwise the old one stays and
 * config_reload_failed is raised. shutdown() (SIGTERM) stops scheduling and gives running jobs
 * their deadline. No pid file: systemd (or the terminal) tracks the process. Nothing here prints
 * or exits; bin/commands/daemon.ts wires signals to these methods.
 */
import { describeError, AutopilotError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { AutopilotConfig, DaemonConfig } from '../config/types';
import type { NotifyEvent } from '../notify/engine';
import type { StartJob } from './child';
import { realTimerClock, type TimerClock } from './clock';
import { jobMetrics } from './job-metrics';
import { jobsFromConfig, type JobName } from './jobs';
import { Scheduler, type KvLike } from './scheduler';
import { startEndpoint, type Endpoint } from './server';
import { Supervisor, type InProcessService } from './services';

/** What the daemon needs of an opened app (core/app.ts App has it). */
export interface DaemonApp {
  loaded: { file: string; config: AutopilotConfig };
  state: KvLike | null;
  notifier(): { notify(ev: NotifyEvent): Promise<unknown> };
  close(): Promise<void>;
}

export interface DaemonOptions<A extends DaemonApp> {
  logger: Logger;
  clock?: TimerClock;
  /** how a job is started (a child process of the CLI with --config) */
  startJob: StartJob;
  /** opens and validates the config again (for a reload); throws CONFIG_INVALID with file:line details */
  open(): Promise<A>;
  /** the in-process services of an app (the monitor) */
  services?(app: A): InProcessService[];
  /** more for /status */
  status?(app: A): Promise<unknown>;
  /** /metrics; default: the daemon's own job metrics */
  metrics?(app: A, jobs: ReturnType<Scheduler['status']>): Promise<{ contentType: string; body: string }>;
  /** between SIGTERM and SIGKILL (default 30 s) */
  killGraceMs?: number;
}

export class Daemon<A extends DaemonApp> {
  readonly scheduler: Scheduler;
  private readonly supervisor: Supervisor;
  private readonly clock: TimerClock;
  private endpoint: Endpoint | null = null;
  private readonly startedAt: Date;
  private stopping = false;
  private reloading: Promise<boolean> | null = null;

  constructor(
    private app: A,
    private readonly opts: DaemonOptions<A>,
  ) {
    this.clock = opts.clock ?? realTimerClock;
    this.startedAt = this.clock.now();
    const store: KvLike = {
      get: (k, f) => this.app.state?.get(k, f) ?? f,
      set: (k, v) => this.app.state?.set(k, v),
    };
    this.scheduler = new Scheduler({
      clock: this.clock,
      logger: opts.logger,
      startJob: opts.startJob,
      store,
      killGraceMs: opts.killGraceMs,
    });
    this.supervisor = new Supervisor({ clock: this.clock, logger: opts.logger });
  }

  get config(): AutopilotConfig {
    return this.app.loaded.config;
  }

  /** Listens (a port in use is an error, before anything runs), then schedules and starts the services. */
  async start(): Promise<{ endpoint: { host: string; port: number } | null; caughtUp: JobName[] }> {
    this.endpoint = await this.listen(this.config.daemon);
    const s = this.config.schedules;
    const jobs = jobsFromConfig(s);
    const caughtUp = this.scheduler.start(jobs, s.timezone);
    this.supervisor.start(this.opts.services?.(this.app) ?? []);
    this.opts.logger.info(
      `daemon started: ${jobs.map((j) => `${j.name} "${j.cron}"`).join(', ') || 'no jobs scheduled'}${s.timezone ? ` (${s.timezone})` : ''}${
        this.endpoint ? `; endpoint http://${this.config.daemon.listen}:${this.endpoint.port}` : ''
      }`,
    );
    return { endpoint: this.endpoint && { host: this.endpoint.host, port: this.endpoint.port }, caughtUp };
  }

  /** Reads the config again; a reload asked for while one runs waits for it. Resolves true when the new config is in use. */
  reload(): Promise<boolean> {
    if (this.stopping) return Promise.resolve(false);
    this.reloading = (this.reloading ?? Promise.resolve(true)).then(() => this.reloadNow());
    return this.reloading;
  }

  private async reloadNow(): Promise<boolean> {
    if (this.stopping) return false;
    const log = this.opts.logger;
    log.info(`reloading the config from ${this.app.loaded.file}`);
    let next: A;
    try {
      next = await this.opts.open();
    } catch (e) {
      await this.reloadFailed(e);
      return false;
    }
    await this.supervisor.stop();
    const old = this.app;
    const before = old.loaded.config.daemon;
    this.app = next;
    const s = next.loaded.config.schedules;
    this.scheduler.replace(jobsFromConfig(s), s.timezone);
    const d = next.loaded.config.daemon;
    if (d.listen !== before.listen || d.port !== before.port || d.token !== before.token) {
      await this.endpoint?.close();
      this.endpoint = null;
      try {
        this.endpoint = await this.listen(d);
      } catch (e) {
        log.error(`${describeError(e)}; the daemon runs on without its endpoint`);
      }
    }
    this.supervisor.start(this.opts.services?.(next) ?? []);
    await old.close().catch((e: unknown) => log.warn(`closing the previous config's plugins failed: ${describeError(e)}`));
    log.info(
      `config reloaded: ${
        this.scheduler
          .status()
          .map((j) => `${j.name} "${j.cron}"`)
          .join(', ') || 'no jobs scheduled'
      }`,
    );
    return true;
  }

  private async reloadFailed(e: unknown): Promise<void> {
    const details = e instanceof AutopilotError ? e.details : [];
    const text = mask([describeError(e), ...details.map((d) => `  ${d}`)].join('\n'));
    this.opts.logger.error(`the config was not reloaded, the daemon keeps the one it has: ${text}`);
    try {
      await this.app.notifier().notify({
        event: 'config_reload_failed',
        severity: 'warning',
        subject: 'daemon',
        title: 'homelab-autopilot: the changed config was not loaded',
        text: `The daemon keeps running with the config it had. Fix the file and reload again (systemctl reload homelab-autopilot).\n${text}`,
        details: { file: this.app.loaded.file, errors: details.map(mask) },
      });
    } catch (err) {
      this.opts.logger.warn(`config_reload_failed could not be notified: ${describeError(err)}`);
    }
  }

  /** Stops scheduling and the services, gives running jobs daemon.shutdown_timeout, then signals them. */
  async shutdown(): Promise<{ clean: boolean }> {
    this.stopping = true;
    await this.reloading?.catch(() => false);
    this.scheduler.stop();
    await this.supervisor.stop();
    const { clean } = await this.scheduler.drain(this.config.daemon.shutdown_timeout * 1000);
    await this.endpoint?.close();
    this.endpoint = null;
    this.opts.logger.info(`daemon stopped${clean ? '' : ' (a job had to be killed)'}`);
    return { clean };
  }

  /** Closes the app in use (after shutdown). */
  close(): Promise<void> {
    return this.app.close();
  }

  health(): { ok: boolean; text: string } {
    const up = Math.round((this.clock.now().getTime() - this.startedAt.getTime()) / 1000);
    const running = this.scheduler.runningJobs();
    if (this.scheduler.stopped) return { ok: false, text: `stopped: the scheduler is not running (up ${up}s)` };
    return { ok: true, text: `ok: up ${up}s; jobs running: ${running.join(', ') || 'none'}` };
  }

  async status(): Promise<unknown> {
    const now = this.clock.now();
    return {
      daemon: {
        pid: process.pid,
        startedAt: this.startedAt.toISOString(),
        uptimeSeconds: Math.round((now.getTime() - this.startedAt.getTime()) / 1000),
        config: this.app.loaded.file,
        scheduler: this.scheduler.stopped ? 'stopped' : 'running',
        timezone: this.config.schedules.timezone ?? null,
      },
      jobs: this.scheduler.status(),
      services: this.supervisor.status(),
      ...(this.opts.status ? { status: await this.opts.status(this.app) } : {}),
    };
  }

  private listen(d: DaemonConfig): Promise<Endpoint | null> {
    if (d.port === 0) return Promise.resolve(null);
    return startEndpoint({
      listen: d.listen,
      port: d.port,
      token: d.token,
      logger: this.opts.logger,
      health: () => this.health(),
      status: () => this.status(),
      metrics: () => {
        const jobs = this.scheduler.status();
        if (this.opts.metrics) return this.opts.metrics(this.app, jobs);
        const up = (this.clock.now().getTime() - this.startedAt.getTime()) / 1000;
        return Promise.resolve(jobMetrics(jobs, up));
      },
    });
  }
}
