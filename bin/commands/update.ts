import * as readline from 'node:readline/promises';
import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { UpdateReport } from '../../core/update/engine';
import { AutopilotError, EXIT } from '../../lib/errors';
import { BaseCommand, jobFlags } from '../base';
import { formatDuration, stepLine, table } from '../render';

export default class Update extends BaseCommand<typeof Update> {
  protected static override writesLogFile = true;
  static override summary = 'Update services safely: snapshot, update, validate, and roll back by itself when validation fails.';
  static override description = `For each service: pre-checks (healthy now, enough free space, no other job holds its lock), a snapshot, the update, validation by its health checks over the settle window; then older autopilot snapshots are removed. When the update or its validation fails, the service is rolled back to the snapshot, validated again, and a rollback_executed alert is sent; if the rollback fails too, a critical alert says what to do by hand. SIGINT or SIGTERM in the middle rolls back what was started.

Guests (lxc, vm) run their update commands inside the guest (default: apt-get update, then a non-interactive dist-upgrade); docker-compose services pull and recreate.

Exit codes: 0 all updated (or nothing to update), 1 a service failed or was rolled back, 2 bad usage or config, 75 another update of the service holds its lock (try again later, or give --lock-wait), 130/143 interrupted.`;
  static override examples = [
    { description: 'Show the plan, changing nothing', command: '<%= config.bin %> update nextcloud --dry-run' },
    { description: 'Update one service, asking first', command: '<%= config.bin %> update nextcloud' },
    { description: 'Update every service from cron', command: '<%= config.bin %> update --all --yes' },
  ];
  static override strict = false;
  static override args = { service: Args.string({ description: 'services to update (names from the config)' }) };
  static override flags = {
    all: Flags.boolean({ char: 'a', summary: 'Update every enabled service that can be updated, one after the other.' }),
    'dry-run': Flags.boolean({ char: 'n', summary: 'Print the plan (and run the read-only pre-checks); change nothing.' }),
    yes: Flags.boolean({ char: 'y', summary: 'Do not ask for confirmation (needed when stdin is not a terminal).' }),
    parallel: Flags.integer({ min: 1, max: 16, summary: 'Services updated at once (default updates.parallel: 1, one after the other).' }),
    'lock-wait': Flags.integer({
      min: 0,
      helpValue: 'SECONDS',
      summary: 'How long to wait when another update of the same service holds its lock (default updates.lock_wait: 0).',
    }),
    ...jobFlags,
  };

  async run(): Promise<UpdateReport> {
    const { argv, flags } = await this.parse(Update);
    const services = (argv as string[]).filter((a) => a !== '--json');
    const flag = services.find((a) => a.startsWith('-'));
    if (flag) throw new AutopilotError('USAGE', `unknown flag ${flag}`, { hint: `see ${this.config.bin} update --help` });
    const dryRun = Boolean(flags['dry-run']);
    const app = await this.openApp(dryRun ? 'ro' : 'rw');
    const engine = app.updateEngine(this.jsonEnabled() ? undefined : (service, s) => process.stderr.write(stepLine(service, s)));
    if (!dryRun && !flags.yes) {
      const targets = engine.selectServices({ services, all: Boolean(flags.all), dryRun });
      if (!process.stdin.isTTY)
        throw new AutopilotError('USAGE', 'not asking for confirmation without a terminal', {
          hint: 'add --yes to update without asking (cron), or --dry-run to see the plan',
        });
      const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(
        `Update ${targets.map((t) => t.name).join(', ')}? Each is snapshotted first and rolled back if it fails its health checks. [y/N] `,
      );
      rl.close();
      if (!/^y(es)?$/i.test(answer.trim())) throw new AutopilotError('USAGE', 'not confirmed: nothing was changed');
    }
    this.beginJob('update', app);
    const lockWait = flags['lock-wait'];
    const report = await engine.run({
      services,
      all: Boolean(flags.all),
      dryRun,
      parallel: flags.parallel,
      lockWaitMs: lockWait === undefined ? undefined : lockWait * 1000,
    });
    const bad = report.services.filter((s) => !['success', 'unchanged', 'planned'].includes(s.status));
    // only lock conflicts: nothing was tried, try again later (75, as a backup's lock)
    const locked = bad.length > 0 && bad.every((s) => s.code === 'LOCKED');
    if (!report.ok) process.exitCode = report.interrupted ? this.interruptedExit : locked ? EXIT.LOCKED : EXIT.JOB_FAILED;
    this.out(dryRun ? renderPlan(report) : renderReport(report));
    return report;
  }
}

export function renderPlan(r: UpdateReport): string {
  const lines = ['dry run: nothing is changed', ''];
  for (const s of r.services) {
    lines.push(`${s.service} (${s.type})${s.status === 'failed' ? `: would FAIL: ${s.error}` : ''}`);
    if (s.hint) lines.push(`  hint: ${s.hint}`);
    s.steps.forEach((st, i) => lines.push(`  ${i + 1}. ${st.step.padEnd(10)} ${st.status === 'failed' ? 'FAILS NOW: ' : ''}${st.detail}`));
    lines.push('');
  }
  if (!r.services.length) lines.push('no services to update');
  return lines.join('\n').trimEnd();
}

const STATUS: Record<string, string> = {
  success: 'updated',
  unchanged: 'up to date',
  rolled_back: 'ROLLED BACK',
  rollback_failed: 'ROLLBACK FAILED',
  failed: 'FAILED',
  interrupted: 'interrupted',
};

export function renderReport(r: UpdateReport): string {
  const rows = r.services.map((s) => [
    s.service,
    STATUS[s.status] ?? s.status,
    s.snapshot?.id ?? '-',
    formatDuration(s.durationMs),
    s.error ?? (s.steps.find((x) => x.step === 'update') ?? s.steps.find((x) => x.step === 'prepare'))?.detail ?? '',
  ]);
  const lines = [table(['SERVICE', 'RESULT', 'SNAPSHOT', 'DURATION', 'DETAIL'], rows)];
  for (const s of r.services) {
    if (s.unfinished) lines.push(`  ${s.service}: EARLIER: ${s.unfinished}`);
    if (s.hint) lines.push(`  ${s.service}: hint: ${s.hint}`);
    if (s.manual) lines.push(`  ${s.service}: BY HAND: ${s.manual}`);
  }
  const bad = r.services.filter((s) => !['success', 'unchanged'].includes(s.status)).length;
  lines.push(
    '',
    r.interrupted
      ? 'interrupted'
      : bad
        ? `${bad} of ${r.services.length} not updated`
        : r.services.length
          ? r.services.every((s) => s.status === 'unchanged')
            ? `${r.services.length} up to date: nothing was changed`
            : `${r.services.length} updated and validated`
          : 'no services to update',
  );
  return lines.join('\n');
}
