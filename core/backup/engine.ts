/**
 * The backup engine, archive strategy: for each service, ask its plugin what to archive,
 * write a verified compressed archive, copy it to the other destinations (each copy
 * verified), prune with the keep-* policy, and record every step in state.
 * It continues past a failed service and reports each one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  cleanStalePartials,
  copyArchive,
  createArchive,
  DEFAULT_LEVEL,
  EXTENSION,
  listSelection,
  verifyArchive,
  type Compression,
} from '../../lib/archive';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import { assertSafeName } from '../../lib/exec';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import { computePrune, keepsSomething, type KeepOptions, type PruneDecision } from '../../lib/retention';
import type { ArtifactRecord, StateManager } from '../../lib/state';
import { namedServices } from '../config/select';
import type { AutopilotConfig } from '../config/types';
import type { BackupPath, OperationContext, ServiceConfig, ServicePlugin } from '../plugins/contract';
import type { DeliveryReport, Digest, NotificationEngine, NotifyEvent } from '../notify/engine';
import type { PluginRegistry } from '../plugins/host';
import { GuestBackupRunner } from './guests';

export const PRIMARY = 'primary';

export interface BackupRequest {
  services: string[];
  all: boolean;
  dryRun: boolean;
  /** ms to wait for another backup run (default from global.lock_wait) */
  lockWaitMs?: number;
}

export interface CopyResult {
  destination: string;
  path: string;
  ok: boolean;
  error?: string;
}

export interface PruneResult {
  destination: string;
  path: string;
  reason: string;
  /** false when deleting it failed (it stays recorded) */
  ok: boolean;
  error?: string;
}

export interface ServicePlan {
  sources: { path: string; present: boolean; required: boolean }[];
  exclude: string[];
  files: number;
  bytes: number;
  archive: string;
  copies: { destination: string; path: string }[];
  prune: { destination: string; path: string; reason: string }[];
  /** a native (hypervisor) backup: where and how */
  guest?: { node: string; state: string; storage: string; kind: string; mode: string; compress: string; rule: string };
}

export interface ServiceBackupResult {
  service: string;
  type: string;
  status: 'success' | 'failed' | 'planned' | 'interrupted';
  error?: string;
  hint?: string;
  archive?: { path: string; size: number; sha256: string; entries: number | null; verified: boolean };
  copies: CopyResult[];
  pruned: PruneResult[];
  warnings: string[];
  durationMs: number;
  plan?: ServicePlan;
  /** a native (hypervisor) backup: the node it ran on, the storage, the mode, the task */
  guest?: { node: string; storage: string; kind: string; mode: string; rule: string; task?: string };
}

export interface BackupReport {
  runId: number | null;
  dryRun: boolean;
  ok: boolean;
  interrupted: boolean;
  startedAt: string;
  durationMs: number;
  services: ServiceBackupResult[];
  /** what the notification engine did with this run's events */
  notifications: DeliveryReport[];
}

export type BackupEvent =
  | { type: 'service-start'; service: string; index: number; total: number }
  | { type: 'progress'; service: string; bytes: number; elapsedMs: number }
  | { type: 'status'; service: string; message: string }
  | { type: 'service-done'; result: ServiceBackupResult };

export interface BackupEngineDeps {
  config: AutopilotConfig;
  registry: PluginRegistry;
  logger: Logger;
  /** the state database; null on a dry run against a machine that has none yet */
  state: StateManager | null;
  signal: AbortSignal;
  onEvent?(e: BackupEvent): void;
  /** where backup_success / backup_failed go (not on dry runs) */
  notifier?: NotificationEngine;
  /** the clock, for tests */
  now?(): Date;
}

function stampName(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Our archive names: <service>_YYYYMMDD_HHMMSS[-N].tar.zst|.tar.gz */
export function isOurArchiveName(service: string, file: string): boolean {
  const esc = service.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${esc}_\\d{8}_\\d{6}(-\\d+)?\\.tar\\.(zst|gz)$`).test(file);
}

/** The event a service's backup raises. */
function backupEvent(r: ServiceBackupResult): NotifyEvent {
  const bytes = r.archive?.size ?? 0;
  const human =
    bytes < 1024
      ? `${bytes} B`
      : bytes < 1048576
        ? `${(bytes / 1024).toFixed(1)} KiB`
        : bytes < 1073741824
          ? `${(bytes / 1048576).toFixed(1)} MiB`
          : `${(bytes / 1073741824).toFixed(2)} GiB`;
  const size = r.archive ? ` (${human}, ${r.archive.verified ? 'verified' : 'not verified'})` : '';
  return r.status === 'success'
    ? {
        event: 'backup_success',
        severity: 'success',
        subject: r.service,
        title: `Backup of ${r.service} succeeded`,
        text: `${r.archive?.path ?? ''}${size}`,
        details: { durationMs: r.durationMs, copies: r.copies.length },
      }
    : {
        event: 'backup_failed',
        severity: 'critical',
        subject: r.service,
        title: `Backup of ${r.service} FAILED`,
        text: `${r.error ?? 'unknown error'}${r.hint ? `\nhint: ${r.hint}` : ''}`,
        details: { durationMs: r.durationMs },
      };
}

const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

/** Renames an archive that failed verification to <name>.failed (a free name), so it never looks complete. */
async function setAside(file: string): Promise<string> {
  let target = `${file}.failed`;
  for (let n = 2; fs.existsSync(target); n++) target = `${file}.failed-${n}`;
  await fs.promises.rename(file, target);
  return target;
}

/** The time one service's backup may take, as a signal that also aborts with the run's. */
export function serviceDeadline(
  config: AutopilotConfig,
  svc: ServiceConfig & { timeout?: number },
  run: AbortSignal,
): { timeoutMs: number; deadline: AbortSignal; signal: AbortSignal } {
  const timeoutMs = (svc.timeout ?? config.backup.timeout) * 1000;
  const deadline = AbortSignal.timeout(timeoutMs);
  return { timeoutMs, deadline, signal: AbortSignal.any([run, deadline]) };
}

export class BackupEngine {
  private readonly log: Logger;
  constructor(private readonly deps: BackupEngineDeps) {
    this.log = deps.logger.child('backup');
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /** The services a request names, in config order; unknown names are a usage error. */
  selectServices(req: BackupRequest): ServiceConfig[] {
    const services = this.deps.config.services;
    if (req.all) {
      if (req.services.length) throw new AutopilotError('USAGE', 'give service names or --all, not both');
      // a guest type whose hypervisor cannot back up (docker containers) is left out of --all
      const backsUp = (s: ServiceConfig): boolean => {
        const p = this.deps.registry.guestProvider(s.type);
        return !p || typeof p.instance.backupGuest === 'function';
      };
      return services.filter((s) => s.enabled !== false && s.backup !== false && backsUp(s));
    }
    if (!req.services.length) {
      throw new AutopilotError('USAGE', 'name the services to back up, or give --all', {
        hint: `configured services: ${services.map((s) => s.name).join(', ') || 'none'}`,
      });
    }
    return namedServices(services, req.services);
  }

  private get compression(): Compression {
    return this.deps.config.backup.compression;
  }

  private destinations(): { name: string; path: string; retention: KeepOptions }[] {
    const b = this.deps.config.backup;
    return b.destinations
      .filter((d) => d.enabled !== false)
      .map((d) => ({ name: d.name, path: d.path, retention: d.retention ?? b.retention }));
  }

  private retentionFor(svc: ServiceConfig & { retention?: KeepOptions }, dest: { name: string; retention: KeepOptions }): KeepOptions {
    if (dest.name === PRIMARY) return svc.retention ?? this.deps.config.backup.retention;
    return (
      this.deps.config.backup.destinations.find((d) => d.name === dest.name)?.retention ??
      svc.retention ??
      this.deps.config.backup.retention
    );
  }

  private archivePath(service: string, when: Date): string {
    const dir = path.join(this.deps.config.backup.root, service);
    const base = `${service}_${stampName(when)}`;
    const ext = EXTENSION[this.compression];
    let candidate = path.join(dir, base + ext);
    for (let n = 2; fs.existsSync(candidate); n++) candidate = path.join(dir, `${base}-${n}${ext}`);
    return candidate;
  }

  async run(req: BackupRequest): Promise<BackupReport> {
    const targets = this.selectServices(req);
    for (const s of targets) assertSafeName('service', s.name);
    const startedAt = this.now();
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
      const l = await state.acquireLock('backup', {
        waitMs: req.lockWaitMs ?? this.deps.config.global.lock_wait * 1000,
        signal: this.deps.signal,
        command: `backup ${req.all ? '--all' : req.services.join(' ')}`,
      });
      lock = l;
      if (l.tookOver)
        this.log.warn(`took over the backup lock from pid ${l.tookOver.pid}, which no longer runs (it was killed or crashed)`);
      const marked = state.markInterruptedRuns();
      if (marked)
        this.log.warn(
          `${marked} earlier run${marked > 1 ? 's were' : ' was'} left unfinished by a process that died; recorded as interrupted`,
        );
      report.runId = state.startRun('backup', req.all ? 'all' : req.services.join(','), { dryRun: false });
    }
    const notifier = req.dryRun ? undefined : this.deps.notifier;
    const digest: Digest | undefined = notifier && req.all && this.deps.config.notifications.digest ? notifier.digest() : undefined;
    const pending: Promise<DeliveryReport>[] = [];
    const done = (result: ServiceBackupResult): void => {
      if (result.status === 'interrupted') report.interrupted = true;
      report.services.push(result);
      this.deps.onEvent?.({ type: 'service-done', result });
      if (notifier && result.status !== 'interrupted') {
        const ev = backupEvent(result);
        if (digest) digest.add(ev);
        // sent while the next service runs: a slow channel never holds up the backups
        else pending.push(notifier.notify(ev, report.runId));
      }
    };
    // a service being updated right now (its update lock is held) is not backed up: its data may be half-restored
    const updating = (s: ServiceConfig): boolean => !req.dryRun && Boolean(state?.liveLockHolder(`update.${s.name}`));
    for (const s of targets.filter(updating)) {
      const h = state?.liveLockHolder(`update.${s.name}`);
      done({
        service: s.name,
        type: s.type,
        status: 'failed',
        error: `an update of ${s.name} is running (pid ${h?.pid} on ${h?.host})`,
        hint: 'back it up again once the update finished',
        copies: [],
        pruned: [],
        warnings: [],
        durationMs: 0,
      });
    }
    // guests of a hypervisor are backed up by it (vzdump), per node, alongside the archives made here
    const isGuest = (s: ServiceConfig): boolean => Boolean(this.deps.registry.guestProvider(s.type));
    const free = targets.filter((s) => !report.services.some((r) => r.service === s.name));
    const guests = free.filter(isGuest);
    const archives = free.filter((s) => !isGuest(s));
    try {
      const runner = new GuestBackupRunner({
        config: this.deps.config,
        registry: this.deps.registry,
        logger: this.deps.logger,
        state,
        signal: this.deps.signal,
        now: () => this.now(),
        onEvent: this.deps.onEvent,
        failure: (b, e, t) => this.failure(b, e, t),
      });
      const guestWork = req.dryRun
        ? (async () => {
            for (const g of guests) done(await runner.plan(g));
          })()
        : runner.run(guests, report.runId, done);
      const archiveWork = (async () => {
        for (let i = 0; i < archives.length; i++) {
          const svc = archives[i];
          if (this.deps.signal.aborted) {
            done({
              service: svc.name,
              type: svc.type,
              status: 'interrupted',
              error: 'not started: the run was cancelled',
              copies: [],
              pruned: [],
              warnings: [],
              durationMs: 0,
            });
            continue;
          }
          this.deps.onEvent?.({ type: 'service-start', service: svc.name, index: i, total: archives.length });
          done(req.dryRun ? await this.planService(svc) : await this.backupService(svc, report.runId));
        }
      })();
      // both are waited for, even when one fails unexpectedly
      const settled = await Promise.allSettled([guestWork, archiveWork]);
      const bad = settled.find((x) => x.status === 'rejected') as PromiseRejectedResult | undefined;
      if (bad) throw bad.reason;
      // the report lists services in config order, whatever order they finished in
      const order = new Map(targets.map((t, i) => [t.name, i]));
      report.services.sort((a, b) => (order.get(a.service) ?? 0) - (order.get(b.service) ?? 0));
      report.notifications.push(...(await Promise.all(pending)));
      if (digest && digest.size) {
        const failed = report.services.filter((s) => s.status === 'failed').length;
        const n = report.services.length;
        const title = failed
          ? `Backup: ${failed} of ${n} service${n > 1 ? 's' : ''} FAILED on ${os.hostname()}`
          : `Backup: ${n} service${n > 1 ? 's' : ''} backed up on ${os.hostname()}`;
        report.notifications.push(...(await digest.flush({ title, subject: 'backup --all' }, report.runId)));
      }
    } finally {
      report.ok = !report.interrupted && report.services.every((s) => s.status === 'success' || s.status === 'planned');
      report.durationMs = this.now().getTime() - startedAt.getTime();
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

  private op(svc: ServiceConfig, dryRun: boolean, signal: AbortSignal = this.deps.signal): OperationContext {
    return { signal, logger: this.deps.logger.child(`plugin:${svc.type}`), dryRun };
  }

  /** Runs a plugin hook, giving up when the signal aborts even if the hook ignores it. */
  private async hook(run: () => void | Promise<void>, signal: AbortSignal, what: string): Promise<void> {
    if (signal.aborted) throw new AutopilotError('ABORTED', `${what} was not started: cancelled`);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new AutopilotError('ABORTED', `${what} was cancelled`));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([Promise.resolve().then(run), aborted]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  private async sources(
    svc: ServiceConfig,
    plugin: ServicePlugin,
    dryRun: boolean,
  ): Promise<{ present: string[]; all: (BackupPath & { present: boolean })[]; exclude: string[]; warnings: string[] }> {
    const src = await plugin.backupSources(svc, this.op(svc, dryRun));
    if (!src || !Array.isArray(src.paths))
      throw new AutopilotError('INTERNAL', `the ${svc.type} plugin returned no paths for '${svc.name}'`);
    const warnings: string[] = [];
    const all = src.paths.map((p) => {
      if (typeof p?.path !== 'string' || !path.isAbsolute(p.path))
        throw new AutopilotError('INTERNAL', `the ${svc.type} plugin returned a path that is not absolute: ${JSON.stringify(p?.path)}`);
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
    const missingRequired = all.filter((p) => !p.present && p.required && !deferred);
    if (missingRequired.length) {
      throw new AutopilotError(
        'SOURCE_MISSING',
        `${missingRequired.map((p) => p.path).join(', ')} ${missingRequired.length > 1 ? 'do' : 'does'} not exist`,
        {
          hint: `fix the paths of service '${svc.name}' in the config, or remove them`,
        },
      );
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
      throw new AutopilotError('SOURCE_MISSING', 'none of the paths to back up exist', {
        hint: `check the paths of service '${svc.name}'`,
      });
    return { present, all, exclude: src.exclude ?? [], warnings };
  }

  private async planService(svc: ServiceConfig): Promise<ServiceBackupResult> {
    const started = Date.now();
    const base = { service: svc.name, type: svc.type, copies: [], pruned: [], warnings: [] as string[] };
    try {
      const plugin = this.deps.registry.require<ServicePlugin>('service', svc.type, `service '${svc.name}'`);
      const src = await this.sources(svc, plugin, true);
      const sel = src.present.length ? await listSelection(src.present, src.exclude, this.deps.signal) : { files: 0, bytes: 0 };
      const archive = this.archivePath(svc.name, this.now());
      const copies = this.destinations().map((d) => ({ destination: d.name, path: path.join(d.path, svc.name, path.basename(archive)) }));
      const prune: ServicePlan['prune'] = [];
      for (const d of [
        { name: PRIMARY, path: this.deps.config.backup.root, retention: this.deps.config.backup.retention },
        ...this.destinations(),
      ]) {
        for (const p of this.pruneDecisions(svc, d, { id: 'new', time: this.now() })) {
          if (p.decision.mark === 'remove') prune.push({ destination: d.name, path: p.artifact.location, reason: p.decision.reason });
        }
      }
      const plan: ServicePlan = {
        sources: src.all.map((p) => ({ path: p.path, present: p.present, required: p.required })),
        exclude: src.exclude,
        files: sel.files,
        bytes: sel.bytes,
        archive,
        copies,
        prune,
      };
      return { ...base, warnings: src.warnings, status: 'planned', durationMs: Date.now() - started, plan };
    } catch (e) {
      return this.failure(base, e, started);
    }
  }

  failure(
    base: Pick<ServiceBackupResult, 'service' | 'type' | 'copies' | 'pruned' | 'warnings'> & Partial<ServiceBackupResult>,
    e: unknown,
    started: number,
  ): ServiceBackupResult {
    const interrupted = this.deps.signal.aborted || (isAbortError(e) && !(e instanceof AutopilotError && e.code === 'TIMEOUT'));
    const err = e instanceof AutopilotError ? e : null;
    if (!err && !interrupted) this.log.debug(`unexpected error backing up ${base.service}: ${(e as Error)?.stack ?? String(e)}`);
    return {
      ...base,
      status: interrupted ? 'interrupted' : 'failed',
      error: mask(interrupted ? 'cancelled' : describeError(e)),
      hint: err?.hint,
      durationMs: Date.now() - started,
    };
  }

  private async backupService(svc: ServiceConfig & { timeout?: number }, jobRunId: number | null): Promise<ServiceBackupResult> {
    const state = this.deps.state as StateManager;
    const started = Date.now();
    const runId = state.startRun('backup', svc.name, { parentId: jobRunId });
    // one deadline for everything this service does: hooks, archive, verification, copies
    const { timeoutMs, deadline, signal } = serviceDeadline(this.deps.config, svc, this.deps.signal);
    const result: ServiceBackupResult = {
      service: svc.name,
      type: svc.type,
      status: 'success',
      copies: [],
      pruned: [],
      warnings: [],
      durationMs: 0,
    };
    const log = this.log.child(svc.name);
    let plugin: ServicePlugin | null = null;
    let hookRan = false;
    try {
      plugin = this.deps.registry.require<ServicePlugin>('service', svc.type, `service '${svc.name}'`);
      if (plugin.beforeBackup) {
        hookRan = true;
        const before = plugin.beforeBackup.bind(plugin);
        await this.hook(() => before(svc, this.op(svc, false, signal)), signal, 'the beforeBackup step');
      }
      const src = await this.sources(svc, plugin, false);
      result.warnings.push(...src.warnings);
      for (const w of src.warnings) log.warn(w);
      const when = this.now();
      const dest = this.archivePath(svc.name, when);
      const removed = await cleanStalePartials(path.dirname(dest));
      for (const r of removed) log.info(`removed ${r}, left unfinished by an earlier run that was killed`);
      log.info(`archiving ${src.present.join(', ')} into ${dest}`);
      const t0 = Date.now();
      const archive = await createArchive({
        sources: src.present,
        exclude: src.exclude,
        compression: this.compression,
        level: this.deps.config.backup.compression_level ?? DEFAULT_LEVEL[this.compression],
        threads: this.deps.config.backup.compression_threads,
        dest,
        signal,
        onProgress: (bytes) => this.deps.onEvent?.({ type: 'progress', service: svc.name, bytes, elapsedMs: Date.now() - t0 }),
        onRetry: (why) => log.warn(why),
      });
      result.warnings.push(...archive.warnings);
      for (const w of archive.warnings) log.warn(w);
      result.archive = { path: archive.path, size: archive.size, sha256: archive.sha256, entries: null, verified: false };
      let verifiedAt: string | null = null;
      let verifyResult: string | null = null;
      if (this.deps.config.backup.verify) {
        const v = await verifyArchive(archive.path, { size: archive.size, sha256: archive.sha256 }, { signal });
        if (signal.aborted) throw new AutopilotError('ABORTED', 'verification was cancelled');
        verifiedAt = new Date().toISOString();
        verifyResult = v.ok ? `ok: ${entries(v.entries)}` : `failed: ${v.error}`;
        result.archive.entries = v.entries;
        result.archive.verified = v.ok;
        if (!v.ok) {
          // renamed, so that it neither looks complete nor takes a place in retention
          const failed = await setAside(archive.path);
          result.archive.path = failed;
          state.addArtifact({
            runId,
            service: svc.name,
            destination: PRIMARY,
            location: failed,
            size: archive.size,
            sha256: archive.sha256,
            createdAt: when.toISOString(),
            verifiedAt,
            verifyResult,
          });
          throw new AutopilotError('VERIFY_FAILED', `the new archive failed verification: ${v.error}`, {
            hint: `it is kept as ${failed} for inspection; check the disk and run the backup again`,
          });
        }
        log.info(`verified ${archive.path}: ${entries(v.entries)}, sha256 ${archive.sha256.slice(0, 12)}…`);
      }
      state.addArtifact({
        runId,
        service: svc.name,
        destination: PRIMARY,
        location: archive.path,
        size: archive.size,
        sha256: archive.sha256,
        createdAt: when.toISOString(),
        verifiedAt,
        verifyResult,
      });
      state.set(`last_backup.${svc.name}`, { at: when.toISOString(), location: archive.path, size: archive.size });

      for (const d of this.destinations()) {
        const target = path.join(d.path, svc.name, path.basename(archive.path));
        try {
          await cleanStalePartials(path.dirname(target));
          await copyArchive(archive.path, target, signal);
          const v = await verifyArchive(target, { size: archive.size, sha256: archive.sha256 }, { signal });
          if (signal.aborted) throw new AutopilotError('ABORTED', 'the copy was cancelled');
          const location = v.ok ? target : await setAside(target);
          state.addArtifact({
            runId,
            service: svc.name,
            destination: d.name,
            location,
            size: archive.size,
            sha256: archive.sha256,
            createdAt: when.toISOString(),
            verifiedAt: new Date().toISOString(),
            verifyResult: v.ok ? `ok: ${entries(v.entries)}` : `failed: ${v.error}`,
          });
          if (!v.ok) throw new AutopilotError('VERIFY_FAILED', `the copy failed verification (kept as ${location}): ${v.error}`);
          result.copies.push({ destination: d.name, path: target, ok: true });
          log.info(`copied to ${d.name}: ${target}`);
        } catch (e) {
          if (isAbortError(e) || signal.aborted) throw e;
          result.copies.push({ destination: d.name, path: target, ok: false, error: mask(describeError(e)) });
          log.error(`copy to ${d.name} failed: ${describeError(e)}`);
        }
      }

      // prune only after a good backup, destination by destination
      const dests = [
        { name: PRIMARY, path: this.deps.config.backup.root, retention: this.deps.config.backup.retention },
        ...this.destinations(),
      ];
      for (const d of dests) {
        if (d.name !== PRIMARY && !result.copies.find((c) => c.destination === d.name)?.ok) continue;
        for (const p of this.pruneDecisions(svc, d)) {
          if (p.decision.mark !== 'remove') continue;
          // protected since the decision was taken (backups protect in another shell)?
          if (state.getArtifact(p.artifact.id)?.protected) continue;
          try {
            await fs.promises.rm(p.artifact.location, { force: true });
            state.markArtifactDeleted(p.artifact.id);
            result.pruned.push({ destination: d.name, path: p.artifact.location, reason: p.decision.reason, ok: true });
            log.info(`pruned ${p.artifact.location} (${p.decision.reason})`);
          } catch (e) {
            result.pruned.push({
              destination: d.name,
              path: p.artifact.location,
              reason: p.decision.reason,
              ok: false,
              error: describeError(e),
            });
            log.warn(`could not prune ${p.artifact.location}: ${describeError(e)}`);
          }
        }
      }
      const failedCopies = result.copies.filter((c) => !c.ok);
      if (failedCopies.length) {
        result.status = 'failed';
        result.error = `copy to ${failedCopies.map((c) => c.destination).join(', ')} failed: ${failedCopies.map((c) => c.error).join('; ')}`;
      }
    } catch (e) {
      const timedOut = deadline.aborted && !this.deps.signal.aborted;
      Object.assign(
        result,
        timedOut
          ? this.failure(
              result,
              new AutopilotError('TIMEOUT', `the backup did not finish within ${timeoutMs / 1000}s`, {
                hint: `raise timeout for service '${svc.name}' (or backup.timeout)`,
              }),
              started,
            )
          : this.failure(result, e, started),
      );
      if (result.status === 'failed') log.error(`backup of ${svc.name} failed: ${result.error}`);
    } finally {
      if (plugin?.afterBackup && hookRan) {
        const after = plugin.afterBackup.bind(plugin);
        // afterBackup runs even after a timeout or a cancel (to restart what beforeBackup stopped), with a minute of its own
        const afterSignal = AbortSignal.timeout(60_000);
        try {
          await this.hook(
            () => after(svc, this.op(svc, false, afterSignal), { ok: result.status === 'success', error: result.error }),
            afterSignal,
            'the afterBackup step',
          );
        } catch (e) {
          result.warnings.push(mask(`afterBackup step failed: ${describeError(e)}`));
        }
      }
      result.durationMs = Date.now() - started;
      result.warnings = result.warnings.map(mask);
      state.finishRun(runId, result.status === 'interrupted' ? 'interrupted' : result.status === 'success' ? 'success' : 'failed', {
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

  /**
   * Prune decisions for one service at one destination, over the archives this tool
   * recorded there (never other files). The newest verified archive is always kept.
   * `extra` adds a not-yet-written backup (for --dry-run).
   */
  private pruneDecisions(
    svc: ServiceConfig & { retention?: KeepOptions },
    dest: { name: string; retention: KeepOptions },
    extra?: { id: string; time: Date },
  ): { artifact: ArtifactRecord; decision: PruneDecision }[] {
    const state = this.deps.state;
    const keep = this.retentionFor(svc, dest);
    if (!state || !keepsSomething(keep)) return [];
    // our own archives only, and never one that failed verification (kept aside for inspection)
    const artifacts = state
      .listArtifacts({ service: svc.name, destination: dest.name })
      .filter((a) => isOurArchiveName(svc.name, path.basename(a.location)) && !a.verifyResult?.startsWith('failed'));
    const pinned = new Map<string, string>();
    const candidates = artifacts.map((a) => ({ id: String(a.id), time: new Date(a.createdAt), protected: a.protected }));
    if (extra) {
      // a dry run previews the state after a good backup: the new archive is the newest verified one
      candidates.push({ ...extra, protected: false });
      pinned.set(extra.id, 'newest verified backup');
    } else {
      // the newest verified archive; with verification turned off, the newest archive
      const newest = artifacts.find((a) => a.verifyResult?.startsWith('ok')) ?? (this.deps.config.backup.verify ? undefined : artifacts[0]);
      if (newest) pinned.set(String(newest.id), newest.verifyResult ? 'newest verified backup' : 'newest backup');
    }
    const decisions = computePrune(candidates, keep, pinned);
    const byId = new Map(artifacts.map((a) => [String(a.id), a]));
    return decisions.filter((d) => byId.has(d.id)).map((d) => ({ artifact: byId.get(d.id) as ArtifactRecord, decision: d }));
  }
}
