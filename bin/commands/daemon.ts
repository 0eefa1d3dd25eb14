import type { App } from '../../core/app';
import { cliJobStarter } from '../../core/daemon/child';
import { Daemon } from '../../core/daemon/daemon';
import type { InProcessService } from '../../core/daemon/services';
import { collectMetrics } from '../../core/metrics';
import { jobMetrics } from '../../core/daemon/job-metrics';
import { subjectHealth } from '../../core/monitor/health';
import { monitorService } from '../../core/monitor/service';
import { EXIT } from '../../lib/errors';
import { BaseCommand } from '../base';

export interface DaemonResult {
  clean: boolean;
}

export default class DaemonCommand extends BaseCommand<typeof DaemonCommand> {
  protected static override writesLogFile = true;
  protected static override stderrIsTheLog = true;
  static override summary = 'Run the scheduled jobs, the monitor and the HTTP endpoint in the foreground (the systemd service).';
  static override description = `Runs the jobs of schedules: (backup, update, restore_test) at their cron times, each as a child process of this CLI with the same --config, so they take the same locks as cron-started runs; a job still running when it is due again is skipped. A run missed while the daemon was down runs once at start (schedules.catch_up). Serves /healthz, /status and /metrics on daemon.listen:daemon.port.

SIGHUP reloads the config (validated first: when it is invalid the old one stays, the error is logged and config_reload_failed is notified). SIGTERM or SIGINT stops scheduling, gives running jobs daemon.shutdown_timeout seconds, then sends them SIGTERM (an update rolls back), then SIGKILL after 30 s more.

Exit codes: 0 stopped with every job ended, 1 a job had to be killed, 2 bad config or the port is in use.`;

  static override examples = [
    { description: 'Run in the foreground, with every log line on stderr', command: '<%= config.bin %> daemon --log-level info' },
    { description: 'Install it as a systemd service instead', command: '<%= config.bin %> install systemd' },
  ];

  async run(): Promise<DaemonResult> {
    const first = await this.openApp('rw');
    const closeFirst = first.close.bind(first);
    let closed = false;
    // the command's finally() closes the first app too: once is enough
    first.close = async () => {
      if (closed) return;
      closed = true;
      await closeFirst();
    };
    const file = first.loaded.file;
    const daemon = new Daemon<App>(first, {
      logger: first.logger,
      startJob: cliJobStarter({ configFile: file }),
      open: () => this.reopen(file, first),
      services: (app) => [monitorService(app)].filter((s): s is InProcessService => s !== null),
      // the full set from state (checks, jobs, backups, free space), the process's own, and the daemon's jobs and uptime
      // /status: the monitor's health of every service, target and resource, beside the jobs
      status: (app) => {
        const c = app.loaded.config;
        const subjects = [...c.services.map((x) => x.name), ...c.monitoring.targets.map((t) => t.name), 'host'];
        const nodes =
          app.state?.monitor
            .listChecks()
            .map((r) => r.subject)
            .filter((x) => /^(node|hypervisor):/.test(x)) ?? [];
        return Promise.resolve({ health: [...subjectHealth(app.state, [...new Set([...subjects, ...nodes])], new Date()).values()] });
      },
      metrics: async (app, jobs) => {
        const m = await collectMetrics({ config: app.loaded.config, state: app.state }, { processMetrics: true });
        return { contentType: m.contentType, body: m.body + jobMetrics(jobs, process.uptime()).body };
      },
    });
    await daemon.start();
    const onHup = (): void => void daemon.reload();
    process.on('SIGHUP', onHup);
    try {
      await new Promise<void>((resolve) => {
        if (this.controller.signal.aborted) resolve();
        this.controller.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      process.off('SIGHUP', onHup);
    }
    const { clean } = await daemon.shutdown();
    await daemon.close();
    if (!clean) process.exitCode = EXIT.JOB_FAILED;
    return { clean };
  }

  /** The same file opened and validated again, with the daemon's logger. */
  private async reopen(file: string, first: App): Promise<App> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- as BaseCommand.openApp
    const { openApp } = require('../../core/app') as typeof import('../../core/app');
    return openApp({ configPath: file, signal: this.controller.signal, state: 'rw', makeLogger: () => first.logger });
  }
}
