import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { PassReport } from '../../core/monitor/types';
import { AutopilotError, EXIT } from '../../lib/errors';
import { BaseCommand, jobFlags } from '../base';
import { formatDuration, table } from '../render';

export default class Monitor extends BaseCommand<typeof Monitor> {
  protected static override lightStateCheck = true;
  // from cron its state changes would otherwise go nowhere: they are kept in the log file
  protected static override writesLogFile = true;
  static override summary = 'Run every health check once (for cron): a table per service and check.';
  static override description = `Runs the checks of every enabled service and monitoring target, their external URLs and the resources (backup disks, memory, load, hypervisor nodes), at most monitoring.concurrency at once, each under its own timeout. Each result moves its check's state (failure_threshold failures in a row make it DOWN); alerts go out once per incident through the notification channels; none for a service in maintenance, nor for a service whose dependency is down (then only its external, backup and certificate checks still alert).

Exit codes: 0 nothing DOWN, 1 something DOWN or FLAPPING, 2 bad usage or config, 75 another monitor run (or the daemon) holds the monitor lock.`;
  static override examples = ['<%= config.bin %> monitor', '<%= config.bin %> monitor nextcloud --json'];
  static override strict = false;
  static override args = { service: Args.string({ description: 'only these services or targets' }) };
  static override flags = {
    ...jobFlags,
    'lock-wait': Flags.integer({ min: 0, summary: 'Seconds to wait when another monitor run holds the lock (default: global.lock_wait).' }),
  };

  async run(): Promise<PassReport> {
    const { argv, flags } = await this.parse(Monitor);
    const app = await this.openApp('rw');
    const engine = app.monitorEngine();
    const names = argv as string[];
    // a whole pass is the scheduled job (its dead-man ping, the metrics textfile); one service checked by hand is not
    if (!names.length) this.beginJob('monitor', app);
    await engine.prepare(this.controller.signal);
    const subjects = new Set(engine.specs.map((s) => s.subject));
    const unknown = names.filter((n) => !subjects.has(n));
    if (unknown.length)
      throw new AutopilotError('USAGE', `nothing to check for ${unknown.join(', ')}`, {
        hint: subjects.size
          ? `services and targets with checks: ${[...subjects].join(', ')}`
          : 'no service or target has health_checks, external or resources: see docs/monitoring.md',
      });
    const report = await engine.pass({
      subjects: names,
      signal: this.controller.signal,
      lockWaitMs: (flags['lock-wait'] ?? app.loaded.config.global.lock_wait) * 1000,
    });
    const rows = report.checks.map((c) => [
      c.subject,
      c.label,
      c.unreachableVia ? `${c.state} (unreachable: ${c.unreachableVia} down)` : c.state,
      c.durationMs === null ? '-' : formatDuration(c.durationMs),
      [c.detail ?? '', c.warning ? `WARNING: ${c.warning}` : '', c.maintenance ?? ''].filter(Boolean).join('; '),
    ]);
    if (!rows.length) this.out('no checks configured: add health_checks to services (docs/monitoring.md)');
    else this.out(table(['SERVICE', 'CHECK', 'STATE', 'TIME', 'DETAIL'], rows));
    if (report.down.length) process.exitCode = EXIT.JOB_FAILED;
    return report;
  }
}
