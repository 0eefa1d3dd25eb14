import * as readline from 'node:readline/promises';
import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { RollbackReport } from '../../core/update/engine';
import { AutopilotError, EXIT } from '../../lib/errors';
import { BaseCommand } from '../base';
import { formatDuration, stepLine } from '../render';

export default class Rollback extends BaseCommand<typeof Rollback> {
  protected static override writesLogFile = true;
  static override summary = 'Roll a service back to one of its autopilot snapshots (after an update that did not finish, or by choice).';
  static override description = `Goes back to the snapshot an update made before it changed anything: without --snapshot, the snapshot of an update whose process died before it finished (status shows it), else the newest autopilot snapshot. Works for Proxmox guests (lxc, vm) and for services with an updater (docker-compose, caddy). The service is validated by its health checks afterwards, as after an update's own rollback.

Exit codes: 0 rolled back and healthy, 1 the rollback or its validation failed (BY HAND: says what to do), 2 bad usage or config (no such snapshot), 75 an update of the service holds its lock, 130/143 interrupted.`;
  static override examples = [
    { description: 'Show what it would do', command: '<%= config.bin %> rollback nextcloud --dry-run' },
    { description: 'Back to a snapshot by its name', command: '<%= config.bin %> rollback web --snapshot autopilot_20261202_030000 --yes' },
  ];
  static override args = { service: Args.string({ required: true, description: 'the service (a name from the config)' }) };
  static override flags = {
    snapshot: Flags.string({ summary: "The snapshot's id (default: that of an unfinished update, else the newest autopilot snapshot)." }),
    'dry-run': Flags.boolean({ char: 'n', summary: 'Say which snapshot and what would be done; change nothing.' }),
    yes: Flags.boolean({ char: 'y', summary: 'Do not ask for confirmation (needed when stdin is not a terminal).' }),
    'lock-wait': Flags.integer({
      min: 0,
      helpValue: 'SECONDS',
      summary: 'How long to wait when an update of the service holds its lock (default updates.lock_wait: 0).',
    }),
  };

  async run(): Promise<RollbackReport> {
    const { args, flags } = await this.parse(Rollback);
    const dryRun = Boolean(flags['dry-run']);
    const app = await this.openApp(dryRun ? 'ro' : 'rw');
    const engine = app.updateEngine(this.jsonEnabled() ? undefined : (service, s) => process.stderr.write(stepLine(service, s)));
    if (!dryRun && !flags.yes) {
      if (!process.stdin.isTTY)
        throw new AutopilotError('USAGE', 'not asking for confirmation without a terminal', {
          hint: 'add --yes to roll back without asking, or --dry-run to see which snapshot',
        });
      const plan = await engine.rollback({ service: args.service, snapshot: flags.snapshot, dryRun: true });
      const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(`Roll ${args.service} back to ${plan.snapshot?.id} (${plan.reason})? [y/N] `);
      rl.close();
      if (!/^y(es)?$/i.test(answer.trim())) throw new AutopilotError('USAGE', 'not confirmed: nothing was changed');
    }
    const lockWait = flags['lock-wait'];
    const r = await engine.rollback({
      service: args.service,
      snapshot: flags.snapshot,
      dryRun,
      lockWaitMs: lockWait === undefined ? undefined : lockWait * 1000,
    });
    if (r.status === 'interrupted') process.exitCode = this.interruptedExit;
    else if (r.status === 'failed') process.exitCode = r.code === 'LOCKED' ? EXIT.LOCKED : EXIT.JOB_FAILED;
    this.out(render(r));
    return r;
  }
}

function render(r: RollbackReport): string {
  const snap = `${r.snapshot?.id ?? '?'}${r.snapshot?.description ? ` (${r.snapshot.description})` : ''}`;
  if (r.dryRun) {
    const lines = ['dry run: nothing is changed', '', `${r.service} (${r.type}): back to ${snap}, ${r.reason}`];
    r.steps.forEach((st, i) => lines.push(`  ${i + 1}. ${st.step.padEnd(10)} ${st.detail}`));
    return lines.join('\n');
  }
  const lines =
    r.status === 'success'
      ? [`${r.service}: rolled back to ${snap} and healthy again (${formatDuration(r.durationMs)})`]
      : [`${r.service}: ROLLBACK ${r.status === 'interrupted' ? 'INTERRUPTED' : 'FAILED'}: ${r.error ?? ''}`];
  if (r.hint) lines.push(`  hint: ${r.hint}`);
  if (r.manual && r.status !== 'success') lines.push(`  BY HAND: ${r.manual}`);
  return lines.join('\n');
}
