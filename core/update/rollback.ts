/**
 * `rollback SERVICE [--snapshot ID]`: a service back to one of its autopilot snapshots, by
 * hand, through the same driver and the same two steps an update undoes itself with
 * (rollback, then validation). Without --snapshot it goes back to the snapshot of an update
 * that did not finish (its process died), else to the newest autopilot snapshot. It holds the
 * service's update lock, is recorded as a run of kind `rollback`, and removes the mark of the
 * unfinished update once the service is back and healthy.
 */
import { AutopilotError, describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import type { SnapshotInfo } from '../plugins/contract';
import { failureOf, planSteps, runSteps } from '../steps/runner';
import { revalidate, rollback, type UpdateCtx } from './steps';
import type { StepResult, UpdateEngineDeps } from './types';
import { forgetUnfinished, unfinishedUpdate } from './unfinished';

export interface RollbackRequest {
  service: string;
  /** the snapshot's id (default: that of an unfinished update, else the newest) */
  snapshot?: string;
  dryRun: boolean;
  /** ms to wait for an update of the service that holds its lock (default updates.lock_wait) */
  lockWaitMs?: number;
}

export interface RollbackReport {
  runId: number | null;
  service: string;
  type: string;
  dryRun: boolean;
  status: 'success' | 'failed' | 'interrupted' | 'planned';
  snapshot: SnapshotInfo | null;
  /** why this snapshot: named, the unfinished update's, or the newest */
  reason: string;
  error?: string;
  hint?: string;
  /** the error's code when it failed before anything ran (LOCKED) */
  code?: string;
  /** what to do by hand when the rollback failed */
  manual?: string;
  steps: StepResult[];
  durationMs: number;
}

export const ROLLBACK_STEPS = [rollback, revalidate];

/** The snapshot to go back to, and why that one. */
async function choose(ctx: UpdateCtx, state: StateManager | null, wanted: string | undefined, signal: AbortSignal) {
  const name = ctx.svc.name;
  const all = await ctx.driver.snapshots(ctx.op({ signal }, true));
  const ids = all.map((x) => x.id).join(', ') || 'none';
  if (wanted) {
    const snap = all.find((x) => x.id === wanted);
    if (!snap)
      throw new AutopilotError('USAGE', `${name} has no autopilot snapshot named ${wanted}`, { hint: `its autopilot snapshots: ${ids}` });
    return { snap, reason: 'named with --snapshot' };
  }
  const unfinished = unfinishedUpdate(state, name);
  if (unfinished && !unfinished.snapshot)
    throw new AutopilotError('USAGE', unfinished.summary, {
      hint: `name the snapshot with --snapshot ID (its autopilot snapshots: ${ids})`,
    });
  if (unfinished) {
    const snap = all.find((x) => x.id === unfinished.snapshot);
    if (!snap)
      throw new AutopilotError('JOB_FAILED', `the snapshot ${unfinished.snapshot} of the unfinished update of ${name} is gone`, {
        hint: `name another with --snapshot ID (its autopilot snapshots: ${ids})`,
      });
    return { snap, reason: `the snapshot of the update that did not finish (run ${unfinished.runId ?? '?'})` };
  }
  const snap = all.at(-1);
  if (!snap) throw new AutopilotError('USAGE', `${name} has no autopilot snapshot to roll back to`);
  return { snap, reason: 'the newest autopilot snapshot' };
}

/** Rolls one service back (or, with dryRun, says what that would do). */
export async function rollbackService(deps: UpdateEngineDeps, ctx: UpdateCtx, log: Logger, req: RollbackRequest): Promise<RollbackReport> {
  const started = Date.now();
  const state = deps.state;
  const { snap, reason } = await choose(ctx, state, req.snapshot, deps.signal);
  ctx.snapshot = snap;
  const report: RollbackReport = {
    runId: null,
    service: ctx.svc.name,
    type: ctx.svc.type,
    dryRun: req.dryRun,
    status: req.dryRun ? 'planned' : 'success',
    snapshot: snap,
    reason,
    steps: [],
    durationMs: 0,
  };
  if (req.dryRun) {
    report.steps = await planSteps(ROLLBACK_STEPS, ctx, { signal: deps.signal });
    report.durationMs = Date.now() - started;
    return report;
  }
  if (!state) throw new AutopilotError('INTERNAL', 'a rollback needs the state database');
  state.markInterruptedRuns();
  const runId = state.startRun('rollback', ctx.svc.name);
  report.runId = runId;
  let lock: { release(): void } | null = null;
  try {
    lock = await state.acquireLock(`update.${ctx.svc.name}`, {
      waitMs: req.lockWaitMs ?? deps.config.updates.lock_wait * 1000,
      signal: deps.signal,
      command: `rollback ${ctx.svc.name}`,
    });
    // chosen again under the lock: an update that held it may have removed or added snapshots meanwhile
    const chosen = await choose(ctx, state, req.snapshot, deps.signal);
    Object.assign(report, { snapshot: chosen.snap, reason: chosen.reason });
    ctx.snapshot = chosen.snap;
    const run = await runSteps(ROLLBACK_STEPS, ctx, {
      signal: deps.signal,
      ownTimeoutMs: ctx.settings.timeoutMs,
      record: { state, runId },
      logger: log,
      subject: ctx.svc.name,
      verbose: true,
      onStep: (r) => deps.onStep?.(ctx.svc.name, r as StepResult),
    });
    report.steps = run.steps;
    if (run.failure) {
      Object.assign(report, {
        status: 'failed',
        error: mask(describeError(run.failure.error)),
        hint: (run.failure.error as { hint?: string }).hint,
        manual: ctx.driver.manual(ctx.snapshot ?? snap),
      });
    } else forgetUnfinished(state, ctx.svc.name);
  } catch (e) {
    // before the first step (the lock): nothing was changed
    Object.assign(report, failureOf(e, deps.signal));
  } finally {
    lock?.release();
    report.durationMs = Date.now() - started;
    state.finishRun(runId, report.status === 'success' ? 'success' : report.status === 'interrupted' ? 'interrupted' : 'failed', {
      status: report.status,
      snapshot: (ctx.snapshot ?? snap).id,
      error: report.error,
      steps: report.steps.map((x) => ({ step: x.step, status: x.status, durationMs: x.durationMs })),
    });
  }
  return report;
}
