/**
 * The native strategy of the backup engine: services whose type a hypervisor plugin provides
 * (lxc and vm for Proxmox) are backed up by the hypervisor itself (vzdump). The engine decides
 * where each backup goes (the architecture's rule: the PBS storage if enabled, else the direct
 * storage, else the default), runs one backup per node at a time with nodes in parallel,
 * verifies, records and prunes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { testDecompress } from '../../lib/archive';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import { computePrune, keepsSomething, type KeepOptions } from '../../lib/retention';
import type { StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import type { GuestBackupTarget, GuestRef, HypervisorPlugin, OperationContext, ServiceConfig } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';
import { serviceDeadline, type BackupEvent, type ServiceBackupResult } from './engine';

export interface GuestTarget extends GuestBackupTarget {
  /** where this host sees the storage (its dump/ folder beneath), for the decompress test */
  path?: string;
  /** which rule chose it */
  rule: 'service' | 'proxmox_backup_server' | 'direct_storage' | 'default';
}

/** Where a guest's backup goes, following the architecture's decision logic. */
export function decideTarget(config: AutopilotConfig, svc: ServiceConfig): GuestTarget {
  const b = config.backup;
  const g = b.guests;
  const pbs = b.proxmox_backup_server?.enabled !== false ? b.proxmox_backup_server : undefined;
  const direct = b.direct_storage?.enabled !== false ? b.direct_storage : undefined;
  const common = {
    mode: (svc.mode as string | undefined) ?? g.mode,
    compress: (svc.compress as string | undefined) ?? g.compress,
    notesTemplate: (svc.notes_template as string | undefined) ?? g.notes_template,
    protected: (svc.protected as boolean | undefined) ?? g.protected,
  };
  if (typeof svc.storage === 'string') {
    const isPbs = svc.storage === b.proxmox_backup_server?.storage;
    const p = svc.storage === b.direct_storage?.storage ? b.direct_storage?.path : svc.storage === g.storage ? g.path : undefined;
    return { ...common, storage: svc.storage, kind: isPbs ? 'pbs' : 'storage', path: isPbs ? undefined : p, rule: 'service' };
  }
  if (pbs) return { ...common, storage: pbs.storage, kind: 'pbs', rule: 'proxmox_backup_server' };
  if (direct) return { ...common, storage: direct.storage, kind: 'storage', path: direct.path, rule: 'direct_storage' };
  return { ...common, storage: g.storage, kind: 'storage', path: g.path, rule: 'default' };
}

/** The artifact destination of a hypervisor storage (kept apart from our own destinations). */
export const storageDestination = (storage: string): string => `pve:${storage}`;

export interface GuestRunnerDeps {
  config: AutopilotConfig;
  registry: PluginRegistry;
  logger: Logger;
  state: StateManager | null;
  signal: AbortSignal;
  now(): Date;
  onEvent?(e: BackupEvent): void;
  failure(base: ServiceBackupResult, e: unknown, started: number): ServiceBackupResult;
}

const guestRef = (svc: ServiceConfig): GuestRef => ({
  service: svc.name,
  id: String(svc.vmid ?? svc.id ?? ''),
  type: svc.type,
  config: svc,
});

export class GuestBackupRunner {
  private readonly log: Logger;
  constructor(private readonly deps: GuestRunnerDeps) {
    this.log = deps.logger.child('backup');
  }

  private provider(svc: ServiceConfig): { name: string; instance: HypervisorPlugin } {
    const p = this.deps.registry.guestProvider(svc.type);
    if (!p) throw new AutopilotError('PLUGIN_MISSING', `no hypervisor plugin provides services of type '${svc.type}'`);
    if (typeof p.instance.backupGuest !== 'function') {
      throw new AutopilotError('USAGE', `the ${p.name} plugin cannot back up services of type ${svc.type}`, {
        hint: `set backup: false for '${svc.name}', and back its data up with a files service (or use type docker-compose for a compose project)`,
      });
    }
    return p;
  }

  private op(svc: ServiceConfig, dryRun: boolean, signal: AbortSignal, deadline?: number): OperationContext {
    return {
      signal,
      logger: this.deps.logger.child(`plugin:${this.deps.registry.guestProvider(svc.type)?.name ?? svc.type}`),
      dryRun,
      deadline,
      progress: (message) => this.deps.onEvent?.({ type: 'status', service: svc.name, message }),
    };
  }

  private base(svc: ServiceConfig): ServiceBackupResult {
    return { service: svc.name, type: svc.type, status: 'success', copies: [], pruned: [], warnings: [], durationMs: 0 };
  }

  /** The node each guest runs on now (one query per hypervisor); null where it cannot be told. */
  private async nodes(svcs: ServiceConfig[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    const byProvider = new Map<string, { plugin: HypervisorPlugin; svcs: ServiceConfig[] }>();
    for (const s of svcs) {
      const p = this.deps.registry.guestProvider(s.type);
      if (!p) {
        out.set(s.name, null);
        continue;
      }
      const entry = byProvider.get(p.name) ?? { plugin: p.instance, svcs: [] };
      entry.svcs.push(s);
      byProvider.set(p.name, entry);
    }
    for (const [, { plugin, svcs: list }] of byProvider) {
      try {
        const op = this.op(list[0], false, this.deps.signal);
        const statuses = plugin.guestStatuses
          ? await plugin.guestStatuses(list.map(guestRef), op, { ips: false })
          : await Promise.all(list.map((s) => plugin.guestStatus(guestRef(s), op)));
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
    const result = this.base(svc);
    try {
      const { instance } = this.provider(svc);
      const target = decideTarget(this.deps.config, svc);
      const p = instance.planBackup
        ? await instance.planBackup(guestRef(svc), target, this.op(svc, true, this.deps.signal))
        : {
            guest: guestRef(svc).id,
            node: '?',
            state: 'unknown' as const,
            storage: target.storage,
            mode: target.mode,
            compress: target.compress,
            notes: [],
          };
      const prune =
        target.kind === 'storage'
          ? this.pruneDecisions(svc, target.storage, true).map((d) => ({ destination: target.storage, path: d.location, reason: d.reason }))
          : [];
      result.status = 'planned';
      result.warnings.push(...(p.notes ?? []));
      result.guest = { node: p.node, storage: target.storage, kind: target.kind, mode: p.mode, rule: target.rule };
      result.plan = {
        sources: [],
        exclude: [],
        files: 0,
        bytes: 0,
        archive: `vzdump of ${svc.type === 'vm' ? 'VM' : 'CT'} ${p.guest} on ${p.node} (${p.state}) to ${target.storage}: mode ${p.mode}, compress ${p.compress}`,
        copies: [],
        prune,
        guest: {
          node: p.node,
          state: p.state,
          storage: target.storage,
          kind: target.kind,
          mode: p.mode,
          compress: p.compress,
          rule: target.rule,
        },
      };
      result.durationMs = Date.now() - started;
      return result;
    } catch (e) {
      return this.deps.failure(result, e, started);
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
        const node = nodes[next++];
        for (const svc of queues.get(node) ?? []) {
          if (this.deps.signal.aborted) {
            onDone({ ...this.base(svc), status: 'interrupted', error: 'not started: the run was cancelled' });
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
    const settled = await Promise.allSettled([...Array.from({ length: Math.min(limit, nodes.length) }, worker)]);
    const ends = await Promise.allSettled(finishing);
    const bad = [...settled, ...ends].find((x) => x.status === 'rejected') as PromiseRejectedResult | undefined;
    if (bad) throw bad.reason;
  }

  private async backupOne(
    svc: ServiceConfig & { timeout?: number; retention?: KeepOptions },
    jobRunId: number | null,
    taskEnded: () => void = () => {},
  ): Promise<ServiceBackupResult> {
    const state = this.deps.state as StateManager;
    const started = Date.now();
    let runId: number | null = null;
    const { timeoutMs, deadline, signal } = serviceDeadline(this.deps.config, svc, this.deps.signal);
    let taskDone = false;
    const result = this.base(svc);
    const log = this.log.child(svc.name);
    try {
      runId = state.startRun('backup', svc.name, { parentId: jobRunId });
      const { instance } = this.provider(svc);
      const target = decideTarget(this.deps.config, svc);
      const ref = guestRef(svc);
      log.info(
        `vzdump to ${target.storage} (${target.kind === 'pbs' ? 'Proxmox Backup Server' : 'file storage'}, mode ${target.mode}; chosen by ${target.rule})`,
      );
      let r: Awaited<ReturnType<NonNullable<HypervisorPlugin['backupGuest']>>>;
      try {
        r = await (instance.backupGuest as NonNullable<HypervisorPlugin['backupGuest']>)(
          ref,
          target,
          this.op(svc, false, signal, Date.now() + timeoutMs),
        );
      } finally {
        taskDone = true;
        taskEnded();
      }
      result.guest = { node: r.node, storage: r.storage, kind: target.kind, mode: r.mode, rule: target.rule, task: r.task };
      result.warnings.push(...r.warnings.map((w) => `vzdump: ${w}`));
      // verification: PBS's own state when it has one; otherwise the size and, where this host can read the file, a decompress test
      let verified = false;
      let verifyResult: string;
      if (r.verification === 'ok') {
        verified = true;
        verifyResult = 'ok: verified by the backup server';
      } else if (r.verification === 'failed') {
        verifyResult = 'failed: the backup server reports its verification failed';
      } else if (target.kind === 'pbs') {
        verified = true;
        verifyResult = `pending: ${r.size > 0 ? `${r.size} bytes` : 'size not known yet'} on PBS; PBS verifies it in its verify jobs`;
      } else if (!(r.size > 0)) {
        verifyResult = 'failed: the storage lists it with 0 bytes';
      } else {
        const file = target.path && r.file ? path.join(target.path, 'dump', path.basename(r.file)) : null;
        if (file && fs.existsSync(file)) {
          const t = await testDecompress(file, signal);
          if (t.ok) {
            verified = true;
            verifyResult = `ok: ${r.size} bytes, decompress test passed${t.entries !== undefined ? ` (${t.entries} entries)` : ''}${t.skipped ? ` (${t.skipped})` : ''}`;
          } else if (t.skipped) {
            verified = true;
            verifyResult = `ok: ${r.size} bytes (no decompress test: ${t.skipped})`;
          } else {
            verifyResult = `failed: decompress test of ${file}: ${t.error}`;
          }
        } else {
          verified = true;
          verifyResult = `ok: ${r.size} bytes listed by the storage (not readable from this host${target.path ? ` at ${target.path}` : ''}: no decompress test)`;
          if (target.path) result.warnings.push(`${r.file ?? r.id} is not under ${path.join(target.path, 'dump')}: no decompress test`);
        }
      }
      const verifiedAt = new Date().toISOString();
      const failed = verifyResult.startsWith('failed');
      result.archive = { path: r.id, size: r.size, sha256: '', entries: null, verified: verified && !failed };
      state.addArtifact({
        runId: runId as number,
        service: svc.name,
        destination: storageDestination(r.storage),
        location: r.id,
        size: r.size,
        sha256: null,
        createdAt: r.time,
        verifiedAt,
        verifyResult,
        protected: r.protected,
      });
      if (failed) {
        throw new AutopilotError('VERIFY_FAILED', `${r.id}: ${verifyResult.replace(/^failed: /, '')}`, {
          hint: 'the backup is kept for inspection and never pruned by us; check the storage and run the backup again',
        });
      }
      log.info(`${r.id}: ${verifyResult}`);
      state.set(`last_backup.${svc.name}`, {
        at: r.time,
        location: r.id,
        size: r.size,
        verified: verifyResult,
        storage: r.storage,
        node: r.node,
      });
      if (target.kind === 'storage') await this.prune(svc, target.storage, instance, ref, signal, result);
    } catch (e) {
      const timedOut = deadline.aborted && !this.deps.signal.aborted;
      Object.assign(
        result,
        this.deps.failure(
          result,
          timedOut
            ? new AutopilotError(
                'TIMEOUT',
                `the backup did not finish within ${timeoutMs / 1000}s (${taskDone ? 'the vzdump task had ended; its verification was stopped' : 'the vzdump task was stopped'})`,
                {
                  hint: `raise timeout for service '${svc.name}' (or backup.timeout)`,
                },
              )
            : pluginError(e),
          started,
        ),
      );
      if (result.status === 'failed') log.error(`backup of ${svc.name} failed: ${result.error}`);
    } finally {
      taskEnded();
      result.durationMs = Date.now() - started;
      result.warnings = result.warnings.map(mask);
      if (runId !== null)
        state.finishRun(runId, result.status === 'interrupted' ? 'interrupted' : result.status === 'success' ? 'success' : 'failed', {
          error: result.error,
          archive: result.archive?.path,
          size: result.archive?.size,
          node: result.guest?.node,
          storage: result.guest?.storage,
          warnings: result.warnings,
        });
    }
    return result;
  }

  /** Our own recorded backups on a file storage, with the keep-* decision for each (newest verified pinned). */
  private pruneDecisions(
    svc: ServiceConfig & { retention?: KeepOptions },
    storage: string,
    withNew: boolean,
  ): { id: number; location: string; reason: string }[] {
    const state = this.deps.state;
    const keep = svc.retention ?? this.deps.config.backup.retention;
    if (!state || !keepsSomething(keep)) return [];
    const artifacts = state
      .listArtifacts({ service: svc.name, destination: storageDestination(storage) })
      .filter((a) => !a.verifyResult?.startsWith('failed'));
    const candidates = artifacts.map((a) => ({ id: String(a.id), time: new Date(a.createdAt), protected: a.protected }));
    const pinned = new Map<string, string>();
    if (withNew) {
      candidates.push({ id: 'new', time: this.deps.now(), protected: false });
      pinned.set('new', 'newest verified backup');
    } else {
      const newest = artifacts.find((a) => a.verifyResult?.startsWith('ok') || a.verifyResult?.startsWith('pending'));
      if (newest) pinned.set(String(newest.id), 'newest verified backup');
    }
    const byId = new Map(artifacts.map((a) => [String(a.id), a]));
    return computePrune(candidates, keep, pinned)
      .filter((d) => d.mark === 'remove' && byId.has(d.id))
      .map((d) => ({ id: Number(d.id), location: (byId.get(d.id) as { location: string }).location, reason: d.reason }));
  }

  private async prune(
    svc: ServiceConfig,
    storage: string,
    plugin: HypervisorPlugin,
    ref: GuestRef,
    signal: AbortSignal,
    result: ServiceBackupResult,
  ): Promise<void> {
    const state = this.deps.state as StateManager;
    if (typeof plugin.deleteBackup !== 'function') return;
    for (const d of this.pruneDecisions(svc, storage, false)) {
      if (state.getArtifact(d.id)?.protected) continue;
      try {
        await plugin.deleteBackup(ref, { id: d.location, storage }, this.op(svc, false, signal));
        state.markArtifactDeleted(d.id);
        result.pruned.push({ destination: storage, path: d.location, reason: d.reason, ok: true });
        this.log.child(svc.name).info(`pruned ${d.location} (${d.reason})`);
      } catch (e) {
        if (isAbortError(e) || signal.aborted) throw e;
        result.pruned.push({ destination: storage, path: d.location, reason: d.reason, ok: false, error: mask(describeError(e)) });
        this.log.child(svc.name).warn(`could not prune ${d.location}: ${describeError(e)}`);
      }
    }
  }
}

/** A plugin's error with a `hint` keeps it; the message is what the user sees. */
function pluginError(e: unknown): unknown {
  if (e instanceof AutopilotError || isAbortError(e)) return e;
  const err = e as Error & { hint?: string };
  if (err instanceof Error)
    return new AutopilotError('JOB_FAILED', err.message, { hint: typeof err.hint === 'string' ? err.hint : undefined, cause: e });
  return e;
}
