/**
 * The archive strategy of the backup engine, as a step table: the service's plugin says what
 * to archive (its beforeBackup hook first), we write a verified compressed archive, record it,
 * copy it to every destination (each copy verified), prune with the keep-* policy, and call the
 * plugin's afterBackup whatever happened. The lifecycle runner executes the table (one deadline
 * for the service, each step in run_steps); --dry-run asks the same table what it would do.
 * The parts the steps are made of are in ./archive-parts.ts.
 */
import * as path from 'node:path';
import { cleanStalePartials, createArchive, DEFAULT_LEVEL, listSelection, verifyArchive } from '../../lib/archive';
import { AutopilotError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import type { ServiceConfig, ServicePlugin } from '../plugins/contract';
import { planSteps, runSteps } from '../steps/runner';
import {
  archivePath,
  copyTo,
  entries,
  hook,
  op,
  PENDING,
  pruneAt,
  record,
  setAside,
  sources,
  type ArchiveCtx,
  type ArchiveStep,
  type Plan,
  type Sources,
} from './archive-parts';
import { assertMounted } from '../../lib/fsx';
import { finishLeftovers, recordWarnings } from './archive-checks';
import { archiveDecisions, destinations } from './prune';
import {
  emptyResult,
  PRIMARY,
  runStatus,
  serviceDeadline,
  toFailure,
  type RunnerDeps,
  type ServiceBackupResult,
  type ServicePlan,
} from './types';

export const ARCHIVE_STEPS: ArchiveStep[] = [
  {
    id: 'before',
    title: "the plugin's beforeBackup step",
    applies: (ctx) => typeof ctx.plugin.beforeBackup === 'function',
    describe: () => "the plugin's beforeBackup step (not run on a dry run)",
    async run(ctx, scope) {
      ctx.hookRan = true;
      const before = (ctx.plugin.beforeBackup as NonNullable<ServicePlugin['beforeBackup']>).bind(ctx.plugin);
      await hook(ctx, 'beforeBackup', scope, () => before(ctx.svc, op(ctx, scope)));
      return { detail: 'done' };
    },
  },
  {
    id: 'sources',
    title: 'what to archive',
    readOnly: true,
    async describe(ctx, scope) {
      const src = await sources(ctx, scope, true);
      const sel = src.present.length ? await listSelection(src.present, src.exclude, scope.signal) : { files: 0, bytes: 0 };
      const list = src.all.map((p) => ({ path: p.path, present: p.present, required: p.required }));
      return {
        detail: `${sel.files} files`,
        extra: { sources: list, exclude: src.exclude, files: sel.files, bytes: sel.bytes, warnings: src.warnings },
      };
    },
    async run(ctx, scope) {
      ctx.src = await sources(ctx, scope, false);
      ctx.result.warnings.push(...ctx.src.warnings);
      for (const w of ctx.src.warnings) ctx.log.warn(w);
      return { detail: ctx.src.present.join(', ') };
    },
  },
  {
    id: 'archive',
    title: 'the archive',
    describe: (ctx) => ({ detail: 'write the archive', extra: { archive: archivePath(ctx, ctx.deps.clock.now()) } }),
    async run(ctx, scope) {
      const src = ctx.src as Sources;
      const b = ctx.deps.config.backup;
      // an unmounted backup disk: nothing goes to the folder it leaves behind on the root disk
      if (ctx.dest.primary.requireMount) assertMounted(b.root, 'backup.root');
      await finishLeftovers(ctx, scope.signal);
      ctx.when = ctx.deps.clock.now();
      const dest = archivePath(ctx, ctx.when);
      for (const r of await cleanStalePartials(path.dirname(dest)))
        ctx.log.info(`removed ${r}, left unfinished by an earlier run that was killed`);
      ctx.log.info(`archiving ${src.present.join(', ')} into ${dest}`);
      const t0 = Date.now();
      const archive = await createArchive({
        sources: src.present,
        exclude: src.exclude,
        storeAs: src.storeAs,
        compression: b.compression,
        level: b.compression_level ?? DEFAULT_LEVEL[b.compression],
        threads: b.compression_threads,
        dest,
        signal: scope.signal,
        onProgress: (bytes) => ctx.deps.onEvent?.({ type: 'progress', service: ctx.svc.name, bytes, elapsedMs: Date.now() - t0 }),
        onRetry: (why) => ctx.log.warn(why),
      });
      ctx.result.warnings.push(...archive.warnings);
      for (const w of archive.warnings) ctx.log.warn(w);
      ctx.archive = { path: archive.path, size: archive.size, sha256: archive.sha256 };
      ctx.result.archive = { ...ctx.archive, entries: null, verified: false };
      // recorded at once: a run killed while it verifies leaves a record the next run finishes
      ctx.archiveId = record(ctx, PRIMARY, archive.path, ctx.deps.config.backup.verify ? PENDING() : undefined);
      return { detail: `${archive.path}: ${archive.size} bytes` };
    },
  },
  {
    id: 'verify',
    title: 'verification',
    applies: (ctx) => ctx.deps.config.backup.verify,
    describe: () => 'size, sha256, a full decompress and a tar listing',
    async run(ctx, scope) {
      const a = ctx.archive as NonNullable<ArchiveCtx['archive']>;
      const t0 = Date.now();
      const v = await verifyArchive(
        a.path,
        { size: a.size, sha256: a.sha256 },
        {
          signal: scope.signal,
          onProgress: (bytes, total) =>
            ctx.deps.onEvent?.({ type: 'progress', service: ctx.svc.name, bytes, elapsedMs: Date.now() - t0, phase: 'verify', total }),
        },
      );
      if (scope.signal.aborted) throw new AutopilotError('ABORTED', 'verification was cancelled');
      ctx.verify = { at: new Date().toISOString(), status: v.ok ? 'ok' : 'failed', detail: v.ok ? entries(v.entries) : String(v.error) };
      const out = ctx.result.archive as NonNullable<ServiceBackupResult['archive']>;
      out.entries = v.entries;
      out.verified = v.ok;
      if (!v.ok) {
        // renamed, so that it neither looks complete nor takes a place in retention
        const failed = await setAside(a.path);
        if (ctx.archiveId !== undefined) (ctx.deps.state as StateManager).markArtifactDeleted(ctx.archiveId);
        out.path = failed;
        record(ctx, PRIMARY, failed, ctx.verify);
        throw new AutopilotError('VERIFY_FAILED', `the new archive failed verification: ${v.error}`, {
          hint: `it is kept as ${failed} for inspection; check the disk and run the backup again`,
        });
      }
      ctx.log.info(`verified ${a.path}: ${entries(v.entries)}, sha256 ${a.sha256.slice(0, 12)}…`);
      return { detail: entries(v.entries) };
    },
  },
  {
    id: 'record',
    title: 'the record in state',
    describe: () => 'recorded in state',
    async run(ctx) {
      record(ctx, PRIMARY, (ctx.archive as NonNullable<ArchiveCtx['archive']>).path, ctx.verify);
      return { detail: PRIMARY };
    },
  },
  {
    id: 'copy',
    title: 'copies',
    applies: (ctx) => ctx.dest.copies.length > 0,
    describe: (ctx) => ({
      detail: ctx.dest.copies.map((d) => d.name).join(', '),
      extra: {
        copies: ctx.dest.copies.map((d) => ({
          destination: d.name,
          path: path.join(d.path, ctx.svc.name, path.basename(archivePath(ctx, ctx.deps.clock.now()))),
        })),
      },
    }),
    async run(ctx, scope) {
      for (const d of ctx.dest.copies) await copyTo(ctx, d, scope.signal);
      const bad = ctx.result.copies.filter((c) => !c.ok).length;
      return { detail: `${ctx.result.copies.length - bad} of ${ctx.result.copies.length} copied` };
    },
  },
  {
    id: 'prune',
    title: 'retention',
    describe(ctx) {
      const prune: ServicePlan['prune'] = [];
      for (const d of [ctx.dest.primary, ...ctx.dest.copies]) {
        for (const p of archiveDecisions(ctx.deps.state, ctx.svc, d, ctx.deps.config.backup.verify, ctx.deps.clock.now())) {
          if (p.decision.mark === 'remove') prune.push({ destination: d.name, path: p.artifact.location, reason: p.decision.reason });
        }
      }
      return { detail: `${prune.length} to remove`, extra: { prune } };
    },
    // only after a good backup, destination by destination (a destination whose copy failed keeps all it has)
    async run(ctx) {
      for (const w of recordWarnings(ctx)) {
        ctx.result.warnings.push(w);
        ctx.log.warn(w);
      }
      for (const d of [ctx.dest.primary, ...ctx.dest.copies]) {
        if (d.name === PRIMARY || ctx.result.copies.find((c) => c.destination === d.name)?.ok) await pruneAt(ctx, d);
      }
      return { detail: `${ctx.result.pruned.filter((p) => p.ok).length} removed` };
    },
  },
  {
    id: 'after',
    title: "the plugin's afterBackup step",
    // after a time-out or a cancel too (to restart what beforeBackup stopped), with a minute of its own
    when: 'always',
    signal: 'own',
    timeoutMs: () => 60_000,
    applies: (ctx) => typeof ctx.plugin.afterBackup === 'function' && ctx.hookRan === true,
    describe: () => "the plugin's afterBackup step (not run on a dry run)",
    async run(ctx, scope) {
      const after = (ctx.plugin.afterBackup as NonNullable<ServicePlugin['afterBackup']>).bind(ctx.plugin);
      const outcome = { ok: ctx.result.status === 'success', error: ctx.result.error };
      await hook(ctx, 'afterBackup', scope, () => after(ctx.svc, op(ctx, scope), outcome));
      return { detail: 'done' };
    },
  },
];

export class ArchiveBackupRunner {
  private readonly log: Logger;
  constructor(private readonly deps: RunnerDeps) {
    this.log = deps.logger.child('backup');
  }

  private context(svc: ServiceConfig, runId: number, result: ServiceBackupResult): ArchiveCtx {
    const plugin = this.deps.registry.require<ServicePlugin>('service', svc.type, `service '${svc.name}'`);
    return {
      svc,
      plugin,
      deps: this.deps,
      log: this.log.child(svc.name),
      result,
      dest: destinations(this.deps.config, svc),
      runId,
      when: this.deps.clock.now(),
    };
  }

  /** --dry-run: what the table would do, assembled into the service's plan. */
  async plan(svc: ServiceConfig): Promise<ServiceBackupResult> {
    const started = Date.now();
    const result = emptyResult(svc);
    try {
      const steps = await planSteps(ARCHIVE_STEPS, this.context(svc, -1, result), { signal: this.deps.signal });
      const plan: ServicePlan = { sources: [], exclude: [], files: 0, bytes: 0, archive: '', copies: [], prune: [] };
      for (const s of steps) {
        const { warnings, ...parts } = s as Plan;
        result.warnings.push(...(warnings ?? []));
        for (const k of Object.keys(plan) as (keyof ServicePlan)[]) if (parts[k] !== undefined) Object.assign(plan, { [k]: parts[k] });
      }
      return { ...result, status: 'planned', durationMs: Date.now() - started, plan };
    } catch (e) {
      return toFailure(result, e, started, this.deps.signal, this.log);
    }
  }

  /** Backs one service up; never throws (a failure is the result). */
  async run(svc: ServiceConfig & { timeout?: number }, jobRunId: number | null): Promise<ServiceBackupResult> {
    const state = this.deps.state as StateManager;
    const started = Date.now();
    const runId = state.startRun('backup', svc.name, { parentId: jobRunId });
    // one deadline for everything this service does: hooks, archive, verification, copies
    const { timeoutMs, deadline, signal, until } = serviceDeadline(this.deps.config, svc, this.deps.signal);
    const result = emptyResult(svc);
    const log = this.log.child(svc.name);
    const fail = (e: unknown): void => {
      const timedOut = deadline.aborted && !this.deps.signal.aborted;
      const err = timedOut
        ? new AutopilotError('TIMEOUT', `the backup did not finish within ${timeoutMs / 1000}s`, {
            hint: `raise timeout for service '${svc.name}' (or backup.timeout)`,
          })
        : e;
      Object.assign(result, toFailure(result, err, started, this.deps.signal, this.log));
      if (result.status === 'failed') log.error(`backup of ${svc.name} failed: ${result.error}`);
    };
    try {
      const ctx = this.context(svc, runId, result);
      const run = await runSteps(ARCHIVE_STEPS, ctx, {
        signal,
        cancel: this.deps.signal,
        deadline: until,
        ownTimeoutMs: 60_000,
        record: { state, runId },
        logger: log,
        subject: svc.name,
        // the afterBackup step is told how the backup went
        settled: (failure) => {
          if (failure) return fail(failure.error);
          const failedCopies = result.copies.filter((c) => !c.ok);
          if (failedCopies.length) {
            result.status = 'failed';
            result.error = `copy to ${failedCopies.map((c) => c.destination).join(', ')} failed: ${failedCopies.map((c) => c.error).join('; ')}`;
          }
        },
      });
      for (const s of run.steps)
        if (s.step === 'after' && s.status !== 'success') result.warnings.push(`afterBackup step failed: ${s.detail}`);
    } catch (e) {
      fail(e);
    } finally {
      result.durationMs = Date.now() - started;
      result.warnings = result.warnings.map(mask);
      state.finishRun(runId, runStatus(result), {
        error: result.error,
        archive: result.archive?.path,
        size: result.archive?.size,
        copies: result.copies.length,
        pruned: result.pruned.length,
        warnings: result.warnings,
      });
    }
    return result;
  }
}
