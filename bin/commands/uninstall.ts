import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { applyPlan, planUninstall, type Applied, type InstallKind, type InstallPlan } from '../../core/daemon/install';
import { BaseCommand } from '../base';

export type UninstallResult = InstallPlan & { dryRun: boolean } & Partial<Applied>;

/** What install and uninstall did, or would do. */
export function renderInstall(plan: InstallPlan, dryRun: boolean, applied?: Applied): string {
  const lines: string[] = [];
  for (const f of plan.files) {
    if (f.action === 'write') {
      lines.push(dryRun ? `would write ${f.path}:` : `wrote ${f.path}`);
      if (dryRun) lines.push('', (f.content ?? '').trimEnd(), '');
    } else if (f.action === 'unchanged') lines.push(`${f.path} is up to date`);
    else if (f.action === 'remove') lines.push(dryRun ? `would remove ${f.path}` : `removed ${f.path}`);
  }
  const cmd = (c: string[]): string => c.join(' ');
  if (dryRun) for (const c of plan.commands) lines.push(`would run: ${cmd(c)}`);
  else if (plan.systemd) {
    for (const r of applied?.ran ?? [])
      lines.push(`${r.ok ? 'ran' : 'FAILED'}: ${cmd(r.command)}${r.ok || !r.output ? '' : `: ${r.output}`}`);
  } else if (plan.commands.length) lines.push('run as root where systemd runs:', ...plan.commands.map((c) => `  ${cmd(c)}`));
  for (const n of plan.notes) lines.push(`note: ${n}`);
  if (dryRun) lines.push('dry run: nothing was changed');
  return lines.join('\n');
}

export default class Uninstall extends BaseCommand<typeof Uninstall> {
  static override summary = 'Remove what install wrote: the systemd service (stopped and disabled first) or the cron file.';
  static override description = `Removes only a file that install wrote (it starts with install's marker line), unless --force. For systemd, runs systemctl disable --now first and daemon-reload after (printed instead when systemd is not running).`;

  static override examples = [
    { description: 'Show what would be removed', command: '<%= config.bin %> uninstall systemd --dry-run' },
    { description: 'Remove the cron file', command: '<%= config.bin %> uninstall cron' },
  ];

  static override args = {
    kind: Args.string({ required: true, options: ['systemd', 'cron'], description: 'systemd or cron' }),
  };

  static override flags = {
    'dry-run': Flags.boolean({ char: 'n', summary: 'Print what would be removed and run; change nothing.' }),
    force: Flags.boolean({ summary: 'Remove the file even if install did not write it.' }),
  };

  async run(): Promise<UninstallResult> {
    const { args, flags } = await this.parse(Uninstall);
    const plan = planUninstall(args.kind as InstallKind, process.env.HOMELAB_AUTOPILOT_ROOT_PREFIX || undefined, flags.force);
    const dryRun = Boolean(flags['dry-run']);
    const applied = dryRun ? undefined : await applyPlan(plan);
    if (applied?.ran.some((r) => !r.ok)) process.exitCode = 1;
    this.out(renderInstall(plan, dryRun, applied));
    return { ...plan, dryRun, ...applied };
  }
}
