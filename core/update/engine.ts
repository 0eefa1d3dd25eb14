/**
 * The update engine: snapshot, update, validate, and roll back by itself when validation
 * fails. What happens to one service is the step table of ./steps.ts, executed by the
 * lifecycle runner; --dry-run prints the same table. Guests (lxc, vm) are updated through
 * their hypervisor plugin, services with an `updater` through it (./drivers.ts). This file
 * chooses the services, runs them (one after the other, or N at once), records them, turns
 * the runner's result into the service's status, and raises the alerts (./events.ts).
 */
import { realClock, type Clock } from '../../lib/async';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import { namedServices } from '../config/select';
import type { OperationContext, ServiceConfig, ServicePlugin } from '../plugins/contract';
import { planSteps, runSteps, type RunResult } from '../steps/runner';
import { guestDriver, serviceDriver } from './drivers';
import { updateEvent } from './events';
import { UPDATE_STEPS, type UpdateCtx } from './steps';
import { clearInflight, unfinishedUpdate } from './unfinished';
import { beginWork } from '../monitor/work';
import { rollbackService, type RollbackReport, type RollbackRequest } from './rollback';
import type { Driver, ServiceUpdateResult, StepResult, UpdateEngineDeps, UpdateReport, UpdateRequest, UpdateSettings } from './types';

export * from './types';
export { UPDATE_STEPS } from './steps';
export type { RollbackReport, RollbackRequest } from './rollback';

type UpdateSection = Partial<{
  enabled: boolean;
  settle_seconds: number;
  check_interval: number;
  keep_snapshots: number;
  timeout: number;
  min_free_mb: number;
  command: (string | string[])[];
}>;
const section = (s: ServiceConfig): UpdateSection => (s.update as UpdateSection | undefined) ?? {};

export class UpdateEngine {
  private readonly log: Logger;
  private readonly clock: Clock;
  constructor(private readonly deps: UpdateEngineDeps) {
    this.log = deps.logger.child('update');
    this.clock = deps.clock ?? realClock;
  }

  /** The driver of a service, or why it cannot be updated. */
  private driver(svc: ServiceConfig): Driver {
    const provider = this.deps.registry.guestProvider(svc.type);
    // a missing or failed plugin is named by require(); an installed one may still lack what updates need
    const plugin = provider ? null : this.deps.registry.require<ServicePlugin>('service', svc.type, `service '${svc.name}'`);
    if (!this.updatable(svc)) {
      throw new AutopilotError('USAGE', `services of type ${svc.type} cannot be updated by homelab-autopilot`, {
        hint: 'updates exist for lxc, vm, docker-compose and caddy services (and plugins with an updater)',
      });
    }
    return provider ? guestDriver(svc, provider) : serviceDriver(svc, plugin as ServicePlugin, this.deps.state);
  }

  private updatable(svc: ServiceConfig): boolean {
    const provider = this.deps.registry.guestProvider(svc.type);
    if (provider) return provider.can('createSnapshot') && provider.can('execInGuest');
    return this.deps.registry.find('service', svc.type) !== undefined && this.deps.registry.can(svc.type, 'updater');
  }

  selectServices(req: UpdateRequest): ServiceConfig[] {
    const services = this.deps.config.services;
    if (req.all) {
      if (req.services.length) throw new AutopilotError('USAGE', 'give service names or --all, not both');
      // a guest is updated by --all only when its config says how (update:), since the default
      // commands suit Debian-like guests only; named on the command line, the default applies
      const guestWithoutSection = (s: ServiceConfig): boolean =>
        Boolean(this.deps.registry.guestProvider(s.type)) && s.update === undefined;
      return services.filter((s) => s.enabled !== false && section(s).enabled !== false && this.updatable(s) && !guestWithoutSection(s));
    }
    if (!req.services.length) {
      const updatable = services.filter((s) => this.updatable(s)).map((s) => s.name);
      throw new AutopilotError('USAGE', 'name the services to update, or give --all', {
        hint: `updatable services: ${updatable.join(', ') || 'none'}`,
      });
    }
    const chosen = namedServices(services, req.services);
    for (const s of chosen) {
      if (section(s).enabled === false) throw new AutopilotError('USAGE', `updates of '${s.name}' are turned off (update.enabled: false)`);
      this.driver(s); // a clear error now for a type that cannot be updated
    }
    return chosen;
  }

  private settings(svc: ServiceConfig): UpdateSettings {
    const g = this.deps.config.updates;
    const u = section(svc);
    return {
      settleMs: (u.settle_seconds ?? g.settle_seconds) * 1000,
      intervalMs: (u.check_interval ?? g.check_interval) * 1000,
      keep: u.keep_snapshots ?? g.keep_snapshots,
      timeoutMs: (u.timeout ?? g.timeout) * 1000,
      minFreeBytes: (u.min_free_mb ?? g.min_free_mb) * 1024 * 1024,
      command: u.command,
    };
  }

  private context(svc: ServiceConfig): UpdateCtx {
    const driver = this.driver(svc);
    const logger = this.deps.logger.child(`update:${svc.name}`);
    let described: ReturnType<Driver['describe']> | null = null;
    const ctx: UpdateCtx = {
      svc,
      driver,
      settings: this.settings(svc),
      state: this.deps.state,
      clock: this.clock,
      op: (scope, dryRun = false): OperationContext => ({ signal: scope.signal, logger, dryRun, deadline: scope.deadline }),
      describe: () => (described ??= driver.describe(ctx.op({ signal: this.deps.signal }, true), ctx.settings)),
    };
    return ctx;
  }

  async run(req: UpdateRequest): Promise<UpdateReport> {
    const targets = this.selectServices(req);
    const startedAt = this.clock.now();
    const report: UpdateReport = {
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
    if (!req.dryRun) {
      if (!state) throw new AutopilotError('INTERNAL', 'the update engine needs the state database');
      state.markInterruptedRuns();
      report.runId = state.startRun('update', req.all ? 'all' : req.services.join(','));
    }
    try {
      // one after the other by default; --parallel N runs N at once (each service has its own lock)
      const limit = Math.max(1, Math.min(req.parallel ?? this.deps.config.updates.parallel, targets.length || 1));
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < targets.length) {
          const svc = targets[next++];
          if (this.deps.signal.aborted) {
            report.interrupted = true;
            report.services.push({
              service: svc.name,
              type: svc.type,
              status: 'interrupted',
              error: 'not started: the run was cancelled',
              steps: [],
              durationMs: 0,
            });
            continue;
          }
          const r = req.dryRun ? await this.plan(svc) : await this.updateOne(svc, report.runId, req.lockWaitMs);
          if (r.status === 'interrupted') report.interrupted = true;
          report.services.push(r);
          const ev = req.dryRun ? null : updateEvent(r);
          if (ev && this.deps.notifier) report.notifications.push(await this.deps.notifier.notify(ev, report.runId));
        }
      };
      await Promise.all(Array.from({ length: limit }, worker));
      const order = new Map(targets.map((t, i) => [t.name, i]));
      report.services.sort((a, b) => (order.get(a.service) ?? 0) - (order.get(b.service) ?? 0));
    } finally {
      report.ok =
        !report.interrupted && report.services.every((s) => s.status === 'success' || s.status === 'unchanged' || s.status === 'planned');
      report.durationMs = this.clock.now().getTime() - startedAt.getTime();
      if (state && report.runId !== null) {
        state.finishRun(report.runId, report.interrupted ? 'interrupted' : report.ok ? 'success' : 'failed', {
          services: report.services.map((s) => ({ service: s.service, status: s.status })),
          durationMs: report.durationMs,
        });
      }
    }
    return report;
  }

  /** `rollback SERVICE [--snapshot ID]`: back to an autopilot snapshot by hand (./rollback.ts). */
  rollback(req: RollbackRequest): Promise<RollbackReport> {
    const [svc] = namedServices(this.deps.config.services, [req.service]);
    this.driver(svc); // a clear error for a type that cannot be updated (nor rolled back)
    return rollbackService(this.deps, this.context(svc), this.log.child(svc.name), req);
  }

  /** --dry-run: the same table, each step with what it would do; the pre-checks run (they only read). */
  private async plan(svc: ServiceConfig): Promise<ServiceUpdateResult> {
    const started = Date.now();
    const result: ServiceUpdateResult = { service: svc.name, type: svc.type, status: 'planned', steps: [], durationMs: 0 };
    try {
      result.steps = await planSteps(UPDATE_STEPS, this.context(svc), { signal: this.deps.signal });
      const failed = result.steps.find((x) => x.status === 'failed');
      if (failed) Object.assign(result, { status: 'failed', error: failed.detail });
    } catch (e) {
      Object.assign(result, { status: 'failed', error: mask(describeError(e)), hint: (e as { hint?: string })?.hint });
    }
    result.durationMs = Date.now() - started;
    return result;
  }

  private async updateOne(svc: ServiceConfig, jobRunId: number | null, lockWaitMs?: number): Promise<ServiceUpdateResult> {
    const state = this.deps.state as StateManager;
    const started = Date.now();
    const result: ServiceUpdateResult = { service: svc.name, type: svc.type, status: 'success', steps: [], durationMs: 0 };
    const runId = state.startRun('update', svc.name, { parentId: jobRunId });
    const log = this.log.child(svc.name);
    let lock: { release(): void } | null = null;
    let ctx: UpdateCtx | null = null;
    let endWork = (): void => undefined;
    try {
      ctx = Object.assign(this.context(svc), { runId });
      lock = await state.acquireLock(`update.${svc.name}`, {
        waitMs: lockWaitMs ?? this.deps.config.updates.lock_wait * 1000,
        signal: this.deps.signal,
        command: `update ${svc.name}`,
      });
      // from here the service may go down for a while: the monitor shows MAINTENANCE, not DOWN
      endWork = beginWork(state, svc.name, `being updated (run ${runId})`, runId, ctx.settings.timeoutMs / 1000 + 3600);
      // an earlier update that its process never finished: said before anything else happens
      const earlier = unfinishedUpdate(state, svc.name);
      // (the app has logged it already)
      if (earlier) result.unfinished = earlier.summary;
      const run = await runSteps(UPDATE_STEPS, ctx, {
        signal: this.deps.signal,
        ownTimeoutMs: ctx.settings.timeoutMs,
        record: { state, runId },
        logger: log,
        subject: svc.name,
        verbose: true,
        onStep: (r) => this.deps.onStep?.(svc.name, r as StepResult),
      });
      result.steps = run.steps;
      result.snapshot = ctx.snapshot;
      Object.assign(result, this.outcome(ctx, run));
    } catch (e) {
      // before the first step (no plugin, the lock): nothing was changed
      const aborted = this.deps.signal.aborted || isAbortError(e);
      Object.assign(result, {
        status: aborted ? 'interrupted' : 'failed',
        error: mask(this.deps.signal.aborted ? 'cancelled before anything was changed' : describeError(e)),
        hint: (e as { hint?: string })?.hint,
        code: e instanceof AutopilotError ? e.code : undefined,
      });
    } finally {
      clearInflight(state, svc.name, runId);
      endWork();
      lock?.release();
      result.durationMs = Date.now() - started;
      const status =
        result.status === 'success' || result.status === 'unchanged'
          ? 'success'
          : result.status === 'interrupted'
            ? 'interrupted'
            : 'failed';
      state.finishRun(runId, status, {
        status: result.status,
        error: result.error,
        snapshot: result.snapshot?.id,
        steps: result.steps.map((x) => ({ step: x.step, status: x.status, durationMs: x.durationMs })),
      });
    }
    if (result.status === 'rollback_failed') log.error(`${svc.name}: the rollback failed; by hand: ${result.manual}`);
    return result;
  }

  /** The service's status from what the runner did. */
  private outcome(ctx: UpdateCtx, run: RunResult): Partial<ServiceUpdateResult> {
    const cancelled = this.deps.signal.aborted;
    const snap = ctx.snapshot;
    if (!run.failure) return { status: ctx.changed === false ? 'unchanged' : 'success' };
    const e = run.failure.error;
    if (run.undo.status === 'none') {
      // nothing to roll back: it failed before the update began, or the update changed nothing
      if (!run.failure.changed && run.failure.step === 'update' && !cancelled) {
        return { status: 'failed', error: mask(describeError(e)), hint: (e as { hint?: string }).hint };
      }
      const aborted = cancelled || isAbortError(e);
      const why = snap ? `cancelled before the update began (the snapshot ${snap.id} was kept)` : 'cancelled before anything was changed';
      return {
        status: aborted ? 'interrupted' : 'failed',
        error: mask(cancelled ? why : describeError(e)),
        hint: (e as { hint?: string })?.hint,
      };
    }
    const error = mask(cancelled ? 'the update was cancelled' : describeError(e));
    if (run.undo.status === 'done') return { status: cancelled ? 'interrupted' : 'rolled_back', error };
    return {
      status: 'rollback_failed',
      error: mask(`${error}; then the rollback failed: ${describeError(run.undo.error)}`),
      manual: snap ? ctx.driver.manual(snap) : undefined,
    };
  }
}
