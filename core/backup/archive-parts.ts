/**
 * The parts of an archive backup that its steps (./archive-runner.ts) are made of: what the
 * plugin says to archive, checked; the archive's name; its record in state; a verified copy to
 * one destination; retention at one destination. The context they share is ArchiveCtx.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanStalePartials, copyArchive, verifyArchive } from '../../lib/archive';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager, VerifyStatus } from '../../lib/state';
import { stampName } from '../../lib/time';
import { EXTENSION } from '../../lib/archive';
import { callPlugin } from '../plugins/call';
import type { BackupPath, BackupSources, OperationContext, ServiceConfig, ServicePlugin } from '../plugins/contract';
import type { Step, StepScope } from '../steps/runner';
import { assertMounted } from '../../lib/fsx';
import { archiveDecisions, type Destination } from './prune';
import { PRIMARY, type RunnerDeps, type ServiceBackupResult, type ServicePlan } from './types';

export interface Sources {
  present: string[];
  all: (BackupPath & { present: boolean })[];
  exclude: string[];
  /** files archived under another name (BackupSources.storeAs) */
  storeAs: { path: string; as: string }[];
  warnings: string[];
}

export interface ArchiveCtx {
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
  /** the record of the new archive at backup.root */
  archiveId?: number;
  verify?: { at: string; status: VerifyStatus; detail: string };
}

export type Plan = Partial<ServicePlan> & { warnings?: string[] };
export type ArchiveStep = Step<ArchiveCtx, Plan>;

export const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

export const op = (ctx: ArchiveCtx, scope: StepScope, dryRun = false): OperationContext => {
  const logger = ctx.deps.logger.child(`plugin:${ctx.svc.type}`);
  // a plugin's warning is the result's (its --json, a `warning` status, a warning-level alert) as well as a log line
  const warn = (message: string): void => {
    const w = mask(String(message));
    if (!ctx.result.warnings.includes(w)) ctx.result.warnings.push(w);
    if (!dryRun) ctx.result.warned = true;
    logger.warn(w);
  };
  return { signal: scope.signal, deadline: scope.deadline, logger, dryRun, warn };
};

export const hook = (
  ctx: ArchiveCtx,
  name: 'beforeBackup' | 'afterBackup' | 'backupSources',
  scope: StepScope,
  fn: () => unknown,
): Promise<unknown> =>
  callPlugin({ plugin: ctx.svc.type, operation: name, signal: scope.signal, what: `the ${name} step`, logger: ctx.log }, fn);

/** Renames an archive that failed verification to <name>.failed (a free name), so it never looks complete. */
export async function setAside(file: string): Promise<string> {
  let target = `${file}.failed`;
  for (let n = 2; fs.existsSync(target); n++) target = `${file}.failed-${n}`;
  await fs.promises.rename(file, target);
  return target;
}

/**
 * A free archive name for the service at a time: <root>/<service>/<service>_YYYYMMDD_HHMMSS[-N].<ext>,
 * free at every destination (the hour a clock falls back repeats its names, and a copy must not
 * meet a file of the same name).
 */
export function archivePath(ctx: ArchiveCtx, when: Date): string {
  const dir = path.join(ctx.deps.config.backup.root, ctx.svc.name);
  const base = `${ctx.svc.name}_${stampName(when)}`;
  const ext = EXTENSION[ctx.deps.config.backup.compression];
  const dirs = [dir, ...ctx.dest.copies.map((d) => path.join(d.path, ctx.svc.name))];
  const taken = (name: string): boolean => dirs.some((d) => fs.existsSync(path.join(d, name)));
  let name = base + ext;
  for (let n = 2; taken(name); n++) name = `${base}-${n}${ext}`;
  return path.join(dir, name);
}

/** What the plugin says to archive, checked: absolute paths, links followed, required ones present. */
export async function sources(ctx: ArchiveCtx, scope: StepScope, dryRun: boolean): Promise<Sources> {
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
  const storeAs = (src.storeAs ?? []).map((r) => {
    if (typeof r?.path !== 'string' || typeof r.as !== 'string' || !path.isAbsolute(r.path) || !path.isAbsolute(r.as))
      throw new AutopilotError('PLUGIN_OUTPUT', `the ${svc.type} plugin returned a storeAs entry that is not two absolute paths`);
    return { path: r.path, as: r.as };
  });
  return { present, all, exclude: src.exclude ?? [], storeAs, warnings };
}

export function record(
  ctx: ArchiveCtx,
  destination: string,
  location: string,
  v?: { at: string; status: VerifyStatus; detail: string },
): number {
  const a = ctx.archive as NonNullable<ArchiveCtx['archive']>;
  return (ctx.deps.state as StateManager).addArtifact({
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
export async function copyTo(ctx: ArchiveCtx, d: Destination, signal: AbortSignal): Promise<void> {
  const a = ctx.archive as NonNullable<ArchiveCtx['archive']>;
  const target = path.join(d.path, ctx.svc.name, path.basename(a.path));
  try {
    if (d.requireMount) assertMounted(d.path, `destination '${d.name}'`);
    await cleanStalePartials(path.dirname(target));
    await copyArchive(a.path, target, signal);
    // recorded at once: a run killed while it verifies leaves a record the next run finishes
    const pending = record(ctx, d.name, target, PENDING());
    const v = await verifyArchive(target, { size: a.size, sha256: a.sha256 }, { signal });
    if (signal.aborted) throw new AutopilotError('ABORTED', 'the copy was cancelled');
    if (!v.ok) (ctx.deps.state as StateManager).markArtifactDeleted(pending);
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

/** The verification of an archive just written, until it ends (a run killed meanwhile leaves it so). */
export const PENDING = (): { at: string; status: VerifyStatus; detail: string } => ({
  at: new Date().toISOString(),
  status: 'pending',
  detail: 'not verified yet',
});

/**
 * Removes what retention no longer keeps at one destination (re-reading `protected` just
 * before). The archive this run made is never removed; only files in the destination's folder are.
 */
export async function pruneAt(ctx: ArchiveCtx, d: Destination): Promise<void> {
  const state = ctx.deps.state as StateManager;
  const made = ctx.archive ? path.join(d.path, ctx.svc.name, path.basename(ctx.archive.path)) : undefined;
  const justMade = d.name === PRIMARY ? ctx.archive?.path : made;
  for (const p of archiveDecisions(state, ctx.svc, d, ctx.deps.config.backup.verify, undefined, justMade)) {
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
