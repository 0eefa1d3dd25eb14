/**
 * The backup engine, the orchestrator: it chooses the services, takes the `backup` lock,
 * records the job run, and hands each service to its runner, both at once: archives made here
 * (./archive-runner.ts) and guests backed up by their hypervisor (./guest-runner.ts), neither of
 * which knows the other. It reports results in config order and raises one alert per service
 * (a digest with --all). It goes on past a failed service and reports each one.
 */
import * as os from 'node:os';
import { realClock, type Clock } from '../../lib/async';
import { AutopilotError } from '../../lib/errors';
import { assertSafeName } from '../../lib/exec';
import type { Logger } from '../../lib/log';
import type { StateManager } from '../../lib/state';
import { namedServices } from '../config/select';
import type { DeliveryReport, Digest, DigestSummary } from '../notify/engine';
import type { ServiceConfig } from '../plugins/contract';
import { ArchiveBackupRunner } from './archive-runner';
import { backupEvent } from './events';
import { GuestBackupRunner } from './guest-runner';
import { emptyResult, type BackupEngineDeps, type BackupReport, type BackupRequest, type ServiceBackupResult } from './types';

export * from './types';
export { isOurArchiveName } from './prune';

export class BackupEngine {
  private readonly log: Logger;
  private readonly clock: Clock;
  constructor(private readonly deps: BackupEngineDeps) {
    this.log = deps.logger.child('backup');
    this.clock = deps.clock ?? realClock;
  }

  /** The services a request names, in config order; unknown names are a usage error. */
  selectServices(req: BackupRequest): ServiceConfig[] {
    const services = this.deps.config.services;
    if (req.all) {
      if (req.services.length) throw new AutopilotError('USAGE', 'give service names or --all, not both');
      // a guest type whose hypervisor cannot back up (docker containers) is left out of --all
      const backsUp = (s: ServiceConfig): boolean => this.deps.registry.guestProvider(s.type)?.can('backupGuest') ?? true;
      return services.filter((s) => s.enabled !== false && s.backup !== false && backsUp(s));
    }
    if (!req.services.length) {
      throw new AutopilotError('USAGE', 'name the services to back up, or give --all', {
        hint: `configured services: ${services.map((s) => s.name).join(', ') || 'none'}`,
      });
    }
    return namedServices(services, req.services);
  }

  /** Takes the lock, marks runs of dead processes, and starts the job run. */
  private async begin(req: BackupRequest, state: StateManager): Promise<{ release(): void; runId: number }> {
    const lock = await state.acquireLock('backup', {
      waitMs: req.lockWaitMs ?? this.deps.config.global.lock_wait * 1000,
      signal: this.deps.signal,
      command: `backup ${req.all ? '--all' : req.services.join(' ')}`,
    });
    if (lock.tookOver)
      this.log.warn(`took over the backup lock from pid ${lock.tookOver.pid}, which no longer runs (it was killed or crashed)`);
    const marked = state.markInterruptedRuns();
    if (marked)
      this.log.warn(
        `${marked} earlier run${marked > 1 ? 's were' : ' was'} left unfinished by a process that died; recorded as interrupted`,
      );
    return { release: () => lock.release(), runId: state.startRun('backup', req.all ? 'all' : req.services.join(','), { dryRun: false }) };
  }

  async run(req: BackupRequest): Promise<BackupReport> {
    const targets = this.selectServices(req);
    for (const s of targets) assertSafeName('service', s.name);
    const startedAt = this.clock.now();
    const report: BackupReport = {
      runId: null,
      dryRun: req.dryRun,
      ok: true,
      interrupted: false,
      startedAt: startedAt.toISOString(),
      durationMs: 0,
      services: [],
      notifications: [],
    };
    const state = this.deps.state;
    let lock: { release(): void } | null = null;
    if (!req.dryRun) {
      if (!state) throw new AutopilotError('INTERNAL', 'the backup engine needs the state database');
      const begun = await this.begin(req, state);
      lock = begun;
      report.runId = begun.runId;
    }
    const notifier = req.dryRun ? undefined : this.deps.notifier;
    const digest: Digest | undefined = notifier && req.all && this.deps.config.notifications.digest ? notifier.digest() : undefined;
    const pending: Promise<DeliveryReport>[] = [];
    const done = (result: ServiceBackupResult): void => {
      if (result.status === 'interrupted') report.interrupted = true;
      report.services.push(result);
      this.deps.onEvent?.({ type: 'service-done', result });
      if (!notifier || result.status === 'interrupted') return;
      const ev = backupEvent(result);
      if (digest) digest.add(ev);
      // sent while the next service runs: a slow channel never holds up the backups
      else pending.push(notifier.notify(ev, report.runId));
    };
    try {
      await this.backUp(targets, req, report.runId, done);
      // the report lists services in config order, whatever order they finished in
      const order = new Map(targets.map((t, i) => [t.name, i]));
      report.services.sort((a, b) => (order.get(a.service) ?? 0) - (order.get(b.service) ?? 0));
      report.notifications.push(...(await Promise.all(pending)));
      if (digest && digest.size) report.notifications.push(...(await digest.flush(this.digestTitle(report), report.runId)));
    } finally {
      report.ok = !report.interrupted && report.services.every((s) => s.status === 'success' || s.status === 'planned');
      report.durationMs = this.clock.now().getTime() - startedAt.getTime();
      if (state && report.runId !== null) {
        state.finishRun(report.runId, report.interrupted ? 'interrupted' : report.ok ? 'success' : 'failed', {
          services: report.services.length,
          failed: report.services.filter((s) => s.status === 'failed').map((s) => s.service),
          bytes: report.services.reduce((n, s) => n + (s.archive?.size ?? 0), 0),
          durationMs: report.durationMs,
        });
      }
      lock?.release();
    }
    return report;
  }

  /** Runs both runners at once over their services; every result goes to `done`. */
  private async backUp(
    targets: ServiceConfig[],
    req: BackupRequest,
    runId: number | null,
    done: (r: ServiceBackupResult) => void,
  ): Promise<void> {
    const state = this.deps.state;
    const deps = { ...this.deps, clock: this.clock };
    // a service being updated right now (its update lock is held) is not backed up: its data may be half-restored
    const updating = (s: ServiceConfig): boolean => !req.dryRun && Boolean(state?.liveLockHolder(`update.${s.name}`));
    for (const s of targets.filter(updating)) {
      const h = state?.liveLockHolder(`update.${s.name}`);
      const error = `an update of ${s.name} is running (pid ${h?.pid} on ${h?.host})`;
      done({ ...emptyResult(s), status: 'failed', error, hint: 'back it up again once the update finished' });
    }
    const isGuest = (s: ServiceConfig): boolean => Boolean(this.deps.registry.guestProvider(s.type));
    const free = targets.filter((s) => !updating(s));
    const guests = new GuestBackupRunner(deps);
    const archives = new ArchiveBackupRunner(deps);
    const guestWork = req.dryRun
      ? (async () => {
          for (const g of free.filter(isGuest)) done(await guests.plan(g));
        })()
      : guests.run(free.filter(isGuest), runId, done);
    const archiveWork = (async () => {
      const list = free.filter((s) => !isGuest(s));
      for (const [i, svc] of list.entries()) {
        if (this.deps.signal.aborted) {
          done({ ...emptyResult(svc), status: 'interrupted', error: 'not started: the run was cancelled' });
          continue;
        }
        this.deps.onEvent?.({ type: 'service-start', service: svc.name, index: i, total: list.length });
        done(req.dryRun ? await archives.plan(svc) : await archives.run(svc, runId));
      }
    })();
    // both are waited for, even when one fails unexpectedly
    const settled = await Promise.allSettled([guestWork, archiveWork]);
    const bad = settled.find((x) => x.status === 'rejected');
    if (bad) throw bad.reason;
  }

  /** The digest's title names the failed services ("Backup of web, db FAILED on pve1 (2 of 9 services)"), or those that recovered. */
  private digestTitle(report: BackupReport): DigestSummary {
    const host = os.hostname();
    const n = report.services.length;
    const services = `${n} service${n > 1 ? 's' : ''}`;
    const names = (list: string[]): string =>
      list.length > 3 ? `${list.slice(0, 3).join(', ')} and ${list.length - 3} more` : list.join(', ');
    const failed = report.services.filter((s) => s.status === 'failed').map((s) => s.service);
    const title = failed.length
      ? `Backup of ${names(failed)} FAILED on ${host}${n > 1 ? ` (${failed.length} of ${services})` : ''}`
      : `Backup: ${services} backed up on ${host}`;
    return {
      title,
      subject: 'backup --all',
      recoveredTitle: (recovered) => `Backup of ${names(recovered)} recovered on ${host} (${services} backed up)`,
    };
  }
}
