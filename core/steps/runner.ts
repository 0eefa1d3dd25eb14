/**
 * The lifecycle runner. An engine declares what it does for one service as a table of steps
 * (data: a name, a title, what the dry run says, how it runs, what undoes it, whether it only
 * reads); this runner executes the table and the dry run prints the same table, so the two
 * can never drift apart (semantic-release's lifecycle, as STYLE.md asks).
 *
 * What the runner owns, so that no engine writes it again:
 * - order: main steps in table order while all succeed; the first failure (a throw, or an
 *   outcome with ok: false) stops them;
 * - signals and deadlines: a step runs under the run's signal (SIGINT/SIGTERM and the run's
 *   deadline), or under a time-out of its own when it must not be cut short (a snapshot, a
 *   rollback); those run inside `critical`, so a second Ctrl-C waits for them;
 * - cancellation between steps: a step is not started once the run was cancelled;
 * - undo: when a step fails, the undo steps of every step that ran and changed something are
 *   run, newest first, each under its own time-out and inside `critical` (a step that failed
 *   saying `changed: false` has nothing to undo); a failing undo stops the undo;
 * - `always` steps (afterBackup, teardown) run last, after a failure or a cancel too;
 * - recording: every step that runs is a `run_steps` row with its timing and detail (masked),
 *   and is reported to `onStep`.
 */
import { deadlineSignal } from '../../lib/async';
import { critical } from '../../lib/critical';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';

export type StepStatus = 'success' | 'failed' | 'skipped' | 'planned' | 'interrupted';

/** What one step did (or, on a dry run, would do); E holds an engine's own fields (an update's health checks). */
export type StepReport<E extends object = object> = {
  step: string;
  status: StepStatus;
  detail: string;
  durationMs: number;
} & Partial<E>;

export interface StepOutcome<E extends object = object> {
  /** one line for the user: what happened */
  detail: string;
  /** false: the step ran and found a failure (validation failed); the run fails here */
  ok?: boolean;
  /** whether it changed anything (default: true unless the step is read-only) */
  changed?: boolean;
  /** the engine's own fields, copied into the report */
  extra?: E;
}

/** What a step receives: the signal it must honour and, when it has a budget, the deadline. */
export interface StepScope {
  signal: AbortSignal;
  /** epoch ms */
  deadline?: number;
}

export interface Step<C, E extends object = object> {
  id: string;
  /** what it does, in a few words */
  title: string;
  /** it only reads (pre-checks, validation): it never needs an undo */
  readOnly?: boolean;
  /** whether the step exists for this context (a hook the plugin has, destinations configured); default yes */
  applies?(ctx: C): boolean;
  /** the dry run's line: what it would do (a read-only step may look, and report ok: false) */
  describe(ctx: C, scope: StepScope): string | StepOutcome<E> | Promise<string | StepOutcome<E>>;
  run(ctx: C, scope: StepScope): Promise<StepOutcome<E>>;
  /**
   * 'run' (default): the run's signal (cancel, deadline), plus timeoutMs when given;
   * 'own': a time-out of its own (timeoutMs), not cut short by a cancel (a snapshot, a rollback)
   */
  signal?: 'run' | 'own';
  /** ms this step may take (for 'own' steps; for 'run' steps an extra bound) */
  timeoutMs?(ctx: C): number;
  /** a second Ctrl-C waits for it (it would leave things half done) */
  critical?: boolean;
  /** its failure is recorded and logged, but does not fail the run (best-effort cleanup) */
  optional?: boolean;
  /** 'ok' (default): while every step before succeeded; 'always': last, after a failure or a cancel too */
  when?: 'ok' | 'always';
  /** the message of the run's error when the step reports ok: false (default: '<id> failed: <detail>') */
  failMessage?(detail: string): string;
  /** what undoes this step when it or a later step fails, run in order (each recorded as a step) */
  undo?: Step<C, E>[];
}

export interface RunOptions {
  /** the run's signal: a cancel (SIGINT/SIGTERM), combined with the run's deadline if it has one */
  signal: AbortSignal;
  /** the cancel alone, to tell a cancel from a deadline (default: signal) */
  cancel?: AbortSignal;
  /** the run's deadline (epoch ms), handed to 'run' steps */
  deadline?: number;
  /** ms for 'own' steps without timeoutMs */
  ownTimeoutMs: number;
  /** where steps are recorded (null: nowhere, e.g. without a state database) */
  record: { state: StateManager; runId: number } | null;
  logger: Logger;
  /** names the work in `critical` labels ("the rollback of nextcloud") */
  subject: string;
  /** log each step's start and end at info (default: debug) */
  verbose?: boolean;
  onStep?(report: StepReport): void;
  /** called once the main steps (and any undo) are over, before the `always` steps: they may want to know */
  settled?(failure: RunResult['failure']): void;
}

export interface RunResult<E extends object = object> {
  steps: StepReport<E>[];
  /** the step that failed and what it threw, or null when all succeeded */
  failure: { step: string; error: unknown; changed: boolean } | null;
  /** 'none': nothing needed undoing; 'done': undone; 'failed': the undo failed too */
  undo: { status: 'none' | 'done' | 'failed'; error?: unknown };
  /** every optional or `always` step that failed: "<id>: <detail>" */
  warnings: string[];
}

const changesOf = (e: unknown): boolean => (e as { changed?: unknown } | null)?.changed !== false;

/** Executes a step table for one context. Never throws for a step's failure: it is in the result. */
export async function runSteps<C, E extends object = object>(steps: Step<C, E>[], ctx: C, o: RunOptions): Promise<RunResult<E>> {
  const reports: StepReport<E>[] = [];
  const warnings: string[] = [];
  const cancel = o.cancel ?? o.signal;
  const ran: { step: Step<C, E>; changed: boolean }[] = [];
  let failure: RunResult<E>['failure'] = null;
  const exec = (s: Step<C, E>): Promise<StepOutcome<E>> => execute(s, ctx, o, reports);

  for (const s of steps) {
    if (s.when === 'always' || (s.applies && !s.applies(ctx))) continue;
    if (cancel.aborted || o.signal.aborted) {
      failure = { step: s.id, error: new AutopilotError('ABORTED', `cancelled before ${s.title}`), changed: false };
      break;
    }
    try {
      const out = await exec(s);
      ran.push({ step: s, changed: out.changed ?? !s.readOnly });
      if (out.ok === false && !s.optional) {
        failure = {
          step: s.id,
          error: new AutopilotError('JOB_FAILED', s.failMessage ? s.failMessage(out.detail) : `${s.id} failed: ${out.detail}`),
          changed: false,
        };
        break;
      }
    } catch (e) {
      if (s.optional) {
        warnings.push(`${s.id}: ${describeError(e)}`);
        continue;
      }
      const changed = !s.readOnly && changesOf(e);
      ran.push({ step: s, changed });
      failure = { step: s.id, error: e, changed };
      break;
    }
  }

  const undo = failure ? await undoSteps(ran, exec) : { status: 'none' as const };
  o.settled?.(failure);
  for (const s of steps) {
    if (s.when !== 'always' || (s.applies && !s.applies(ctx))) continue;
    try {
      const out = await exec(s);
      if (out.ok === false) warnings.push(`${s.id}: ${out.detail}`);
    } catch (e) {
      warnings.push(`${s.id}: ${describeError(e)}`);
    }
  }
  return { steps: reports, failure, undo, warnings };
}

/** Runs the undo steps of what ran and changed something, newest first; the first failure stops it. */
async function undoSteps<C, E extends object>(
  ran: { step: Step<C, E>; changed: boolean }[],
  exec: (s: Step<C, E>) => Promise<StepOutcome<E>>,
): Promise<RunResult<E>['undo']> {
  const todo = ran.filter((r) => r.changed && r.step.undo?.length).reverse();
  if (!todo.length) return { status: 'none' };
  for (const { step } of todo) {
    for (const u of step.undo ?? []) {
      try {
        const out = await exec({ signal: 'own', critical: true, ...u });
        if (out.ok === false) {
          return {
            status: 'failed',
            error: new AutopilotError('JOB_FAILED', u.failMessage ? u.failMessage(out.detail) : `${u.id} failed: ${out.detail}`),
          };
        }
      } catch (e) {
        return { status: 'failed', error: e };
      }
    }
  }
  return { status: 'done' };
}

/** One step: its signal, its record, its report. Throws what the step threw. */
async function execute<C, E extends object>(s: Step<C, E>, ctx: C, o: RunOptions, reports: StepReport<E>[]): Promise<StepOutcome<E>> {
  const timeoutMs = s.timeoutMs?.(ctx) ?? (s.signal === 'own' ? o.ownTimeoutMs : undefined);
  // our own timer, held until the step ends: a bare AbortSignal.timeout can be collected (and
  // its time-out lost) on Node 20 while nothing else refers to it
  const budget = timeoutMs === undefined ? null : deadlineSignal(timeoutMs, s.signal === 'own' ? undefined : o.signal);
  const scope: StepScope = budget
    ? {
        signal: budget.signal,
        deadline: Math.min(s.signal === 'own' ? Infinity : (o.deadline ?? Infinity), Date.now() + (timeoutMs as number)),
      }
    : { signal: o.signal, deadline: o.deadline };
  try {
    return await attempt(s, ctx, o, reports, scope);
  } finally {
    budget?.clear();
  }
}

async function attempt<C, E extends object>(
  s: Step<C, E>,
  ctx: C,
  o: RunOptions,
  reports: StepReport<E>[],
  scope: StepScope,
): Promise<StepOutcome<E>> {
  const log = o.verbose ? o.logger.info.bind(o.logger) : o.logger.debug.bind(o.logger);
  const t0 = Date.now();
  const rowId = o.record ? o.record.state.startStep(o.record.runId, s.id) : null;
  const finish = (status: StepStatus, detail: string, extra?: E): StepReport<E> => {
    const report = { step: s.id, status, detail: mask(detail), durationMs: Date.now() - t0, ...(extra ?? {}) } as StepReport<E>;
    reports.push(report);
    if (o.record && rowId !== null)
      o.record.state.finishStep(
        rowId,
        status === 'success' ? 'success' : status === 'interrupted' ? 'interrupted' : 'failed',
        report.detail,
      );
    o.onStep?.(report);
    return report;
  };
  log(`${s.id}…`);
  try {
    const work = (): Promise<StepOutcome<E>> => s.run(ctx, scope);
    const out = s.critical ? await critical.run(`the ${s.title} of ${o.subject}`, work) : await work();
    const r = finish(out.ok === false ? 'failed' : 'success', out.detail, out.extra);
    if (out.ok === false) o.logger.warn(`${s.id}: ${r.detail}`);
    else log(`${s.id}: ${r.detail}`);
    return out;
  } catch (e) {
    const cancelled = (o.cancel ?? o.signal).aborted;
    const interrupted = isAbortError(e) || cancelled;
    const r = finish(
      interrupted ? 'interrupted' : 'failed',
      interrupted && cancelled && s.signal !== 'own' ? 'cancelled' : describeError(e),
    );
    if (s.optional) o.logger.warn(`${s.id} failed: ${r.detail}`);
    else o.logger.error(`${s.id} failed: ${r.detail}`);
    throw e;
  }
}

/**
 * The dry run of a table: each step that applies says what it would do, main steps in order,
 * then the undo steps ("on failure"), newest owner first. Nothing is recorded.
 */
export async function planSteps<C, E extends object = object>(
  steps: Step<C, E>[],
  ctx: C,
  o: { signal: AbortSignal; deadline?: number },
): Promise<StepReport<E>[]> {
  const out: StepReport<E>[] = [];
  const describe = async (s: Step<C, E>): Promise<void> => {
    const t0 = Date.now();
    const d = await s.describe(ctx, { signal: o.signal, deadline: o.deadline });
    const outcome: StepOutcome<E> = typeof d === 'string' ? { detail: d } : d;
    out.push({
      step: s.id,
      status: outcome.ok === false ? 'failed' : 'planned',
      detail: mask(outcome.detail),
      durationMs: Date.now() - t0,
      ...(outcome.extra ?? {}),
    } as StepReport<E>);
  };
  const applicable = steps.filter((s) => !s.applies || s.applies(ctx));
  for (const s of applicable) await describe(s);
  for (const s of [...applicable].reverse()) for (const u of s.undo ?? []) await describe(u);
  return out;
}

/**
 * What a report says of an error that ended a run: interrupted (the run's signal aborted, or
 * the error is an abort) or failed, the masked message, the hint and the error's code.
 */
export function failureOf(
  e: unknown,
  signal: AbortSignal,
): { status: 'interrupted' | 'failed'; error: string; hint?: string; code?: string } {
  return {
    status: signal.aborted || isAbortError(e) ? 'interrupted' : 'failed',
    error: mask(describeError(e)),
    hint: (e as { hint?: string } | null)?.hint,
    code: e instanceof AutopilotError ? e.code : undefined,
  };
}
