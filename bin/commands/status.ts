import * as Args from '@oclif/core/args';
import type { SubjectHealth } from '../../core/monitor/health';
import { serviceStatus, type ServiceStatus, type StatusReport } from '../../core/status';
import { EXIT } from '../../lib/errors';
import { BaseCommand } from '../base';
import { formatAge, formatBytes, formatDuration, table } from '../render';

const pct = (x: number | null): string => (x === null ? '-' : `${(Math.floor(x * 10000) / 100).toFixed(2)}%`);

function lastRunText(r: ServiceStatus['lastUpdate']): string {
  if (!r) return 'never';
  return `${formatAge(r.at)}, ${r.outcome ?? r.status}`;
}

/** The monitor's view: health since when, uptimes, p95, and the last update and restore test. */
function healthTable(report: StatusReport): string {
  const row = (name: string, h: SubjectHealth | null, extra: string[]): string[] => [
    name,
    h ? `${h.state}${h.state === 'UP' ? '' : ` (${h.down}/${h.checks} down)`}` : 'not monitored',
    h ? formatAge(h.since) : '-',
    pct(h?.uptime.h24 ?? null),
    pct(h?.uptime.d7 ?? null),
    pct(h?.uptime.d30 ?? null),
    h?.p95Ms === null || h?.p95Ms === undefined ? '-' : formatDuration(h.p95Ms),
    ...extra,
  ];
  const rows = [
    ...report.services.map((s) => row(s.service, s.health, [lastRunText(s.lastUpdate), lastRunText(s.lastRestoreTest)])),
    ...report.targets.map((t) => row(t.subject, t, ['-', '-'])),
  ];
  return table(['SERVICE', 'HEALTH', 'SINCE', 'UP 24H', 'UP 7D', 'UP 30D', 'P95', 'LAST UPDATE', 'LAST RESTORE TEST'], rows);
}

export default class Status extends BaseCommand<typeof Status> {
  protected static override lightStateCheck = true;
  static override summary = 'Show each service: where its guest runs, its health and uptime, and the last backup, update and restore test.';
  static override description = `Guests (lxc, vm) are asked live from the hypervisor: the node they run on now, state, uptime and IP addresses; every service shows its last recorded backup with its age, size and verification. Below, the monitor's view: health (UP, DOWN, PENDING, MAINTENANCE, FLAPPING) and since when, uptime over 24 hours, 7 and 30 days, the p95 response time, and the last update and restore test. The cluster's quorum and offline nodes are shown above; an update whose process died before it finished is shown below, with the snapshot it holds.

Exit codes: 0 shown, 1 some guest's state could not be read, 2 bad usage or config.`;
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status web dns --json'];
  static override strict = false;
  static override args = { service: Args.string({ description: 'only these services' }) };

  async run(): Promise<StatusReport> {
    const { argv } = await this.parse(Status);
    const app = await this.openApp('ro');
    const report = await serviceStatus(
      { config: app.loaded.config, registry: app.registry, state: app.state, logger: app.logger, signal: this.controller.signal },
      argv as string[],
    );
    const lines: string[] = [];
    for (const c of report.clusters) {
      if (c.error) lines.push(`${c.hypervisor}: cluster state unknown: ${c.error}`);
      else if (c.status) {
        const off = c.status.nodes.filter((n) => !n.online).map((n) => n.node);
        lines.push(
          `${c.hypervisor}: ${c.status.name ? `cluster ${c.status.name}` : 'single node'}, ${c.status.nodes.length} node${c.status.nodes.length === 1 ? '' : 's'}${off.length ? ` (OFFLINE: ${off.join(', ')})` : ''}${c.status.name ? (c.status.quorate ? ', quorate' : ', NO QUORUM') : ''}`,
        );
      }
    }
    if (lines.length) lines.push('');
    const rows = report.services.map((s) => {
      const g = s.guest;
      const b = s.lastBackup;
      return [
        s.service,
        s.type,
        g?.node ?? '-',
        s.error && !g ? 'ERROR' : (g?.state ?? '-') + (g?.lock ? ` (locked: ${g.lock})` : ''),
        g?.uptimeSeconds ? formatDuration(g.uptimeSeconds * 1000) : '-',
        g?.ips?.length ? g.ips.join(',') : '-',
        b
          ? `${formatAge(b.at)}, ${formatBytes(b.size)}, ${b.verified === 'ok' ? 'verified' : b.verified === 'pending' ? 'verification pending' : b.verified === 'failed' ? 'VERIFY FAILED' : 'not verified'}${b.warning ? ', with WARNINGS' : ''}`
          : 'never',
      ];
    });
    lines.push(table(['SERVICE', 'TYPE', 'NODE', 'STATE', 'UPTIME', 'IPS', 'LAST BACKUP'], rows));
    lines.push('', healthTable(report));
    for (const s of report.services) if (s.error) lines.push(`  ${s.service}: ${s.error}`);
    for (const s of report.services) if (s.unfinishedUpdate) lines.push(`  ${s.service}: UNFINISHED UPDATE: ${s.unfinishedUpdate.summary}`);
    this.out(lines.join('\n'));
    if (report.services.some((s) => s.error)) process.exitCode = EXIT.JOB_FAILED;
    return report;
  }
}
