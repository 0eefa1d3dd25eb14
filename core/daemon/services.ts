/**
 * In-process services that live as long as the daemon (the monitor engine's loop): each is
 * given an AbortSignal, restarted with a growing back-off when it throws or returns, and
 * stopped when the daemon stops or reloads.
 */
import type { Logger } from '../../lib/log';
import { waitOn, type TimerClock } from './clock';

export interface InProcessService {
  name: string;
  run(signal: AbortSignal): Promise<void>;
}

export interface SupervisorOptions {
  clock: TimerClock;
  logger: Logger;
  /** the first back-off, doubled after each failure up to maxBackoffMs (defaults 1 s and 5 min) */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** a service that ran this long before failing starts again from the first back-off (default 10 min) */
  healthyAfterMs?: number;
}

export interface ServiceStatus {
  name: string;
  running: boolean;
  restarts: number;
  lastError?: string;
}

interface Supervised {
  service: InProcessService;
  status: ServiceStatus;
  done: Promise<void>;
}

export class Supervisor {
  private controller = new AbortController();
  private running: Supervised[] = [];

  constructor(private readonly opts: SupervisorOptions) {}

  start(services: InProcessService[]): void {
    this.controller = new AbortController();
    const signal = this.controller.signal;
    this.running = services.map((service) => {
      const s: Supervised = { service, status: { name: service.name, running: true, restarts: 0 }, done: Promise.resolve() };
      s.done = this.keep(s, signal);
      return s;
    });
  }

  status(): ServiceStatus[] {
    return this.running.map((s) => ({ ...s.status }));
  }

  /** Aborts every service and waits for them to return (at most `graceMs`; one that ignores its signal is left behind, and logged). */
  async stop(graceMs = 10_000): Promise<void> {
    this.controller.abort();
    const all = this.running;
    this.running = [];
    let returned = false;
    const stopGrace = new AbortController();
    await Promise.race([
      Promise.all(all.map((s) => s.done)).then(() => (returned = true)),
      waitOn(this.opts.clock, graceMs, stopGrace.signal),
    ]);
    stopGrace.abort();
    if (!returned)
      this.opts.logger.warn(
        `service(s) ${all
          .filter((s) => s.status.running)
          .map((s) => s.service.name)
          .join(', ')} did not stop within ${Math.round(graceMs / 1000)}s`,
      );
  }

  private async keep(s: Supervised, signal: AbortSignal): Promise<void> {
    const { clock, logger } = this.opts;
    const first = this.opts.backoffMs ?? 1000;
    let backoff = first;
    while (!signal.aborted) {
      const started = clock.now().getTime();
      let why: string;
      try {
        await s.service.run(signal);
        why = 'returned';
      } catch (e) {
        why = `failed: ${(e as Error)?.message ?? String(e)}`;
      }
      if (signal.aborted) break;
      if (clock.now().getTime() - started >= (this.opts.healthyAfterMs ?? 600_000)) backoff = first;
      s.status.lastError = why;
      s.status.restarts++;
      logger.error(`service ${s.service.name} ${why}; starting it again in ${Math.round(backoff / 1000)}s`);
      await waitOn(clock, backoff, signal);
      backoff = Math.min(backoff * 2, this.opts.maxBackoffMs ?? 300_000);
    }
    s.status.running = false;
  }
}
