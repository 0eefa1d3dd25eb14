/**
 * `restore SERVICE`: a file archive of a `files` or `host` service back into a folder (--to)
 * or over its original paths (--in-place, after a safety archive), through RESTORE_STEPS. It
 * holds the backup lock (no backup writes or prunes meanwhile), is recorded as a run of kind
 * `restore` with its steps, and never prints: the command renders the report.
 */
import { TarTally } from '../../lib/archive';
import { AutopilotError, describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import { failureOf, planSteps, runSteps, type StepReport } from '../steps/runner';
import { checkTarget, chooseArchive, restorableService, restorePoints, type RestorePoint } from './select';
import { RESTORE_STEPS, type RestoreCtx, type RestoreProgress } from './steps';

export type { RestorePoint } from './select';
export type { RestoreProgress } from './steps';

export interface RestoreDeps {
  config: AutopilotConfig;
  state: StateManager | null;
  logger: Logger;
  signal: AbortSignal;
  onProgress?(p: RestoreProgress): void;
  onStep?(service: string, r: StepReport): void;
}

export interface RestoreRequest {
  service: string;
  archive?: number;
  at?: string;
  from?: string;
  /** the folder to restore into; or inPlace */
  to?: string;
  inPlace?: boolean;
  /** --yes: needed for inPlace */
  yes?: boolean;
  /** restore into a folder that is not empty */
  force?: boolean;
  dryRun: boolean;
  cwd?: string;
}

export interface RestoreReport {
  runId: number | null;
  service: string;
  type: string;
  dryRun: boolean;
  status: 'success' | 'failed' | 'interrupted' | 'planned';
  archive: Pick<RestorePoint, 'id' | 'destination' | 'location' | 'size' | 'createdAt' | 'sha256' | 'verifyStatus'>;
  /** why this archive */
  reason: string;
  /** the folder the members went into (/ in place) */
  target: string;
  inPlace: boolean;
  /** the safety archive written before an in-place restore */
  safety: { id: number | null; path: string; size: number } | null;
  files: number | null;
  bytes: number | null;
  error?: string;
  hint?: string;
  code?: string;
  /** 'done': the safety archive was put back after a failure */
  undo: 'none' | 'done' | 'failed';
  steps: StepReport[];
  durationMs: number;
}

/** What can be restored of a service: every recorded archive at every destination, newest first. */
export function listRestorable(deps: Pick<RestoreDeps, 'config' | 'state'>, service: string): RestorePoint[] {
  restorableService(deps.config, service);
  return restorePoints(deps.state, service);
}

function prepare(deps: RestoreDeps, req: RestoreRequest): RestoreCtx & { reason: string } {
  const svc = restorableService(deps.config, req.service);
  if (req.inPlace && req.to) throw new AutopilotError('USAGE', '--to and --in-place exclude each other');
  if (!req.inPlace && !req.to)
    throw new AutopilotError('USAGE', 'say where to restore: --to FOLDER, or --in-place --yes over the original paths', {
      hint: `'restore ${svc.name} --list' shows what can be restored`,
    });
  if (req.inPlace && !req.yes && !req.dryRun)
    throw new AutopilotError('USAGE', `--in-place replaces the files of ${svc.name} where they are: add --yes to do it`, {
      hint: 'a safety archive of what is there now is written first; --dry-run shows the plan, --to FOLDER restores beside them',
    });
  const target = req.inPlace ? '/' : checkTarget(req.to as string, Boolean(req.force), req.cwd);
  const destinations = ['primary', ...deps.config.backup.destinations.map((d) => d.name)];
  const { point, reason } = chooseArchive(restorePoints(deps.state, svc.name), svc.name, {
    archive: req.archive,
    at: req.at,
    from: req.from,
    destinations,
  });
  return {
    svc,
    config: deps.config,
    state: deps.state,
    log: deps.logger.child(`restore:${svc.name}`),
    point,
    target,
    inPlace: Boolean(req.inPlace),
    runId: null,
    tally: new TarTally(),
    onProgress: deps.onProgress ? (p) => deps.onProgress?.(p) : undefined,
    now: () => new Date(),
    reason,
  };
}

/** Restores (or, with dryRun, plans) one service's archive. Usage errors throw; a failed run is in the report. */
export async function restoreService(deps: RestoreDeps, req: RestoreRequest): Promise<RestoreReport> {
  const started = Date.now();
  const ctx = prepare(deps, req);
  const p = ctx.point;
  const report: RestoreReport = {
    runId: null,
    service: ctx.svc.name,
    type: ctx.svc.type,
    dryRun: req.dryRun,
    status: req.dryRun ? 'planned' : 'success',
    archive: {
      id: p.id,
      destination: p.destination,
      location: p.location,
      size: p.size,
      createdAt: p.createdAt,
      sha256: p.sha256,
      verifyStatus: p.verifyStatus,
    },
    reason: ctx.reason,
    target: ctx.target,
    inPlace: ctx.inPlace,
    safety: null,
    files: null,
    bytes: null,
    undo: 'none',
    steps: [],
    durationMs: 0,
  };
  if (req.dryRun) {
    report.steps = await planSteps(RESTORE_STEPS, ctx, { signal: deps.signal });
    report.durationMs = Date.now() - started;
    return report;
  }
  const state = deps.state;
  if (!state) throw new AutopilotError('INTERNAL', 'a restore needs the state database');
  const runId = state.startRun('restore', ctx.svc.name);
  ctx.runId = runId;
  report.runId = runId;
  let lock: { release(): void } | null = null;
  try {
    // no backup writes, copies or prunes this service's archives while one is restored
    lock = await state.acquireLock('backup', { waitMs: 0, signal: deps.signal, command: `restore ${ctx.svc.name}` });
    const run = await runSteps(RESTORE_STEPS, ctx, {
      signal: deps.signal,
      ownTimeoutMs: deps.config.backup.timeout * 1000,
      record: { state, runId },
      logger: ctx.log,
      subject: ctx.svc.name,
      verbose: true,
      onStep: (r) => deps.onStep?.(ctx.svc.name, r),
    });
    report.steps = run.steps;
    report.undo = run.undo.status;
    report.safety = ctx.safety ?? null;
    report.files = ctx.extracted?.files ?? null;
    report.bytes = ctx.extracted?.bytes ?? null;
    if (run.failure) {
      const e = run.failure.error;
      Object.assign(report, failureOf(e, deps.signal));
      if (run.undo.status === 'failed')
        report.hint = `putting the safety archive back failed too (${mask(describeError(run.undo.error))}): restore it by hand from ${ctx.safety?.path}`;
    }
  } catch (e) {
    // before the first step (the lock): nothing was changed
    Object.assign(report, failureOf(e, deps.signal));
  } finally {
    lock?.release();
    report.durationMs = Date.now() - started;
    state.finishRun(runId, report.status === 'success' ? 'success' : report.status === 'interrupted' ? 'interrupted' : 'failed', {
      status: report.status,
      archive: p.id,
      target: ctx.target,
      safety: report.safety?.path,
      error: report.error,
      steps: report.steps.map((x) => ({ step: x.step, status: x.status, durationMs: x.durationMs })),
    });
  }
  return report;
}
