/**
 * The archive strategy of the backup engine, as a step table: the service's plugin says what
 * to archive (its beforeBackup hook first), we write a verified compressed archive, record it,
 * copy it to every destination (each copy verified), prune with the keep-* policy, and call the
 * plugin's afterBackup whatever happened. The lifecycle runner executes the table (one deadline
 * for the service, each step in run_steps); --dry-run asks the same table what it would do.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanStalePartials, copyArchive, createArchive, DEFAULT_LEVEL, EXTENSION, listSelection, verifyArchive } from '../../lib/archive';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager, VerifyStatus } from '../../lib/state';
import { stampName } from '../../lib/time';
import { callPlugin } from '../plugins/call';
import type { BackupPath, BackupSources, OperationContext, ServiceConfig, ServicePlugin } from '../plugins/contract';
import { planSteps, runSteps, type Step, type StepScope } from '../steps/runner';
import { archiveDecisions, destinations, type Destination } from './prune';
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

interface Sources {
  present: string[];
  all: (BackupPath & { present: boolean })[];
  exclude: string[];
  warnings: string[];
}

interface ArchiveCtx {
  svc: ServiceConfig & { timeout?: number };
  plugin: ServicePlugin;
  deps: RunnerDeps;
  log: Logger;
  result: ServiceBackupResult;
  dest: { primary: Destination; copies: Destination[] };
  runId: number;
  when: Date;
  hookRan?: boolean;
  src?: Sources;
  archive?: { path: string; size: number; sha256: string };
  verify?: { at: string; status: VerifyStatus; detail: string };
}

type Plan = Partial<ServicePlan> & { warnings?: string[] };
type ArchiveStep = Step<ArchiveCtx, Plan>;

const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

const op = (ctx: ArchiveCtx, scope: StepScope, dryRun = false): OperationContext => ({
  signal: scope.signal,
  deadline: scope.deadline,
  logger: ctx.deps.logger.child(`plugin:${ctx.svc.type}`),
  dryRun,
});

const hook = (
  ctx: ArchiveCtx,
  name: 'beforeBackup' | 'afterBackup' | 'backupSources',
  scope: StepScope,
  fn: () => unknown,
): Promise<unknown> =>
  callPlugin({ plugin: ctx.svc.type, operation: name, signal: scope.signal, what: `the ${name} step`, logger: ctx.log }, fn);

/** Renames an archive that failed verification to <name>.failed (a free name), so it never looks complete. */
async function setAside(file: string): Promise<string> {
  let target = `${file}.failed`;
  for (let n = 2; fs.existsSync(target); n++) target = `${file}.failed-${n}`;
  await fs.promises.rename(file, target);
  return target;
}

/** A free archive name for the service at a time: <root>/<service>/<service>_YYYYMMDD_HHMMSS[-N].<ext> */
function archivePath(ctx: ArchiveCtx, when: Date): string {
  const dir = path.join(ctx.deps.config.backup.root, ctx.svc.name);
  const base = `${ctx.svc.name}_${stampName(when)}`;
  const ext = EXTENSION[ctx.deps.config.backup.compression];
  let candidate = path.join(dir, base + ext);
  for (let n = 2; fs.existsSync(candidate); n++) candidate = path.join(dir, `${base}-${n}${ext}`);
  return candidate;
}

/** What the plugin says to archive, checked: absolute paths, links followed, required ones present. */
async function sources(ctx: ArchiveCtx, scope: StepScope, dryRun: boolean): Promise<Sources> {
  const { svc, plugin } = ctx;
  const src = (await hook(ctx, 'backupSources', scope, () => plugin.backupSources(svc, op(ctx, scope, dryRun)))) as
    BackupSources | undefined;
  if (!src || !Array.isArray(src.paths))
    throw new AutopilotError('PLUGIN_OUTPUT', `the ${svc.type} plugin returned no paths for '${svc.name}'`);
  const warnings: string[] = [];
  const all = src.paths.map((p) => {
    if (typeof p?.path !== 'string' || !path.isAbsolute(p.path)) {
      throw new AutopilotError('PLUGIN_OUTPUT', `the ${svc.type} plugin returned a path that is not absolute: ${JSON.stringify(p?.path)}`);
    }
    let real = p.path;
    try {
      if (fs.lstatSync(p.path).isSymbolicLink()) {
        // tar would store the link itself, not the data behind it
        real = fs.realpathSync(p.path);
        warnings.push(`${p.path} is a symbolic link: archiving ${real}, what it points to`);
      }
    } catch {
      /* missing, or a dangling link: reported as missing below */
    }
    return { ...p, path: real, present: fs.existsSync(real) };
  });
  // on a dry run the beforeBackup hook has not run, and may be what creates a path
  const deferred = dryRun && typeof plugin.beforeBackup === 'function';
  const missing = all.filter((p) => !p.present && p.required && !deferred);
  if (missing.length) {
    throw new AutopilotError('SOURCE_MISSING', `${missing.map((p) => p.path).join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist`, {
      hint: `fix the paths of service '${svc.name}' in the config, or remove them`,
    });
  }
  for (const p of all) {
    if (!p.present)
      warnings.push(
        p.required
          ? `${p.path} does not exist yet; the plugin's beforeBackup step must create it`
          : `${p.path} does not exist here; skipped`,
      );
  }
  const present = all.filter((p) => p.present).map((p) => p.path);
  if (!present.length && !deferred)
    throw new AutopilotError('SOURCE_MISSING', 'none of the paths to back up exist', { hint: `check the paths of service '${svc.name}'` });
  return { present, all, exclude: src.exclude ?? [], warnings };
}

function record(ctx: ArchiveCtx, destination: string, location: string, v?: { at: string; status: VerifyStatus; detail: string }): void {
  const a = ctx.archive as NonNullable<ArchiveCtx['archive']>;
  (ctx.deps.state as StateManager).addArtifact({
    runId: ctx.runId,
    service: ctx.svc.name,
    destination,
    location,
    size: a.size,
    sha256: a.sha256,
    createdAt: ctx.when.toISOString(),
    verifiedAt: v?.at ?? null,
    verifyStatus: v?.status ?? null,
    verifyDetail: v?.detail ?? null,
  });
}

/** One verified copy; a failed copy is recorded (set aside) and reported, and the next destination goes on. */
async function copyTo(ctx: ArchiveCtx, d: Destination, signal: AbortSignal): Promise<void> {
  const a = ctx.archive as NonNullable<ArchiveCtx['archive']>;
  const target = path.join(d.path, ctx.svc.name, path.basename(a.path));
  try {
    await cleanStalePartials(path.dirname(target));
    await copyArchive(a.path, target, signal);
    const v = await verifyArchive(target, { size: a.size, sha256: a.sha256 }, { signal });
    if (signal.aborted) throw new AutopilotError('ABORTED', 'the copy was cancelled');
    const location = v.ok ? target : await setAside(target);
    record(ctx, d.name, location, {
      at: new Date().toISOString(),
      status: v.ok ? 'ok' : 'failed',
      detail: v.ok ? entries(v.entries) : String(v.error),
    });
    if (!v.ok) throw new AutopilotError('VERIFY_FAILED', `the copy failed verification (kept as ${location}): ${v.error}`);
    ctx.result.copies.push({ destination: d.name, path: target, ok: true });
    ctx.log.info(`copied to ${d.name}: ${target}`);
  } catch (e) {
    if (isAbortError(e) || signal.aborted) throw e;
    ctx.result.copies.push({ destination: d.name, path: target, ok: false, error: mask(describeError(e)) });
    ctx.log.error(`copy to ${d.name} failed: ${describeError(e)}`);
  }
}

/** Removes what retention no longer keeps at one destination (re-reading `protected` just before). */
async function pruneAt(ctx: ArchiveCtx, d: Destination): Promise<void> {
  const state = ctx.deps.state as StateManager;
  for (const p of archiveDecisions(state, ctx.svc, d, ctx.deps.config.backup.verify)) {
    if (p.decision.mark !== 'remove') continue;
    // protected since the decision was taken (backups protect in another shell)?
    if (state.getArtifact(p.artifact.id)?.protected) continue;
    const row = { destination: d.name, path: p.artifact.location, reason: p.decision.reason };
    try {
      await fs.promises.rm(p.artifact.location, { force: true });
      state.markArtifactDeleted(p.artifact.id);
      ctx.result.pruned.push({ ...row, ok: true });
      ctx.log.info(`pruned ${p.artifact.location} (${p.decision.reason})`);
    } catch (e) {
      ctx.result.pruned.push({ ...row, ok: false, error: describeError(e) });
      ctx.log.warn(`could not prune ${p.artifact.location}: ${describeError(e)}`);
    }
  }
}

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
      ctx.when = ctx.deps.clock.now();
      const dest = archivePath(ctx, ctx.when);
      for (const r of await cleanStalePartials(path.dirname(dest)))
        ctx.log.info(`removed ${r}, left unfinished by an earlier run that was killed`);
      ctx.log.info(`archiving ${src.present.join(', ')} into ${dest}`);
      const t0 = Date.now();
      const archive = await createArchive({
        sources: src.present,
        exclude: src.exclude,
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
      const v = await verifyArchive(a.path, { size: a.size, sha256: a.sha256 }, { signal: scope.signal });
      if (scope.signal.aborted) throw new AutopilotError('ABORTED', 'verification was cancelled');
      ctx.verify = { at: new Date().toISOString(), status: v.ok ? 'ok' : 'failed', detail: v.ok ? entries(v.entries) : String(v.error) };
      const out = ctx.result.archive as NonNullable<ServiceBackupResult['archive']>;
      out.entries = v.entries;
      out.verified = v.ok;
      if (!v.ok) {
        // renamed, so that it neither looks complete nor takes a place in retention
        const failed = await setAside(a.path);
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
