import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { BackupEvent, BackupReport, ServiceBackupResult } from '../../core/backup/engine';
import { AutopilotError, EXIT } from '../../lib/errors';
import { stderrStatus } from '../../lib/status-line';
import { BaseCommand, jobFlags } from '../base';
import { formatBytes, formatDuration, table } from '../render';

export default class Backup extends BaseCommand<typeof Backup> {
  protected static override writesLogFile = true;
  static override summary = 'Back up services: archive, verify, copy to every destination, prune.';
  static override description = `Each service's plugin says what to archive; the archive is written under a temporary name, fsynced and renamed, then verified (size, sha256, full decompress and tar listing), copied to every enabled destination (each copy verified) and pruned with the keep-* retention. With --all it goes on past a failed service, prints a summary and exits 1 if any failed.

Exit codes: 0 all succeeded, 1 a service failed, 2 bad usage or config, 75 another backup run holds the lock, 130/143 interrupted.`;

  static override examples = [
    { description: 'Back up every enabled service (the cron job)', command: '<%= config.bin %> backup --all' },
    { description: 'Show what would be archived, copied and pruned, writing nothing', command: '<%= config.bin %> backup --all --dry-run' },
    {
      description: 'Back up two services with a given config',
      command: '<%= config.bin %> backup nextcloud proxmox-host --config /etc/homelab-autopilot/homelab-autopilot.yaml',
    },
    { description: 'Machine-readable report', command: '<%= config.bin %> backup --all --json' },
  ];

  static override strict = false;
  static override args = { service: Args.string({ description: 'services to back up (names from the config)' }) };
  static override flags = {
    all: Flags.boolean({ char: 'a', summary: 'Back up every enabled service with backup: true.' }),
    'dry-run': Flags.boolean({ char: 'n', summary: 'Print what would be archived, copied and pruned; write nothing.' }),
    'lock-wait': Flags.integer({ min: 0, summary: 'Seconds to wait when another backup run holds the lock (default: global.lock_wait).' }),
    ...jobFlags,
  };

  async run(): Promise<BackupReport> {
    const { argv, flags } = await this.parse(Backup);
    const services = (argv as string[]).filter((a) => a !== '--json');
    const flag = services.find((a) => a.startsWith('-'));
    if (flag) throw new AutopilotError('USAGE', `unknown flag ${flag}`, { hint: `see ${this.config.bin} backup --help` });
    const dryRun = Boolean(flags['dry-run']);
    const app = await this.openApp(dryRun ? 'ro' : 'rw');
    this.beginJob('backup', app);
    const progress = !this.jsonEnabled() && process.stderr.isTTY ? this.progressRenderer() : undefined;
    const report = await app.backupEngine(progress).run({
      services,
      all: Boolean(flags.all),
      dryRun,
      lockWaitMs: flags['lock-wait'] === undefined ? undefined : flags['lock-wait'] * 1000,
    });
    stderrStatus.clear();
    if (!report.ok) process.exitCode = report.interrupted ? this.interruptedExit : EXIT.JOB_FAILED;
    this.out(dryRun ? renderPlan(report) : renderReport(report));
    return report;
  }

  /** One line redrawn in place on a terminal's stderr; log lines are written above it (lib/status-line.ts). */
  private progressRenderer(): (e: BackupEvent) => void {
    let prefix = '';
    return (e) => {
      if (e.type === 'service-start') prefix = `[${e.index + 1}/${e.total}] ${e.service}`;
      else if (e.type === 'progress') {
        const rate = formatBytes(e.elapsedMs > 0 ? (e.bytes / e.elapsedMs) * 1000 : 0);
        if (e.phase === 'verify' && e.total)
          stderrStatus.show(
            `${prefix}: verifying ${formatBytes(e.bytes)} of ${formatBytes(e.total)} (${Math.floor((e.bytes / e.total) * 100)} %, ${rate}/s)`,
          );
        else stderrStatus.show(`${prefix}: ${formatBytes(e.bytes)} written (${rate}/s)`);
      } else if (e.type === 'status') stderrStatus.show(`${e.service}: ${e.message}`);
      else stderrStatus.clear();
    };
  }
}

function location(s: ServiceBackupResult): string {
  if (s.archive) return s.archive.path;
  return s.error ?? '';
}

/** ' and verified' only when every backup was; the count of those that ended with warnings. */
function summaryNotes(r: BackupReport): string {
  const verified = r.services.every((s) => s.archive?.verified === true);
  const warned = r.services.filter((s) => s.warned).length;
  return `${verified ? ' and verified' : ''}${warned ? ` (${warned} with warnings)` : ''}`;
}

export function renderReport(r: BackupReport): string {
  const rows = r.services.map((s) => [
    s.service,
    s.status === 'success' ? (s.warned ? 'warning' : 'ok') : s.status,
    formatBytes(s.archive?.size),
    formatDuration(s.durationMs),
    location(s),
  ]);
  const lines = [table(['SERVICE', 'RESULT', 'SIZE', 'DURATION', 'LOCATION'], rows)];
  for (const s of r.services) {
    for (const c of s.copies) lines.push(`  ${s.service}: copy to ${c.destination} ${c.ok ? 'ok' : 'FAILED'}: ${c.ok ? c.path : c.error}`);
    for (const p of s.pruned) lines.push(`  ${s.service}: pruned ${p.path} (${p.reason})${p.ok ? '' : ` FAILED: ${p.error}`}`);
    for (const w of s.warnings) lines.push(`  ${s.service}: warning: ${w}`);
    if (s.status === 'failed' && s.hint) lines.push(`  ${s.service}: hint: ${s.hint}`);
  }
  const failed = r.services.filter((s) => s.status === 'failed').length;
  const total = r.services.length;
  lines.push('');
  lines.push(
    r.interrupted
      ? `interrupted: ${r.services.filter((s) => s.status === 'success').length} of ${total} services backed up before the run was stopped`
      : failed
        ? `${failed} of ${total} service${total > 1 ? 's' : ''} FAILED`
        : total
          ? `${total} service${total > 1 ? 's' : ''} backed up${summaryNotes(r)} in ${formatDuration(r.durationMs)}`
          : 'no services to back up (none enabled with backup: true)',
  );
  return lines.join('\n');
}

export function renderPlan(r: BackupReport): string {
  const lines = ['dry run: nothing is written', ''];
  for (const s of r.services) {
    if (s.status === 'failed' || !s.plan) {
      lines.push(`${s.service} (${s.type}): would FAIL: ${s.error}${s.hint ? `\n  hint: ${s.hint}` : ''}`, '');
      continue;
    }
    const p = s.plan;
    if (p.guest) {
      const g = p.guest;
      lines.push(
        `${s.service} (${s.type}): ${g.method ?? 'backup'} on ${g.node} (guest ${g.state}) to ${g.storage}${g.label ? ` (${g.label})` : ''}: mode ${g.mode}, compress ${g.compress}; storage chosen by ${g.rule}`,
      );
      for (const x of p.prune) lines.push(`  prune   ${x.path} (${x.destination}: ${x.reason})`);
      if (g.managed) lines.push(`  prune   left to the ${g.label ?? g.storage} prune jobs`);
      else if (!p.prune.length) lines.push('  prune   nothing');
      for (const w of s.warnings) lines.push(`  note: ${w}`);
      lines.push('');
      continue;
    }
    lines.push(`${s.service} (${s.type}): ${p.files} files, ${formatBytes(p.bytes)} before compression`);
    for (const src of p.sources) lines.push(`  archive ${src.path}${src.present ? '' : ' (missing, skipped)'}`);
    for (const e of p.exclude) lines.push(`  exclude ${e}`);
    lines.push(`  into    ${p.archive}`);
    for (const c of p.copies) lines.push(`  copy to ${c.destination}: ${c.path}`);
    for (const x of p.prune) lines.push(`  prune   ${x.path} (${x.destination}: ${x.reason})`);
    if (!p.prune.length) lines.push('  prune   nothing');
    for (const w of s.warnings) lines.push(`  warning: ${w}`);
    lines.push('');
  }
  if (!r.services.length) lines.push('no services to back up (none enabled with backup: true)');
  return lines.join('\n').trimEnd();
}
