/**
 * The monitor as one of the daemon's in-process services (core/daemon/services.ts): the
 * engine's loop runs for the daemon's life. Every default interval it counts as one pass of
 * the `monitor` job: the dead-man switch of schedules.monitor is pinged (start, then success,
 * or fail while something is DOWN) and the metrics textfile is rewritten, as a `monitor` run
 * from cron would.
 */
import type { App } from '../app';
import type { InProcessService } from '../daemon/services';
import { beginJob } from '../metrics/job';
import { durationSeconds } from '../../lib/duration';
import { monitorSchedule } from './schedule';

export function monitorService(app: App): InProcessService | null {
  const wanted = monitorSchedule(app.loaded.config.schedules);
  if (!wanted) return null;
  return {
    name: 'monitor',
    async run(signal: AbortSignal): Promise<void> {
      const engine = app.monitorEngine({ defaultInterval: wanted.interval ?? undefined });
      const config = app.loaded.config;
      const periodMs = (wanted.interval ?? durationSeconds(config.monitoring.interval)) * 1000;
      const deps = { config, state: app.state, logger: app.logger };
      let job = beginJob(deps, 'monitor');
      let since = new Date();
      const timer = setInterval(() => {
        const down = [
          ...new Set(
            engine
              .reports()
              .filter((c) => (c.state === 'DOWN' || c.state === 'FLAPPING') && !c.unreachableVia)
              .map((c) => c.subject),
          ),
        ];
        engine.notePass(since, down);
        since = new Date();
        void job.finish(down.length ? 1 : 0);
        job = beginJob(deps, 'monitor');
      }, periodMs);
      try {
        await engine.loop(signal);
      } finally {
        clearInterval(timer);
      }
    },
  };
}
