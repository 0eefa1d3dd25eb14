/**
 * The update of one service as a step table (core/steps/runner.ts runs it, and --dry-run
 * prints it): pre-checks, snapshot, update, validation, cleanup; the update step's undo is the
 * rollback and a second validation. A snapshot and a rollback run under time-outs of their own,
 * so that a SIGINT which cancelled the update still lets the rollback finish.
 */
import * as os from 'node:os';
import type { Clock } from '../../lib/async';
import { describeError } from '../../lib/errors';
import { AutopilotError } from '../../lib/errors';
import type { StateManager } from '../../lib/state';
import { stampName } from '../../lib/time';
import { describeCheck, runChecks, type CheckResult, type HealthCheck } from '../health/checks';
import type { OperationContext, ServiceConfig, SnapshotInfo } from '../plugins/contract';
import type { Step, StepOutcome, StepScope } from '../steps/runner';
import { SNAP_PREFIX, type Driver, type UpdateSettings } from './types';
import { markInflight } from './unfinished';

export interface UpdateCtx {
  svc: ServiceConfig;
  driver: Driver;
  settings: UpdateSettings;
  state: StateManager | null;
  clock: Clock;
  /** the operation context a plugin call gets */
  op(scope: StepScope, dryRun?: boolean): OperationContext;
  /** what the driver would do (the dry run's words), asked once */
  describe(): Promise<{ snapshot: string; update: string; rollback: string }>;
  /** set by the snapshot step */
  snapshot?: SnapshotInfo;
  /** set by the update step: false when there was nothing to update */
  changed?: boolean;
  /** set by the prepare step: nothing new, so nothing else runs */
  upToDate?: boolean;
  /** the service's run in state (the marker of an update under way names it) */
  runId?: number | null;
}

type Outcome = StepOutcome<{ checks: CheckResult[] }>;
type UpdateStep = Step<UpdateCtx, { checks: CheckResult[] }>;

/** The service's health checks; without any, `running` when the driver can tell. */
export function checksOf(ctx: Pick<UpdateCtx, 'svc' | 'driver'>): HealthCheck[] {
  // how old the last backup is says nothing about whether an update worked: the monitor's alone
  const own = ((ctx.svc.health_checks as HealthCheck[] | undefined) ?? []).filter((c) => c.type !== 'backup');
  if (own.length) return own;
  return ctx.driver.running ? [{ type: 'running' }] : [];
}

const runningOf = (ctx: UpdateCtx, op: OperationContext): (() => Promise<boolean>) | undefined => {
  const driver = ctx.driver;
  return driver.running ? () => (driver.running as NonNullable<Driver['running']>).call(driver, op) : undefined;
};

/** What forbids an update now: a lock held by another run, bad health, the driver's own checks. */
export async function prechecks(ctx: UpdateCtx, op: OperationContext): Promise<{ list: string[]; checks: CheckResult[] }> {
  const list: string[] = [];
  for (const lock of ['backup', `update.${ctx.svc.name}`]) {
    const holder = ctx.state?.liveLockHolder(lock);
    if (holder && !(holder.pid === process.pid && holder.host === os.hostname())) {
      list.push(`the ${lock} lock is held by pid ${holder.pid} on ${holder.host} (${holder.command ?? 'another run'})`);
    }
  }
  const health = await runChecks(checksOf(ctx), { signal: op.signal, running: runningOf(ctx, op) });
  for (const r of health.results) if (!r.ok) list.push(`not healthy now: ${r.check}: ${r.detail}`);
  list.push(...(await ctx.driver.precheck(op, ctx.settings)));
  return { list, checks: health.results };
}

/** The containers or processes of the service and when each started ("" when the driver cannot tell). */
async function startsOf(ctx: UpdateCtx, op: OperationContext): Promise<Map<string, string> | null> {
  if (!ctx.driver.starts) return null;
  const list = await ctx.driver.starts(op);
  return new Map(list.map((x) => [x.id, `${x.startedAt}#${x.restarts ?? 0}`]));
}

/** What restarted (or appeared, or went) between two looks, or null. */
function restarted(before: Map<string, string> | null, now: Map<string, string> | null): string | null {
  if (!before || !now) return null;
  const changed = [...new Set([...before.keys(), ...now.keys()])].filter((id) => before.get(id) !== now.get(id));
  return changed.length ? changed.map((id) => id.slice(0, 12)).join(', ') : null;
}

/**
 * Health checks, every check_interval, on the injected clock. The service has up to
 * settle_seconds to become healthy; from its first passing round it must then stay healthy for
 * the whole settle_seconds, every round passing and no container or process restarting (when
 * the driver can tell), so that a release that crashes a few seconds after it started fails.
 */
export async function validate(ctx: UpdateCtx, op: OperationContext): Promise<Outcome> {
  const checks = checksOf(ctx);
  const s = ctx.settings;
  if (!checks.length) return { detail: 'no health checks configured', extra: { checks: [] } };
  const now = (): number => ctx.clock.now().getTime();
  const start = now();
  const rounds = (n: number): string => `${n} round${n > 1 ? 's' : ''}`;
  const secs = (ms: number): string => `${Math.round(ms / 100) / 10}s`;
  const bad = (r: { results: CheckResult[] }): string =>
    r.results
      .filter((x) => !x.ok)
      .map((x) => `${x.check}: ${x.detail}`)
      .join('; ');
  let since: number | null = null;
  let baseline: Map<string, string> | null = null;
  for (let round = 1; ; round++) {
    const r = await runChecks(checks, { signal: op.signal, running: runningOf(ctx, op) });
    const t = now();
    if (r.ok && since === null) {
      since = t;
      baseline = await startsOf(ctx, op);
    } else if (r.ok && since !== null) {
      const which = restarted(baseline, await startsOf(ctx, op));
      if (which)
        return {
          ok: false,
          detail: `restarted within the settle window (${which}), ${secs(t - since)} after it was first healthy`,
          extra: { checks: r.results },
        };
    } else if (since !== null) {
      return {
        ok: false,
        detail: `unhealthy again ${secs(t - since)} after it was first healthy: ${bad(r)}`,
        extra: { checks: r.results },
      };
    } else if (t + s.intervalMs > start + s.settleMs || op.signal.aborted) {
      return {
        ok: false,
        detail: `still unhealthy after ${rounds(round)} (${s.settleMs / 1000}s): ${bad(r)}`,
        extra: { checks: r.results },
      };
    }
    if (since !== null && t - since >= s.settleMs) {
      return {
        detail: `healthy for ${s.settleMs / 1000}s (${rounds(round)}): ${r.results.map((x) => `${x.check}: ${x.detail}`).join(', ')}`,
        extra: { checks: r.results },
      };
    }
    // the last round falls on the end of the window
    await ctx.clock.sleep(since === null ? s.intervalMs : Math.min(s.intervalMs, since + s.settleMs - t), op.signal);
  }
}

const timeout = (ctx: UpdateCtx): number => ctx.settings.timeoutMs;

export const rollback: UpdateStep = {
  id: 'rollback',
  title: 'rollback',
  signal: 'own',
  critical: true,
  timeoutMs: timeout,
  describe: async (ctx) => (await ctx.describe()).rollback,
  async run(ctx, scope) {
    const snap = ctx.snapshot as SnapshotInfo;
    await ctx.driver.rollback(snap, ctx.op(scope));
    return { detail: `back to ${snap.id}` };
  },
};

export const revalidate: UpdateStep = {
  id: 'revalidate',
  title: 'validation after the rollback',
  readOnly: true,
  signal: 'own',
  timeoutMs: timeout,
  failMessage: (detail) => `after the rollback the service is still unhealthy: ${detail}`,
  describe: () =>
    'the same health checks; then a rollback_executed alert (or, if that fails too, a critical alert with what to do by hand)',
  run: (ctx, scope) => validate(ctx, ctx.op(scope)),
};

/** The table. */
export const UPDATE_STEPS: UpdateStep[] = [
  {
    id: 'precheck',
    title: 'pre-checks: healthy now, enough free space, no other job holds its lock',
    readOnly: true,
    async describe(ctx, scope) {
      const p = await prechecks(ctx, ctx.op(scope, true));
      const checks = checksOf(ctx);
      return p.list.length
        ? { ok: false, detail: `would stop here: ${p.list.join('; ')}`, extra: { checks: p.checks } }
        : {
            detail: `would pass now (${checks.length ? checks.map(describeCheck).join(', ') : 'no health checks'}; lock free; free space)`,
            extra: { checks: p.checks },
          };
    },
    async run(ctx, scope) {
      const p = await prechecks(ctx, ctx.op(scope));
      if (p.list.length)
        throw new AutopilotError('JOB_FAILED', `pre-checks failed: ${p.list.join('; ')}`, {
          hint: 'nothing was changed; fix that and run the update again',
        });
      return {
        detail: `passed (${p.checks.map((c) => c.check).join(', ') || 'no health checks'}; lock free; free space)`,
        extra: { checks: p.checks },
      };
    },
  },
  {
    id: 'prepare',
    title: 'fetch the new version and compare it with what runs',
    // it changes nothing the service uses (images are pulled, nothing is recreated)
    readOnly: true,
    applies: (ctx) => ctx.driver.prepare !== undefined,
    describe: (ctx) =>
      `${ctx.svc.type}: fetch the new version (nothing is stopped); when it is what runs already: up to date, and nothing else is done`,
    async run(ctx, scope) {
      const driver = ctx.driver;
      const v = await (driver.prepare as NonNullable<Driver['prepare']>).call(driver, ctx.op(scope));
      if (!v.changed) Object.assign(ctx, { upToDate: true, changed: false });
      return { detail: v.summary };
    },
  },
  {
    id: 'snapshot',
    title: 'snapshot',
    applies: (ctx) => !ctx.upToDate,
    // not cut short by a SIGINT (a half-made snapshot, a project left stopped): a time-out of its own
    signal: 'own',
    critical: true,
    timeoutMs: timeout,
    describe: async (ctx) => `${(await ctx.describe()).snapshot}, named ${SNAP_PREFIX}<time>`,
    async run(ctx, scope) {
      // names have one-second resolution: a second update within the same second gets _2
      const base = `${SNAP_PREFIX}${stampName(ctx.clock.now())}`;
      const taken = new Set((await ctx.driver.snapshots(ctx.op(scope)).catch(() => [] as SnapshotInfo[])).map((x) => x.id));
      let name = base;
      for (let n = 2; taken.has(name); n++) name = `${base}_${n}`;
      // from here on the service may be changed: a process that dies leaves a marker the next run finds
      markInflight(ctx.state, ctx.svc.name, ctx.runId ?? null, null);
      const v = await ctx.driver.snapshot(name, ctx.op(scope));
      ctx.snapshot = v;
      markInflight(ctx.state, ctx.svc.name, ctx.runId ?? null, v.id);
      // the snapshot is kept after a rollback (and removed by later cleanups), so it has no undo
      return { detail: `${v.id}${v.description ? ` (${v.description})` : ''}` };
    },
  },
  {
    id: 'update',
    title: 'update',
    applies: (ctx) => !ctx.upToDate,
    timeoutMs: timeout,
    describe: async (ctx) => (await ctx.describe()).update,
    async run(ctx, scope) {
      try {
        const v = await ctx.driver.update(ctx.op(scope), ctx.settings);
        ctx.changed = v.changed;
        return { detail: v.summary };
      } catch (e) {
        // nothing ran (the commands never reached the guest): no rollback, and the snapshot is not needed
        if ((e as { changed?: boolean }).changed === false && ctx.snapshot) await discard(ctx, ctx.snapshot);
        throw e;
      }
    },
    undo: [rollback, revalidate],
  },
  {
    id: 'validate',
    title: 'validate: healthy over the whole settle window',
    readOnly: true,
    applies: (ctx) => !ctx.upToDate,
    failMessage: (detail) => `validation failed: ${detail}`,
    describe(ctx) {
      const checks = checksOf(ctx);
      const s = ctx.settings;
      return checks.length
        ? `${checks.map(describeCheck).join(', ')}: every ${s.intervalMs / 1000}s; healthy within ${s.settleMs / 1000}s, then for ${s.settleMs / 1000}s without a failure${ctx.driver.starts ? ' or a restart' : ''}`
        : 'no health checks configured: the update counts as good when it finishes';
    },
    run: (ctx, scope) => validate(ctx, ctx.op(scope)),
  },
  {
    id: 'cleanup',
    title: 'remove older autopilot snapshots',
    // best effort: the update is good whatever happens here
    optional: true,
    applies: (ctx) => !ctx.upToDate,
    signal: 'own',
    timeoutMs: timeout,
    async describe(ctx, scope) {
      const existing = await ctx.driver.snapshots(ctx.op(scope, true)).catch(() => [] as SnapshotInfo[]);
      const remove = existing.slice(0, Math.max(0, existing.length + 1 - ctx.settings.keep));
      return `keep the ${ctx.settings.keep} newest autopilot snapshots${remove.length ? `: would remove ${remove.map((x) => x.id).join(', ')}` : ''}`;
    },
    async run(ctx, scope) {
      const op = ctx.op(scope);
      const all = await ctx.driver.snapshots(op);
      const remove = all.filter((x) => x.id !== ctx.snapshot?.id).slice(0, Math.max(0, all.length - ctx.settings.keep));
      const done: string[] = [];
      for (const x of remove) {
        try {
          await ctx.driver.deleteSnapshot(x, op);
          done.push(x.id);
        } catch (e) {
          op.logger.warn(`could not remove snapshot ${x.id}: ${describeError(e)}`);
        }
      }
      return {
        detail: done.length ? `removed ${done.join(', ')}; kept ${all.length - done.length}` : `nothing to remove (${all.length} kept)`,
      };
    },
  },
];

/** Removes a snapshot nobody needs (best effort, under its own time-out). */
async function discard(ctx: UpdateCtx, snap: SnapshotInfo): Promise<void> {
  const signal = AbortSignal.timeout(ctx.settings.timeoutMs);
  const op = ctx.op({ signal });
  try {
    await ctx.driver.deleteSnapshot(snap, op);
  } catch (e) {
    op.logger.warn(`could not remove the unused snapshot ${snap.id}: ${describeError(e)}`);
  }
}
