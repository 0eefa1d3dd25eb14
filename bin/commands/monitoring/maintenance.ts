import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { durationSeconds } from '../../../lib/duration';
import { AutopilotError } from '../../../lib/errors';
import type { MaintenanceRow } from '../../../lib/state';
import { BaseCommand } from '../../base';
import { localTime, table } from '../../render';

interface Result {
  started: MaintenanceRow[];
  ended: number;
  open: MaintenanceRow[];
}

export default class MonitoringMaintenance extends BaseCommand<typeof MonitoringMaintenance> {
  static override summary = 'Put services in maintenance for a while (their checks are MAINTENANCE, not DOWN), end it, or list it.';
  static override description = `With --for, the named services or targets are in maintenance from now on for that long: their checks show MAINTENANCE and raise no alert. --end ends it early. Without either, lists the maintenance open now or to come (manual, and our own work: updates, backups in stop mode, restore tests). Recurring windows are set in the config: monitoring.maintenance.`;
  static override examples = [
    '<%= config.bin %> monitoring maintenance nextcloud --for 30m --reason "disk swap"',
    '<%= config.bin %> monitoring maintenance nextcloud --end',
    '<%= config.bin %> monitoring maintenance',
  ];
  static override strict = false;
  static override args = { service: Args.string({ description: 'services or monitoring targets' }) };
  static override flags = {
    for: Flags.string({ summary: 'How long: 90s, 30m, 2h, 1d.', exclusive: ['end'] }),
    reason: Flags.string({ summary: 'Why (shown in monitor and status).', default: 'manual maintenance' }),
    end: Flags.boolean({ summary: 'End the maintenance of the named services now.' }),
  };

  async run(): Promise<Result> {
    const { argv, flags } = await this.parse(MonitoringMaintenance);
    const names = argv as string[];
    if ((flags.for || flags.end) && !names.length)
      throw new AutopilotError('USAGE', `--${flags.for ? 'for' : 'end'} needs the services it is about`, {
        hint: 'homelab-autopilot monitoring maintenance SERVICE --for 30m',
      });
    const app = await this.openApp(flags.for || flags.end ? 'rw' : 'ro', { plugins: false, secrets: false });
    const config = app.loaded.config;
    const known = new Set([...config.services.map((s) => s.name), ...config.monitoring.targets.map((t) => t.name)]);
    const unknown = names.filter((n) => !known.has(n));
    if (unknown.length)
      throw new AutopilotError('USAGE', `${unknown.join(', ')}: neither a service nor a monitoring target of the config`, {
        hint: `known: ${[...known].join(', ') || '(none)'}`,
      });
    const state = app.state;
    const now = new Date();
    const result: Result = { started: [], ended: 0, open: [] };
    if (flags.for) {
      let seconds: number;
      try {
        seconds = durationSeconds(/^\d+$/.test(flags.for) ? Number(flags.for) : flags.for);
      } catch (e) {
        throw new AutopilotError('USAGE', `--for ${flags.for}: ${(e as Error).message}`);
      }
      if (!state) throw new AutopilotError('STATE_FAILED', 'no state database to record the maintenance in');
      for (const n of names) {
        const id = state.monitor.beginMaintenance({
          subject: n,
          startsAt: now,
          endsAt: new Date(now.getTime() + seconds * 1000),
          reason: flags.reason,
          source: 'manual',
        });
        result.started.push(...state.monitor.listMaintenance(now).filter((m) => m.id === id));
      }
      this.out(`in maintenance until ${localTime(result.started[0]?.endsAt)}: ${names.join(', ')}`);
    } else if (flags.end) {
      if (state) for (const n of names) result.ended += state.monitor.endMaintenanceOf(n, now);
      this.out(result.ended ? `maintenance ended: ${names.join(', ')}` : `no manual maintenance was open for ${names.join(', ')}`);
    } else {
      result.open = (state?.monitor.listMaintenance(now) ?? []).filter((m) => !names.length || names.includes(m.subject));
      const windows = config.monitoring.maintenance.map((w) => [
        (w.services ?? ['(all)']).join(','),
        'window',
        `${w.cron}, for ${w.duration}`,
        '-',
        w.name ?? '',
      ]);
      const rows = result.open.map((m) => [m.subject, m.source, localTime(m.startsAt), localTime(m.endsAt), m.reason]);
      this.out(
        rows.length || windows.length
          ? table(['SERVICE', 'KIND', 'FROM', 'UNTIL', 'REASON'], [...rows, ...windows])
          : 'no maintenance open or to come, and no windows in the config',
      );
    }
    return result;
  }
}
