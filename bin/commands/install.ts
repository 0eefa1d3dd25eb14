import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import { applyPlan, planInstall, type Applied, type InstallKind, type InstallPlan } from '../../core/daemon/install';
import { BaseCommand } from '../base';
import { renderInstall } from './uninstall';

export type InstallResult = InstallPlan & { dryRun: boolean } & Partial<Applied>;

export default class Install extends BaseCommand<typeof Install> {
  static override summary = 'Install the daemon as a systemd service, or the jobs as a cron file.';
  static override description = `systemd: writes /etc/systemd/system/homelab-autopilot.service (the daemon, hardened: ProtectSystem=strict with ReadWritePaths for the state, log and backup folders of the config) with the real paths of node, the CLI and the config file, then runs systemctl daemon-reload and enable --now (when systemd is not running, as in a container, it says so and prints the commands). cron: writes /etc/cron.d/homelab-autopilot with one line per job of schedules: (the nightly backup when there is none). A file that install did not write is left alone unless --force.

Exit codes: 0 installed, 1 a systemctl command failed, 2 bad usage or config, or a file not ours is in the way.`;

  static override examples = [
    { description: 'Show the unit and the commands, changing nothing', command: '<%= config.bin %> install systemd --dry-run' },
    {
      description: 'Install and start the daemon',
      command: '<%= config.bin %> install systemd --config /etc/homelab-autopilot/homelab-autopilot.yaml',
    },
    { description: 'Cron instead of the daemon, jobs run as user backup', command: '<%= config.bin %> install cron --user backup' },
  ];

  static override args = {
    kind: Args.string({ required: true, options: ['systemd', 'cron'], description: 'systemd (the daemon) or cron (the jobs)' }),
  };

  static override flags = {
    user: Flags.string({ summary: 'The user the daemon or the jobs run as (default: root).' }),
    'dry-run': Flags.boolean({ char: 'n', summary: 'Print the file and the commands; change nothing.' }),
    force: Flags.boolean({ summary: 'Overwrite a file that install did not write.' }),
  };

  async run(): Promise<InstallResult> {
    const { args, flags } = await this.parse(Install);
    const app = await this.openApp('none', { plugins: false, secrets: false });
    const plan = planInstall({
      kind: args.kind as InstallKind,
      config: app.loaded.config,
      configFile: app.loaded.file,
      user: flags.user,
      force: flags.force,
      root: process.env.HOMELAB_AUTOPILOT_ROOT_PREFIX || undefined,
    });
    const dryRun = Boolean(flags['dry-run']);
    const applied = dryRun ? undefined : await applyPlan(plan);
    if (applied?.ran.some((r) => !r.ok)) process.exitCode = 1;
    this.out(renderInstall(plan, dryRun, applied));
    return { ...plan, dryRun, ...applied };
  }
}
