/**
 * The update engine: snapshot, update, validate, and roll back by itself when validation
 * fails. Its steps are declared once (PLAN), so that --dry-run prints the plan a real run
 * follows. Guests (lxc, vm) are updated through their hypervisor plugin (snapshot, a command
 * run inside the guest, rollback); services whose plugin has an `updater` through it (for
 * example docker-compose: image digests and volumes, pull and recreate).
 */
import * as os from 'node:os';
import { critical } from '../../lib/critical';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import { splitCommandLine } from '../../lib/exec';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import { namedServices } from '../config/select';
import type { AutopilotConfig } from '../config/types';
import { describeCheck, runChecks, type CheckResult, type HealthCheck } from '../health/checks';
import type { DeliveryReport, NotificationEngine, NotifyEvent } from '../notify/engine';
import type {
  GuestRef,
  HypervisorPlugin,
  OperationContext,
  ServiceConfig,
  ServicePlugin,
  ServiceUpdater,
  SnapshotInfo,
  UpdateResult,
} from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';

export type StepId = 'precheck' | 'snapshot' | 'update' | 'validate' | 'cleanup' | 'rollback' | 'revalidate';

/** The steps, in order; the last two run only when the update or its validation failed. */
export const PLAN: { id: StepId; title: string; onFailure?: true }[] = [
  { id: 'precheck', title: 'pre-checks: healthy now, enough free space, no other job holds its lock' },
  { id: 'snapshot', title: 'snapshot' },
  { id: 'update', title: 'update' },
  { id: 'validate', title: 'validate: health checks, retried over the settle window' },
  { id: 'cleanup', title: 'remove older autopilot snapshots' },
  { id: 'rollback', title: 'on failure: roll back to the snapshot', onFailure: true },
  { id: 'revalidate', title: 'on failure: validate again, alert', onFailure: true },
];

export interface StepResult {
  step: StepId;
  status: 'success' | 'failed' | 'skipped' | 'planned' | 'interrupted';
  detail: string;
  durationMs: number;
  checks?: CheckResult[];
}

export interface ServiceUpdateResult {
  service: string;
  type: string;
  /** rolled_back: the update failed and the service is back as it was; rollback_failed: needs a person */
  status: 'success' | 'unchanged' | 'rolled_back' | 'rollback_failed' | 'failed' | 'interrupted' | 'planned';
  error?: string;
  hint?: string;
  snapshot?: SnapshotInfo;
  steps: StepResult[];
  durationMs: number;
  /** what to do by hand when the rollback failed */
  manual?: string;
}

export interface UpdateReport {
  runId: number | null;
  dryRun: boolean;
  ok: boolean;
  interrupted: boolean;
  startedAt: string;
  durationMs: number;
  services: ServiceUpdateResult[];
  notifications: DeliveryReport[];
}

export interface UpdateRequest {
  services: string[];
  all: boolean;
  dryRun: boolean;
  /** services updated at once (default updates.parallel, 1: one after the other) */
  parallel?: number;
}

export interface UpdateEngineDeps {
  config: AutopilotConfig;
  registry: PluginRegistry;
  logger: Logger;
  state: StateManager | null;
  signal: AbortSignal;
  notifier?: NotificationEngine;
  onStep?(service: string, step: StepResult): void;
  now?(): Date;
}

interface UpdateSettings {
  settleMs: number;
  intervalMs: number;
  keep: number;
  timeoutMs: number;
  minFreeBytes: number;
  command?: (string | string[])[];
}

/** How one service is snapshotted, updated and rolled back: a guest of a hypervisor, or a plugin's updater. */
interface Driver {
  /** for messages: "CT 100 via proxmox" */
  what: string;
  describe(op: OperationContext, s: UpdateSettings): Promise<{ snapshot: string; update: string; rollback: string }>;
  precheck(op: OperationContext, s: UpdateSettings): Promise<string[]>;
  snapshot(name: string, op: OperationContext): Promise<SnapshotInfo>;
  update(op: OperationContext, s: UpdateSettings): Promise<UpdateResult>;
  rollback(snap: SnapshotInfo, op: OperationContext): Promise<void>;
  /** the autopilot snapshots there are, oldest first */
  snapshots(op: OperationContext): Promise<SnapshotInfo[]>;
  deleteSnapshot(snap: SnapshotInfo, op: OperationContext): Promise<void>;
  running?(op: OperationContext): Promise<boolean>;
  /** the command to roll back by hand */
  manual(snap: SnapshotInfo): string;
}

const SNAP_PREFIX = 'autopilot_';
const DEFAULT_GUEST_COMMANDS: string[][] = [
  ['apt-get', 'update'],
  [
    'env',
    'DEBIAN_FRONTEND=noninteractive',
    'apt-get',
    '-y',
    '-o',
    'Dpkg::Options::=--force-confdef',
    '-o',
    'Dpkg::Options::=--force-confold',
    'dist-upgrade',
  ],
];

function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

const argvOf = (c: string | string[]): string[] => (Array.isArray(c) ? c : splitCommandLine(c));

function guestDriver(svc: ServiceConfig, provider: { name: string; instance: HypervisorPlugin }): Driver {
  const hv = provider.instance;
  const ref: GuestRef = { service: svc.name, id: String(svc.vmid ?? svc.id ?? ''), type: svc.type, config: svc };
  const need = <K extends keyof HypervisorPlugin>(k: K): NonNullable<HypervisorPlugin[K]> => {
    const f = hv[k];
    if (typeof f !== 'function')
      throw new AutopilotError('PLUGIN_FAILED', `the ${provider.name} plugin cannot ${String(k)}, which updates of guests need`);
    return (f as (...a: unknown[]) => unknown).bind(hv) as NonNullable<HypervisorPlugin[K]>;
  };
  const kind = svc.type === 'vm' ? 'VM' : 'CT';
  const commands = (s: UpdateSettings): string[][] => (s.command ? s.command.map(argvOf) : DEFAULT_GUEST_COMMANDS);
  return {
    what: `${kind} ${ref.id} via ${provider.name}`,
    async describe(_op, s) {
      return {
        snapshot: `a ${provider.name} snapshot of ${kind} ${ref.id}`,
        update: commands(s)
          .map((c) => `run in ${kind} ${ref.id}: ${c.join(' ')}`)
          .join('; then '),
        rollback: `roll ${kind} ${ref.id} back to that snapshot (and start it again if it ran)`,
      };
    },
    precheck: (op, s) => (hv.precheckGuest ? hv.precheckGuest(ref, { ...op, minFreeBytes: s.minFreeBytes }) : Promise.resolve([])),
    snapshot: (name, op) => need('createSnapshot')(ref, name, 'homelab-autopilot: before an update', op),
    async update(op, s) {
      const exec = need('execInGuest');
      let first = true;
      for (const argv of commands(s)) {
        op.logger.info(`${kind} ${ref.id}: ${argv.join(' ')}`);
        let r: Awaited<ReturnType<typeof exec>>;
        try {
          r = await exec(ref, argv, { ...op, timeoutMs: s.timeoutMs });
        } catch (e) {
          // the runner itself could not start (pct, qm or ssh missing): nothing ran in the guest
          if (first && !op.signal.aborted)
            throw Object.assign(new AutopilotError('JOB_FAILED', `cannot run commands in ${kind} ${ref.id}: ${describeError(e)}`), {
              nothingChanged: true,
            });
          throw e;
        }
        // ssh's own failure (connection refused, host key, auth) is exit 255: the command never ran
        if (
          first &&
          r.code === 255 &&
          /^(Permission denied|ssh: |Host key verification failed|Connection (refused|timed out|closed))/m.test(r.stderr)
        ) {
          throw Object.assign(
            new AutopilotError(
              'JOB_FAILED',
              `cannot reach ${kind} ${ref.id} to run commands in it: ${r.stderr.trim().split('\n').slice(-1)[0]}`,
            ),
            { nothingChanged: true },
          );
        }
        first = false;
        if (r.code !== 0) {
          const tail = `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-3).join(' | ');
          throw new AutopilotError(
            'JOB_FAILED',
            `'${argv.join(' ')}' in ${kind} ${ref.id} exited ${r.code ?? r.signal}${tail ? `: ${tail}` : ''}`,
          );
        }
      }
      return { changed: true, summary: `${commands(s).length} command${commands(s).length > 1 ? 's' : ''} ran in ${kind} ${ref.id}` };
    },
    rollback: (snap, op) => need('rollbackSnapshot')(ref, snap, op),
    async snapshots(op) {
      return (await need('listSnapshots')(ref, op)).filter((x) => x.id.startsWith(SNAP_PREFIX));
    },
    deleteSnapshot: (snap, op) => need('deleteSnapshot')(ref, snap, op),
    running: async (op) => (await hv.guestStatus(ref, op)).state === 'running',
    manual: (snap) =>
      provider.name === 'proxmox'
        ? `on the node of ${kind} ${ref.id}: ${svc.type === 'vm' ? 'qm' : 'pct'} rollback ${ref.id} ${snap.id} && ${svc.type === 'vm' ? 'qm' : 'pct'} start ${ref.id}`
        : `roll ${kind} ${ref.id} back to snapshot ${snap.id} with ${provider.name}'s tools`,
  };
}

function serviceDriver(svc: ServiceConfig, plugin: ServicePlugin, state: StateManager | null): Driver {
  const u = plugin.updater as ServiceUpdater;
  const key = `update.snapshots.${svc.name}`;
  return {
    what: `${svc.type} service ${svc.name}`,
    async describe(op) {
      return u.describeUpdate
        ? u.describeUpdate(svc, op)
        : {
            snapshot: `the ${svc.type} plugin's snapshot`,
            update: `the ${svc.type} plugin's update`,
            rollback: `the ${svc.type} plugin's rollback`,
          };
    },
    precheck: (op, s) => (u.precheck ? u.precheck(svc, { ...op, minFreeBytes: s.minFreeBytes } as OperationContext) : Promise.resolve([])),
    async snapshot(name, op) {
      const snap = await u.snapshot(svc, name, op);
      // remembered in state, so that older ones can be removed after later good updates
      if (state && !state.readonly) state.set(key, [...(state.get<SnapshotInfo[]>(key, []) ?? []), snap]);
      return snap;
    },
    update: (op) => u.update(svc, op),
    rollback: (snap, op) => u.rollback(svc, snap, op),
    snapshots: async () => (state?.get<SnapshotInfo[]>(key, []) ?? []).filter((s) => s.id.startsWith(SNAP_PREFIX)),
    async deleteSnapshot(snap, op) {
      if (u.deleteSnapshot) await u.deleteSnapshot(svc, snap, op);
      if (state && !state.readonly)
        state.set(
          key,
          (state.get<SnapshotInfo[]>(key, []) ?? []).filter((s) => s.id !== snap.id),
        );
    },
    running: u.isRunning ? (op) => (u.isRunning as NonNullable<ServiceUpdater['isRunning']>)(svc, op) : undefined,
    manual: (snap) =>
      `see docs/updates.md: restore ${svc.name} from snapshot ${snap.id}${snap.data?.archive ? ` (its data: ${String(snap.data.archive)})` : ''}`,
  };
}

function updateEvent(r: ServiceUpdateResult): NotifyEvent | null {
  const err = r.error ? `\n${r.error}` : '';
  const rolledBack = r.steps.some((x) => x.step === 'revalidate' && x.status === 'success');
  switch (r.status === 'interrupted' && rolledBack ? 'rolled_back' : r.status) {
    case 'success':
      return {
        event: 'update_success',
        severity: 'success',
        subject: r.service,
        title: `Update of ${r.service} succeeded`,
        text: r.steps.find((s) => s.step === 'update')?.detail ?? '',
        details: { durationMs: r.durationMs },
      };
    case 'rolled_back':
      return {
        event: 'rollback_executed',
        severity: 'warning',
        subject: r.service,
        title: `Update of ${r.service} failed and was ROLLED BACK`,
        text: `${r.status === 'interrupted' ? 'The update was interrupted. ' : ''}The service was rolled back to snapshot ${r.snapshot?.id ?? '?'} and passed its health checks again.${err}`,
        details: { snapshot: r.snapshot?.id, durationMs: r.durationMs },
      };
    case 'rollback_failed':
      return {
        event: 'update_failed',
        severity: 'critical',
        subject: r.service,
        title: `Update of ${r.service} failed and the ROLLBACK FAILED too: act now`,
        text: `${r.error ?? ''}\nWhat to do by hand: ${r.manual ?? 'restore the service from its last backup'}`,
        details: { snapshot: r.snapshot?.id },
      };
    case 'failed':
    case 'interrupted':
      return {
        event: 'update_failed',
        severity: 'warning',
        subject: r.service,
        title: `Update of ${r.service} was not done`,
        text: `${r.error ?? ''}${r.hint ? `\nhint: ${r.hint}` : ''}`,
        details: { snapshot: r.snapshot?.id },
      };
    default:
      return null;
  }
}

export class UpdateEngine {
  private readonly log: Logger;
  constructor(private readonly deps: UpdateEngineDeps) {
    this.log = deps.logger.child('update');
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /** The driver of a service, or why it cannot be updated. */
  private driver(svc: ServiceConfig): Driver {
    const provider = this.deps.registry.guestProvider(svc.type);
    // a missing or failed plugin is named by require(); an installed one may still lack what updates need
    const plugin = provider ? null : this.deps.registry.require<ServicePlugin>('service', svc.type, `service '${svc.name}'`);
    if (!this.updatable(svc)) {
      throw new AutopilotError('USAGE', `services of type ${svc.type} cannot be updated by homelab-autopilot`, {
        hint: 'updates exist for lxc, vm, docker-compose and caddy services (and plugins with an updater)',
      });
    }
    return provider ? guestDriver(svc, provider) : serviceDriver(svc, plugin as ServicePlugin, this.deps.state);
  }

  private updatable(svc: ServiceConfig): boolean {
    const provider = this.deps.registry.guestProvider(svc.type);
    if (provider) return typeof provider.instance.createSnapshot === 'function' && typeof provider.instance.execInGuest === 'function';
    return Boolean(this.deps.registry.find<ServicePlugin>('service', svc.type)?.updater);
  }

  selectServices(req: UpdateRequest): ServiceConfig[] {
    const services = this.deps.config.services;
    const upd = (s: ServiceConfig): { enabled?: boolean } => (s.update as { enabled?: boolean } | undefined) ?? {};
    if (req.all) {
      if (req.services.length) throw new AutopilotError('USAGE', 'give service names or --all, not both');
      // a guest is updated by --all only when its config says how (update:), since the default
      // commands suit Debian-like guests only; named on the command line, the default applies
      return services.filter(
        (s) =>
          s.enabled !== false &&
          upd(s).enabled !== false &&
          this.updatable(s) &&
          (!this.deps.registry.guestProvider(s.type) || s.update !== undefined),
      );
    }
    if (!req.services.length)
      throw new AutopilotError('USAGE', 'name the services to update, or give --all', {
        hint: `updatable services: ${
          services
            .filter((s) => this.updatable(s))
            .map((s) => s.name)
            .join(', ') || 'none'
        }`,
      });
    const chosen = namedServices(services, req.services);
    for (const s of chosen) {
      if (upd(s).enabled === false) throw new AutopilotError('USAGE', `updates of '${s.name}' are turned off (update.enabled: false)`);
      this.driver(s); // a clear error now for a type that cannot be updated
    }
    return chosen;
  }

  private settings(svc: ServiceConfig): UpdateSettings {
    const g = this.deps.config.updates;
    const u =
      (svc.update as
        | Partial<{
            settle_seconds: number;
            check_interval: number;
            keep_snapshots: number;
            timeout: number;
            min_free_mb: number;
            command: (string | string[])[];
          }>
        | undefined) ?? {};
    return {
      settleMs: (u.settle_seconds ?? g.settle_seconds) * 1000,
      intervalMs: (u.check_interval ?? g.check_interval) * 1000,
      keep: u.keep_snapshots ?? g.keep_snapshots,
      timeoutMs: (u.timeout ?? g.timeout) * 1000,
      minFreeBytes: (u.min_free_mb ?? g.min_free_mb) * 1024 * 1024,
      command: u.command,
    };
  }

  private checks(svc: ServiceConfig, d: Driver): HealthCheck[] {
    const own = (svc.health_checks as HealthCheck[] | undefined) ?? [];
    if (own.length) return own;
    return d.running ? [{ type: 'running' }] : [];
  }

  private op(svc: ServiceConfig, dryRun: boolean, signal: AbortSignal, deadline?: number): OperationContext {
    return { signal, logger: this.deps.logger.child(`update:${svc.name}`), dryRun, deadline };
  }

  async run(req: UpdateRequest): Promise<UpdateReport> {
    const targets = this.selectServices(req);
    const startedAt = this.now();
    const report: UpdateReport = {
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
    if (!req.dryRun) {
      if (!state) throw new AutopilotError('INTERNAL', 'the update engine needs the state database');
      state.markInterruptedRuns();
      report.runId = state.startRun('update', req.all ? 'all' : req.services.join(','));
    }
    try {
      // one after the other by default; --parallel N runs N at once (each service has its own lock)
      const limit = Math.max(1, Math.min(req.parallel ?? this.deps.config.updates.parallel, targets.length || 1));
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < targets.length) {
          const svc = targets[next++];
          if (this.deps.signal.aborted) {
            report.interrupted = true;
            report.services.push({
              service: svc.name,
              type: svc.type,
              status: 'interrupted',
              error: 'not started: the run was cancelled',
              steps: [],
              durationMs: 0,
            });
            continue;
          }
          const r = req.dryRun ? await this.plan(svc) : await this.updateOne(svc, report.runId);
          if (r.status === 'interrupted') report.interrupted = true;
          report.services.push(r);
          const ev = req.dryRun ? null : updateEvent(r);
          if (ev && this.deps.notifier) report.notifications.push(await this.deps.notifier.notify(ev, report.runId));
        }
      };
      await Promise.all(Array.from({ length: limit }, worker));
      const order = new Map(targets.map((t, i) => [t.name, i]));
      report.services.sort((a, b) => (order.get(a.service) ?? 0) - (order.get(b.service) ?? 0));
    } finally {
      report.ok =
        !report.interrupted && report.services.every((s) => s.status === 'success' || s.status === 'unchanged' || s.status === 'planned');
      report.durationMs = this.now().getTime() - startedAt.getTime();
      if (state && report.runId !== null) {
        state.finishRun(report.runId, report.interrupted ? 'interrupted' : report.ok ? 'success' : 'failed', {
          services: report.services.map((s) => ({ service: s.service, status: s.status })),
          durationMs: report.durationMs,
        });
      }
    }
    return report;
  }

  /** --dry-run: the same PLAN, each step with what it would do; pre-checks run (they only read). */
  private async plan(svc: ServiceConfig): Promise<ServiceUpdateResult> {
    const started = Date.now();
    const steps: StepResult[] = [];
    const result: ServiceUpdateResult = { service: svc.name, type: svc.type, status: 'planned', steps, durationMs: 0 };
    try {
      const d = this.driver(svc);
      const s = this.settings(svc);
      const op = this.op(svc, true, this.deps.signal);
      const desc = await d.describe(op, s);
      const checks = this.checks(svc, d);
      for (const p of PLAN) {
        const t0 = Date.now();
        let detail = '';
        let status: StepResult['status'] = 'planned';
        let checkResults: CheckResult[] | undefined;
        switch (p.id) {
          case 'precheck': {
            const problems = await this.prechecks(svc, d, s, op);
            checkResults = problems.checks;
            detail = problems.list.length
              ? `would stop here: ${problems.list.join('; ')}`
              : `would pass now (${checks.length ? checks.map(describeCheck).join(', ') : 'no health checks'}; lock free; free space)`;
            if (problems.list.length) status = 'failed';
            break;
          }
          case 'snapshot':
            detail = `${desc.snapshot}, named ${SNAP_PREFIX}<time>`;
            break;
          case 'update':
            detail = desc.update;
            break;
          case 'validate':
            detail = checks.length
              ? `${checks.map(describeCheck).join(', ')}: every ${s.intervalMs / 1000}s for up to ${s.settleMs / 1000}s`
              : 'no health checks configured: the update counts as good when it finishes';
            break;
          case 'cleanup': {
            const existing = await d.snapshots(op).catch(() => [] as SnapshotInfo[]);
            const remove = existing.slice(0, Math.max(0, existing.length + 1 - s.keep));
            detail = `keep the ${s.keep} newest autopilot snapshots${remove.length ? `: would remove ${remove.map((x) => x.id).join(', ')}` : ''}`;
            break;
          }
          case 'rollback':
            detail = desc.rollback;
            break;
          case 'revalidate':
            detail =
              'the same health checks; then a rollback_executed alert (or, if that fails too, a critical alert with what to do by hand)';
            break;
        }
        steps.push({ step: p.id, status, detail, durationMs: Date.now() - t0, checks: checkResults });
      }
      if (steps.some((x) => x.status === 'failed')) {
        result.status = 'failed';
        result.error = steps.find((x) => x.status === 'failed')?.detail;
      }
    } catch (e) {
      result.status = 'failed';
      result.error = mask(describeError(e));
      result.hint = e instanceof AutopilotError ? e.hint : (e as { hint?: string })?.hint;
    }
    result.durationMs = Date.now() - started;
    return result;
  }

  private async prechecks(
    svc: ServiceConfig,
    d: Driver,
    s: UpdateSettings,
    op: OperationContext,
  ): Promise<{ list: string[]; checks: CheckResult[] }> {
    const list: string[] = [];
    const state = this.deps.state;
    for (const lock of ['backup', `update.${svc.name}`]) {
      const holder = state?.liveLockHolder(lock);
      if (holder && !(holder.pid === process.pid && holder.host === os.hostname()))
        list.push(`the ${lock} lock is held by pid ${holder.pid} on ${holder.host} (${holder.command ?? 'another run'})`);
    }
    const checks = this.checks(svc, d);
    const health = await runChecks(checks, {
      signal: op.signal,
      running: d.running ? () => (d.running as NonNullable<Driver['running']>)(op) : undefined,
    });
    for (const r of health.results) if (!r.ok) list.push(`not healthy now: ${r.check}: ${r.detail}`);
    list.push(...(await d.precheck(op, s)));
    return { list, checks: health.results };
  }

  /** Health checks, again and again, until all pass or the settle window is over. */
  private async validate(
    svc: ServiceConfig,
    d: Driver,
    s: UpdateSettings,
    op: OperationContext,
  ): Promise<{ ok: boolean; detail: string; checks: CheckResult[] }> {
    const checks = this.checks(svc, d);
    if (!checks.length) return { ok: true, detail: 'no health checks configured', checks: [] };
    const until = Date.now() + s.settleMs;
    let round = 0;
    let passes = 0;
    for (;;) {
      round++;
      const r = await runChecks(checks, {
        signal: op.signal,
        running: d.running ? () => (d.running as NonNullable<Driver['running']>)(op) : undefined,
      });
      passes = r.ok ? passes + 1 : 0;
      // healthy twice in a row (one interval apart), so that a service that starts and then crashes does not pass;
      // once, when the settle window leaves no time for a second round
      const enough = passes >= 2 || (passes === 1 && Date.now() + s.intervalMs > until);
      if (enough)
        return {
          ok: true,
          detail: `healthy after ${round} round${round > 1 ? 's' : ''}: ${r.results.map((x) => `${x.check}: ${x.detail}`).join(', ')}`,
          checks: r.results,
        };
      if (!r.ok && (Date.now() + s.intervalMs > until || op.signal.aborted)) {
        const bad = r.results.filter((x) => !x.ok);
        return {
          ok: false,
          detail: `still unhealthy after ${round} round${round > 1 ? 's' : ''} (${s.settleMs / 1000}s): ${bad.map((x) => `${x.check}: ${x.detail}`).join('; ')}`,
          checks: r.results,
        };
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, s.intervalMs);
        op.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  private async updateOne(svc: ServiceConfig, jobRunId: number | null): Promise<ServiceUpdateResult> {
    const state = this.deps.state as StateManager;
    const started = Date.now();
    const steps: StepResult[] = [];
    const result: ServiceUpdateResult = { service: svc.name, type: svc.type, status: 'success', steps, durationMs: 0 };
    const runId = state.startRun('update', svc.name, { parentId: jobRunId });
    const log = this.log.child(svc.name);
    let lock: { release(): void } | null = null;
    // one step, recorded in state with its timing
    const step = async <T>(
      id: StepId,
      fn: () => Promise<{ value: T; detail: string; ok?: boolean; checks?: CheckResult[] }>,
    ): Promise<T> => {
      const t0 = Date.now();
      const stepId = state.startStep(runId, id);
      log.info(`${id}…`);
      try {
        const r = await fn();
        const sr: StepResult = {
          step: id,
          status: r.ok === false ? 'failed' : 'success',
          detail: mask(r.detail),
          durationMs: Date.now() - t0,
          checks: r.checks,
        };
        steps.push(sr);
        state.finishStep(stepId, sr.status === 'success' ? 'success' : 'failed', sr.detail);
        this.deps.onStep?.(svc.name, sr);
        log[r.ok === false ? 'warn' : 'info'](`${id}: ${sr.detail}`);
        return r.value;
      } catch (e) {
        const interrupted = isAbortError(e) || this.deps.signal.aborted;
        const sr: StepResult = {
          step: id,
          status: interrupted ? 'interrupted' : 'failed',
          detail: mask(interrupted && this.deps.signal.aborted ? 'cancelled' : describeError(e)),
          durationMs: Date.now() - t0,
        };
        steps.push(sr);
        state.finishStep(stepId, sr.status === 'interrupted' ? 'interrupted' : 'failed', sr.detail);
        this.deps.onStep?.(svc.name, sr);
        log.error(`${id} failed: ${sr.detail}`);
        throw e;
      }
    };
    let d: Driver | null = null;
    let snap: SnapshotInfo | null = null;
    let failure: unknown = null;
    try {
      d = this.driver(svc);
      const drv = d;
      const s = this.settings(svc);
      lock = await state.acquireLock(`update.${svc.name}`, {
        waitMs: this.deps.config.updates.lock_wait * 1000,
        signal: this.deps.signal,
        command: `update ${svc.name}`,
      });
      const op = (signal: AbortSignal, deadline?: number): OperationContext => this.op(svc, false, signal, deadline);
      await step('precheck', async () => {
        const p = await this.prechecks(svc, drv, s, op(this.deps.signal));
        if (p.list.length)
          throw new AutopilotError('JOB_FAILED', `pre-checks failed: ${p.list.join('; ')}`, {
            hint: 'nothing was changed; fix that and run the update again',
          });
        return {
          value: null,
          detail: `passed (${p.checks.map((c) => c.check).join(', ') || 'no health checks'}; lock free; free space)`,
          checks: p.checks,
        };
      });
      const name = `${SNAP_PREFIX}${stamp(this.now())}`;
      // the snapshot is not cut short by a SIGINT (a half-made snapshot, a project left stopped): it has a time-out of its own
      snap = await critical.run(`the snapshot of ${svc.name}`, () =>
        step('snapshot', async () => {
          const v = await drv.snapshot(name, op(AbortSignal.timeout(s.timeoutMs), Date.now() + s.timeoutMs));
          return { value: v, detail: `${v.id}${v.description ? ` (${v.description})` : ''}` };
        }),
      );
      result.snapshot = snap;
      if (this.deps.signal.aborted)
        throw new AutopilotError('ABORTED', `cancelled before the update began (the snapshot ${snap.id} was kept)`);
      try {
        const updSignal = AbortSignal.any([this.deps.signal, AbortSignal.timeout(s.timeoutMs)]);
        const upd = await step('update', async () => {
          const v = await drv.update(op(updSignal, Date.now() + s.timeoutMs), s);
          return { value: v, detail: v.summary };
        });
        if (!upd.changed) result.status = 'unchanged';
        const v = await step('validate', async () => {
          const r = await this.validate(svc, drv, s, op(this.deps.signal));
          return { value: r, detail: r.detail, ok: r.ok, checks: r.checks };
        });
        if (!v.ok) throw new AutopilotError('JOB_FAILED', `validation failed: ${v.detail}`);
      } catch (e) {
        failure = e;
      }
      if (failure === null) {
        // best effort: the update is good whatever happens here
        const cleanSignal = AbortSignal.timeout(s.timeoutMs);
        await step('cleanup', async () => {
          const all = await drv.snapshots(op(cleanSignal));
          const remove = all.filter((x) => x.id !== snap?.id).slice(0, Math.max(0, all.length - s.keep));
          const done: string[] = [];
          for (const x of remove) {
            try {
              await drv.deleteSnapshot(x, op(cleanSignal));
              done.push(x.id);
            } catch (e) {
              log.warn(`could not remove snapshot ${x.id}: ${describeError(e)}`);
            }
          }
          return {
            value: null,
            detail: done.length ? `removed ${done.join(', ')}; kept ${all.length - done.length}` : `nothing to remove (${all.length} kept)`,
          };
        }).catch((e) => {
          log.warn(`cleanup of older snapshots failed (the update itself is good): ${describeError(e)}`);
        });
      } else if ((failure as { nothingChanged?: boolean }).nothingChanged) {
        // nothing ran, so nothing to roll back (a rollback would stop and restart the guest for nothing)
        result.status = 'failed';
        result.error = mask(describeError(failure));
        result.hint = 'nothing was changed; check how commands reach the guest (plugins.proxmox.guest_exec)';
        const taken = snap;
        try {
          await drv.deleteSnapshot(taken, op(AbortSignal.timeout(s.timeoutMs)));
        } catch (e) {
          log.warn(`could not remove the unused snapshot ${taken.id}: ${describeError(e)}`);
        }
      } else {
        // roll back, even when the run was cancelled: with a time of its own
        result.error = mask(this.deps.signal.aborted ? 'the update was cancelled' : describeError(failure));
        const rbSignal = AbortSignal.timeout(s.timeoutMs);
        const taken = snap;
        try {
          await critical.run(`the rollback of ${svc.name}`, () =>
            step('rollback', async () => {
              await drv.rollback(taken, op(rbSignal, Date.now() + s.timeoutMs));
              return { value: null, detail: `back to ${taken.id}` };
            }),
          );
          const rv = await step('revalidate', async () => {
            const r = await this.validate(svc, drv, s, op(rbSignal));
            return { value: r, detail: r.detail, ok: r.ok, checks: r.checks };
          });
          if (!rv.ok) throw new AutopilotError('JOB_FAILED', `after the rollback the service is still unhealthy: ${rv.detail}`);
          result.status = this.deps.signal.aborted ? 'interrupted' : 'rolled_back';
        } catch (e) {
          result.status = 'rollback_failed';
          result.error = mask(`${result.error}; then the rollback failed: ${describeError(e)}`);
          result.manual = drv.manual(taken);
        }
      }
    } catch (e) {
      // before the update began: nothing was changed (a snapshot may have been made, and kept)
      result.status = this.deps.signal.aborted || isAbortError(e) ? 'interrupted' : 'failed';
      result.error = mask(
        this.deps.signal.aborted
          ? snap
            ? `cancelled before the update began (the snapshot ${snap.id} was kept)`
            : 'cancelled before anything was changed'
          : describeError(e),
      );
      result.hint = e instanceof AutopilotError ? e.hint : (e as { hint?: string })?.hint;
    } finally {
      lock?.release();
      result.durationMs = Date.now() - started;
      state.finishRun(
        runId,
        result.status === 'success' || result.status === 'unchanged'
          ? 'success'
          : result.status === 'interrupted'
            ? 'interrupted'
            : 'failed',
        {
          status: result.status,
          error: result.error,
          snapshot: result.snapshot?.id,
          steps: steps.map((x) => ({ step: x.step, status: x.status, durationMs: x.durationMs })),
        },
      );
    }
    if (result.status === 'rollback_failed') log.error(`${svc.name}: the rollback failed; by hand: ${result.manual}`);
    return result;
  }
}
