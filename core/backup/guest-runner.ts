/**
 * The native strategy of the backup engine: services whose type a hypervisor plugin provides
 * are backed up by the hypervisor itself (its own backup tool). The plugin decides where each
 * backup goes (resolveBackupTarget); this runner runs one backup per node at a time with nodes
 * in parallel, and for each guest a step table: the hypervisor's backup, its verification and
 * record, and retention on storages that do not manage their own.
 */
import * as fs from 'node:fs';
import { testDecompress } from '../../lib/archive';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager, VerifyStatus } from '../../lib/state';
import type { GuestBackupResult, GuestRef, OperationContext, ServiceConfig } from '../plugins/contract';
import type { GuestProvider, GuestTarget } from '../plugins/guests';
import { planSteps, runSteps, type Step, type StepScope } from '../steps/runner';
import { guestDecisions } from './prune';
import { emptyResult, runStatus, serviceDeadline, toFailure, type RunnerDeps, type ServiceBackupResult, type ServicePlan } from './types';
import type { KeepOptions } from '../../lib/retention';
import { beginWork } from '../monitor/work';

interface GuestCtx {
  svc: ServiceConfig & { timeout?: number; retention?: KeepOptions };
  provider: GuestProvider;
  ref: GuestRef;
  target: GuestTarget;
  deps: RunnerDeps;
  log: Logger;
  result: ServiceBackupResult;
  runId: number;
  /** frees the node for its next guest once the hypervisor's task ended */
  taskEnded(): void;
  taskDone?: boolean;
  backup?: GuestBackupResult;
}

type GuestStep = Step<GuestCtx, Partial<ServicePlan>>;

const op = (ctx: GuestCtx, scope: StepScope, dryRun = false): OperationContext => ({
  signal: scope.signal,
  deadline: scope.deadline,
  logger: ctx.deps.logger.child(`plugin:${ctx.provider.name}`),
  dryRun,
  progress: (message) => ctx.deps.onEvent?.({ type: 'status', service: ctx.svc.name, message }),
});

const keepOf = (ctx: GuestCtx): KeepOptions => ctx.svc.retention ?? ctx.deps.config.backup.retention;

/** How a new backup counts: the storage's own verification; pending on a storage that verifies later; else the size and a decompress test. */
async function verification(
  ctx: GuestCtx,
  r: GuestBackupResult,
  signal: AbortSignal,
): Promise<{ status: VerifyStatus | null; detail: string }> {
  const label = ctx.target.label ?? ctx.target.storage;
  if (r.verification === 'ok') return { status: 'ok', detail: 'verified by the backup server' };
  if (r.verification === 'failed') return { status: 'failed', detail: 'the backup server reports its verification failed' };
  if (ctx.target.managed) {
    return {
      status: 'pending',
      detail: `${r.size > 0 ? `${r.size} bytes` : 'size not known yet'} ${r.verificationNote ?? `on ${label}, which verifies it later`}`,
    };
  }
  if (!(r.size > 0)) return { status: 'failed', detail: 'the storage lists it with 0 bytes' };
  if (r.localFile && fs.existsSync(r.localFile)) {
    const t = await testDecompress(r.localFile, signal);
    if (t.ok) {
      return {
        status: 'ok',
        detail: `${r.size} bytes, decompress test passed${t.entries !== undefined ? ` (${t.entries} entries)` : ''}${t.skipped ? ` (${t.skipped})` : ''}`,
      };
    }
    if (t.skipped) return { status: 'ok', detail: `${r.size} bytes (no decompress test: ${t.skipped})` };
    return { status: 'failed', detail: `decompress test of ${r.localFile}: ${t.error}` };
  }
  if (r.localFile) ctx.result.warnings.push(`${r.file ?? r.id} is not at ${r.localFile}: no decompress test`);
  // only listed: not verified
  return {
    status: null,
    detail: `${r.size} bytes listed by the storage; not verified (not readable from this host${r.localFile ? ` at ${r.localFile}` : ''}: no decompress test)`,
  };
}

export const GUEST_STEPS: GuestStep[] = [
  {
    id: 'backup',
    title: "the hypervisor's backup",
    async describe(ctx, scope) {
      const t = ctx.target;
      const i = ctx.provider.instance;
      const p = i.planBackup
        ? await ctx.provider.call('planBackup', scope.signal, (h) => h.planBackup?.(ctx.ref, t, op(ctx, scope, true)))
        : undefined;
      const plan = p ?? {
        guest: ctx.ref.id,
        node: '?',
        state: 'unknown' as const,
        storage: t.storage,
        mode: t.mode,
        compress: t.compress,
        notes: [],
      };
      ctx.result.warnings.push(...(plan.notes ?? []));
      const rule = t.rule ?? 'default';
      ctx.result.guest = { node: plan.node, storage: t.storage, kind: t.kind, mode: plan.mode, rule };
      const method = p?.method ?? 'backup';
      return {
        detail: `${method} of ${ctx.provider.label(ctx.ref)}`,
        extra: {
          archive: `${method} of ${ctx.provider.label(ctx.ref)} on ${plan.node} (${plan.state}) to ${t.storage}: mode ${plan.mode}, compress ${plan.compress}`,
          guest: {
            node: plan.node,
            state: plan.state,
            storage: t.storage,
            kind: t.kind,
            mode: plan.mode,
            compress: plan.compress,
            rule,
            method,
            label: t.label,
            managed: t.managed === true,
          },
        },
      };
    },
    async run(ctx, scope) {
      const t = ctx.target;
      ctx.log.info(
        `backing up ${ctx.provider.label(ctx.ref)} to ${t.storage} (${t.label ?? 'file storage'}, mode ${t.mode}; chosen by ${t.rule ?? 'default'})`,
      );
      // in stop or suspend mode the guest is down for a while on purpose: MAINTENANCE, not DOWN
      const endWork =
        t.mode === 'stop' || t.mode === 'suspend'
          ? beginWork(ctx.deps.state, ctx.svc.name, `backup in ${t.mode} mode (run ${ctx.runId})`, ctx.runId, 24 * 3600)
          : () => undefined;
      try {
        ctx.backup = await ctx.provider.call(
          'backupGuest',
          scope.signal,
          (h) => h.backupGuest?.(ctx.ref, t, op(ctx, scope)) as Promise<GuestBackupResult>,
          ctx.log,
        );
      } finally {
        endWork();
        ctx.taskDone = true;
        ctx.taskEnded();
      }
      const r = ctx.backup;
      ctx.result.guest = { node: r.node, storage: r.storage, kind: t.kind, mode: r.mode, rule: t.rule ?? 'default', task: r.task };
      ctx.result.warnings.push(...r.warnings.map((w) => `${r.method ?? 'backup'}: ${w}`));
      if (r.warnings.length) ctx.result.warned = true;
      return {
        detail: `${r.id} on ${r.node}${r.warnings.length ? ` (${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''})` : ''}`,
      };
    },
  },
  {
    id: 'verify',
    title: 'verification and record',
    describe: (ctx) =>
      ctx.target.managed
        ? `left to ${ctx.target.label ?? ctx.target.storage}`
        : 'the size, and a decompress test where this host can read the file',
    async run(ctx, scope) {
      const r = ctx.backup as GuestBackupResult;
      const v = await verification(ctx, r, scope.signal);
      ctx.result.archive = { path: r.id, size: r.size, sha256: '', entries: null, verified: v.status === 'ok' || v.status === 'pending' };
      (ctx.deps.state as StateManager).addArtifact({
        runId: ctx.runId,
        service: ctx.svc.name,
        destination: ctx.provider.destination(r.storage),
        location: r.id,
        size: r.size,
        sha256: null,
        createdAt: r.time,
        verifiedAt: new Date().toISOString(),
        verifyStatus: v.status,
        verifyDetail: v.detail,
        protected: r.protected,
        warning: r.warnings.length ? mask(r.warnings.map((w) => `${r.method ?? 'backup'}: ${w}`).join('; ')) : null,
      });
      if (v.status === 'failed') {
        throw new AutopilotError('VERIFY_FAILED', `${r.id}: ${v.detail}`, {
          hint: 'the backup is kept for inspection and never pruned by us; check the storage and run the backup again',
        });
      }
      ctx.log.info(`${r.id}: ${v.status ?? 'not verified'}: ${v.detail}`);
      return { detail: `${v.status ?? 'not verified'}: ${v.detail}` };
    },
  },
  {
    id: 'prune',
    title: 'retention',
    // a storage that manages its own backups (a backup server) prunes them itself
    applies: (ctx) => !ctx.target.managed && ctx.provider.can('deleteBackup'),
    describe(ctx) {
      const dest = ctx.provider.destination(ctx.target.storage);
      const prune = guestDecisions(ctx.deps.state, ctx.svc, dest, keepOf(ctx), ctx.deps.clock.now())
        .filter((d) => d.decision.mark === 'remove')
        .map((d) => ({ destination: ctx.target.storage, path: d.artifact.location, reason: d.decision.reason }));
      return { detail: `${prune.length} to remove`, extra: { prune } };
    },
    async run(ctx, scope) {
      const state = ctx.deps.state as StateManager;
      const storage = ctx.target.storage;
      for (const d of guestDecisions(state, ctx.svc, ctx.provider.destination(storage), keepOf(ctx))) {
        if (d.decision.mark !== 'remove' || state.getArtifact(d.artifact.id)?.protected) continue;
        const row = { destination: storage, path: d.artifact.location, reason: d.decision.reason };
        try {
          await ctx.provider.call('deleteBackup', scope.signal, (h) =>
            h.deleteBackup?.(ctx.ref, { id: d.artifact.location, storage }, op(ctx, scope)),
          );
          state.markArtifactDeleted(d.artifact.id);
          ctx.result.pruned.push({ ...row, ok: true });
          ctx.log.info(`pruned ${d.artifact.location} (${d.decision.reason})`);
        } catch (e) {
          if (isAbortError(e) || scope.signal.aborted) throw e;
          ctx.result.pruned.push({ ...row, ok: false, error: mask(describeError(e)) });
          ctx.log.warn(`could not prune ${d.artifact.location}: ${describeError(e)}`);
        }
      }
      return { detail: `${ctx.result.pruned.filter((p) => p.ok).length} removed` };
    },
  },
];

export class GuestBackupRunner {
  private readonly log: Logger;
  constructor(private readonly deps: RunnerDeps) {
    this.log = deps.logger.child('backup');
  }

  private provider(svc: ServiceConfig): GuestProvider {
    const p = this.deps.registry.guestProvider(svc.type);
    if (!p) throw new AutopilotError('PLUGIN_MISSING', `no hypervisor plugin provides services of type '${svc.type}'`);
    if (!p.can('backupGuest')) {
      throw new AutopilotError('USAGE', `the ${p.name} plugin cannot back up services of type ${svc.type}`, {
        hint: `set backup: false for '${svc.name}', and back its data up with a files service (or use type docker-compose for a compose project)`,
      });
    }
    return p;
  }

  private context(svc: ServiceConfig, runId: number, result: ServiceBackupResult, taskEnded: () => void = () => {}): GuestCtx {
    const provider = this.provider(svc);
    const ref = provider.ref(svc);
    const target = provider.target(ref, this.deps.config.backup);
    return { svc, provider, ref, target, deps: this.deps, log: this.log.child(svc.name), result, runId, taskEnded };
  }

  /** The node each guest runs on now (one query per hypervisor); null where it cannot be told. */
  private async nodes(svcs: ServiceConfig[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    const byProvider = new Map<GuestProvider, ServiceConfig[]>();
    for (const s of svcs) {
      const p = this.deps.registry.guestProvider(s.type);
      if (p) byProvider.set(p, [...(byProvider.get(p) ?? []), s]);
      else out.set(s.name, null);
    }
    for (const [p, list] of byProvider) {
      try {
        const o: OperationContext = { signal: this.deps.signal, logger: this.deps.logger.child(`plugin:${p.name}`), dryRun: false };
        const refs = list.map((s) => p.ref(s));
        const statuses = await p.call('guestStatuses', this.deps.signal, (h) =>
          h.guestStatuses ? h.guestStatuses(refs, o, { ips: false }) : Promise.all(refs.map((r) => h.guestStatus(r, o))),
        );
        list.forEach((s, i) => out.set(s.name, statuses[i]?.node ?? null));
      } catch (e) {
        // each backup looks its guest up again and reports the error itself
        this.log.warn(`cannot tell where the guests run: ${describeError(e)}`);
        for (const s of list) out.set(s.name, null);
      }
    }
    return out;
  }

  /** --dry-run: where each guest would be backed up, and what retention would remove. */
  async plan(svc: ServiceConfig): Promise<ServiceBackupResult> {
    const started = Date.now();
    const result = emptyResult(svc);
    try {
      const steps = await planSteps(GUEST_STEPS, this.context(svc, -1, result), { signal: this.deps.signal });
      const plan: ServicePlan = { sources: [], exclude: [], files: 0, bytes: 0, archive: '', copies: [], prune: [] };
      for (const s of steps)
        for (const k of ['archive', 'prune', 'guest'] as const) if (s[k] !== undefined) Object.assign(plan, { [k]: s[k] });
      return { ...result, status: 'planned', durationMs: Date.now() - started, plan };
    } catch (e) {
      return toFailure(result, e, started, this.deps.signal, this.log);
    }
  }

  /**
   * Backs the guests up: grouped by the node each runs on, one at a time per node, nodes in
   * parallel (backup.guests.parallel_nodes at most; 0: all). Results arrive through onDone.
   */
  async run(svcs: ServiceConfig[], jobRunId: number | null, onDone: (r: ServiceBackupResult) => void): Promise<void> {
    if (!svcs.length) return;
    const where = await this.nodes(svcs);
    const queues = new Map<string, ServiceConfig[]>();
    for (const s of svcs) {
      const key = where.get(s.name) ?? '?';
      queues.set(key, [...(queues.get(key) ?? []), s]);
    }
    const nodes = [...queues.keys()];
    const limit = this.deps.config.backup.guests.parallel_nodes || nodes.length;
    let next = 0;
    const finishing: Promise<void>[] = [];
    const worker = async (): Promise<void> => {
      while (next < nodes.length) {
        for (const svc of queues.get(nodes[next++]) ?? []) {
          if (this.deps.signal.aborted) {
            onDone({ ...emptyResult(svc), status: 'interrupted', error: 'not started: the run was cancelled' });
            continue;
          }
          // the node is free for the next guest once the hypervisor's task ended: the
          // verification (a decompress test can take minutes) runs alongside it
          let release = (): void => {};
          const freed = new Promise<void>((r) => (release = r));
          const whole = this.backupOne(svc, jobRunId, release).then(onDone);
          finishing.push(whole);
          await Promise.race([freed, whole]);
        }
      }
    };
    // every started backup is waited for, even when one fails unexpectedly
    const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, nodes.length) }, worker));
    const ends = await Promise.allSettled(finishing);
    const bad = [...settled, ...ends].find((x) => x.status === 'rejected');
    if (bad) throw bad.reason;
  }

  private async backupOne(
    svc: ServiceConfig & { timeout?: number },
    jobRunId: number | null,
    taskEnded: () => void,
  ): Promise<ServiceBackupResult> {
    const state = this.deps.state as StateManager;
    const started = Date.now();
    const { timeoutMs, deadline, signal, until } = serviceDeadline(this.deps.config, svc, this.deps.signal);
    const result = emptyResult(svc);
    const log = this.log.child(svc.name);
    let runId: number | null = null;
    let ctx: GuestCtx | null = null;
    try {
      runId = state.startRun('backup', svc.name, { parentId: jobRunId });
      ctx = this.context(svc, runId, result, taskEnded);
      const run = await runSteps(GUEST_STEPS, ctx, {
        signal,
        cancel: this.deps.signal,
        deadline: until,
        ownTimeoutMs: timeoutMs,
        record: { state, runId },
        logger: log,
        subject: svc.name,
      });
      if (run.failure) throw run.failure.error;
    } catch (e) {
      const timedOut = deadline.aborted && !this.deps.signal.aborted;
      const what = ctx?.taskDone ? 'the backup task had ended; its verification was stopped' : 'the backup task was stopped';
      const err = timedOut
        ? new AutopilotError('TIMEOUT', `the backup did not finish within ${timeoutMs / 1000}s (${what})`, {
            hint: `raise timeout for service '${svc.name}' (or backup.timeout)`,
          })
        : e;
      Object.assign(result, toFailure(result, err, started, this.deps.signal, this.log));
      if (result.status === 'failed') log.error(`backup of ${svc.name} failed: ${result.error}`);
    } finally {
      taskEnded();
      result.durationMs = Date.now() - started;
      result.warnings = result.warnings.map(mask);
      if (runId !== null) {
        state.finishRun(runId, runStatus(result), {
          error: result.error,
          archive: result.archive?.path,
          size: result.archive?.size,
          node: result.guest?.node,
          storage: result.guest?.storage,
          warnings: result.warnings,
          warned: result.warned === true,
        });
      }
    }
    return result;
  }
}
