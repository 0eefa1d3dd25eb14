/**
 * The monitor engine: runs the specs (model.ts) through the scheduler, applies each result
 * to its check's state (states.ts: thresholds, MAINTENANCE, FLAPPING), writes results in one
 * transaction per wake-up, rolls results up into hourly and daily aggregates once an hour is
 * over, and raises alerts (alerts.ts) through the notification engine.
 *
 * pass(): every spec once (the `monitor` command, for cron). loop(): the daemon's mode, one
 * loop over what is due until its signal aborts.
 */
import { setMaxListeners } from 'node:events';
import { realClock, type Clock } from '../../lib/async';
import { durationSeconds } from '../../lib/duration';
import { describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import type { CheckRow, Lock, StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import type { NotificationEngine } from '../notify/engine';
import type { PluginRegistry } from '../plugins/host';
import { alertsFor, downSubjects, unreachableVia } from './alerts';
import { MaintenanceWindows, maintenanceNow } from './maintenance';
import { buildSpecs, dependencyClosure, resourceSpecs } from './model';
import type { ResourceProbe } from './resources';
import { isFlip, nextHealth, step } from './states';
import { loop, runAll, runProbe } from './scheduler';
import type { CheckReport, MonitorSpec, PassReport, ProbeEnv, ProbeResult } from './types';

export interface MonitorEngineDeps {
  config: AutopilotConfig;
  registry: PluginRegistry;
  state: StateManager | null;
  logger: Logger;
  notifier: NotificationEngine | null;
  clock?: Clock;
  /** makes the resource probes (resources.ts: the nodes are asked of the hypervisor plugins); none when omitted */
  resources?(signal: AbortSignal): Promise<ResourceProbe[]>;
}

/** How often the daemon's loop writes the results that came in. */
const FLUSH_EVERY_MS = 1000;

/** Results a pass writes at once while it goes on. */
const WRITE_BATCH = 200;

interface Pending {
  spec: MonitorSpec;
  r: ProbeResult;
  at: Date;
}

export class MonitorEngine {
  readonly specs: MonitorSpec[];
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly rows = new Map<string, CheckRow>();
  private readonly windows: MaintenanceWindows;
  private readonly closure: Map<string, string[]>;
  private pending: Pending[] = [];
  private maintenance = new Map<string, string>();
  private maintenanceAt = 0;
  private readonly flapWindowMs: number;
  private readonly retention: { raw: number; hourly: number; daily: number };
  private rolledHour = -1;

  constructor(private readonly deps: MonitorEngineDeps) {
    this.clock = deps.clock ?? realClock;
    this.log = deps.logger.child('monitor');
    const m = deps.config.monitoring;
    this.specs = buildSpecs(deps.config, deps.registry, this.log);
    this.closure = dependencyClosure(this.specs);
    this.windows = new MaintenanceWindows(m.maintenance, deps.config.schedules?.timezone);
    this.flapWindowMs = durationSeconds(m.flapping.window) * 1000;
    this.retention = {
      raw: Math.max(durationSeconds(m.retention.raw), 3600),
      // daily rows are made from the hours of their day: those must be kept a day at least
      hourly: Math.max(durationSeconds(m.retention.hourly), 86400),
      daily: durationSeconds(m.retention.daily),
    };
  }

  private prepared: Promise<void> | null = null;

  /** Adds the resource specs (once): the nodes are learnt from the hypervisor plugins. Call before asking for specs by subject. */
  prepare(signal: AbortSignal): Promise<void> {
    this.prepared ??= (async () => {
      const resources = this.deps.resources ? await this.deps.resources(signal) : [];
      this.specs.push(...resourceSpecs(this.deps.config, resources));
    })();
    return this.prepared;
  }

  /** The specs of some subjects (all when none are named). */
  select(subjects?: string[]): MonitorSpec[] {
    return subjects?.length ? this.specs.filter((s) => subjects.includes(s.subject)) : this.specs;
  }

  /** Loads (creating as PENDING) the rows of the specs. */
  private load(specs: MonitorSpec[]): void {
    const state = this.deps.state;
    if (!state || state.readonly) return;
    const iso = this.clock.now().toISOString();
    state.monitor.batch(() => {
      for (const [k, r] of state.monitor.ensureChecks(specs, iso)) this.rows.set(k, r);
      // checks the config has not had for a week are forgotten, with their history
      const forgotten = state.monitor.forgetUnseen(new Date(this.clock.now().getTime() - 7 * 86400_000).toISOString());
      if (forgotten) this.log.info(`forgot ${forgotten} check(s) the config no longer has`);
    });
  }

  private env(spec: MonitorSpec, signal: AbortSignal): ProbeEnv {
    const state = this.deps.state;
    const id = this.rows.get(spec.key)?.id;
    return {
      signal,
      timeoutMs: spec.timeoutMs,
      now: () => this.clock.now(),
      state,
      history: (since) => (state && id !== undefined ? state.monitor.values(id, since) : []),
    };
  }

  private run = (spec: MonitorSpec, signal: AbortSignal): Promise<ProbeResult> =>
    runProbe(spec, (s, sig) => this.env(s, sig), signal, this.clock);

  /** Maintenance of every subject, asked at most once a second. */
  private maintenanceOf(subject: string, at: Date): string | null {
    if (at.getTime() - this.maintenanceAt >= 1000) {
      const subjects = [...new Set(this.specs.map((s) => s.subject))];
      this.maintenance = maintenanceNow(this.deps.state, this.windows, subjects, at);
      this.maintenanceAt = at.getTime();
    }
    return this.maintenance.get(subject) ?? null;
  }

  /** Applies a result to its row (in memory and in state: called inside flush()'s transaction). */
  private apply({ spec, r, at }: Pending): void {
    const state = this.deps.state;
    const row = this.rows.get(spec.key);
    if (!row || !state) return;
    const m = this.deps.config.monitoring;
    const maintenance = this.maintenanceOf(spec.subject, at);
    // leaving maintenance (our own work, a window): the thresholds count afresh, so that a guest
    // still booting after its stop-mode backup is not DOWN at its first failing result
    const base =
      row.state === 'MAINTENANCE' && !maintenance
        ? { ...row, fails: 0, oks: 0, health: row.health === 'DOWN' ? ('PENDING' as const) : row.health }
        : row;
    const h = nextHealth(base, r.ok, spec.failureThreshold, spec.recoveryThreshold);
    // the transitions are only counted when they could matter
    const flipsBefore =
      isFlip(base.health, h.health) || row.state === 'FLAPPING'
        ? state.monitor.flips(row.id, new Date(at.getTime() - this.flapWindowMs).toISOString())
        : 0;
    const next = step(base, {
      ok: r.ok,
      failureThreshold: spec.failureThreshold,
      recoveryThreshold: spec.recoveryThreshold,
      maintenance,
      flipsBefore,
      flapChanges: m.flapping.changes,
    });
    const detail = r.detail;
    state.monitor.record(row.id, { at, ok: r.ok, ms: r.durationMs, detail, value: r.value, warning: r.warning }, next, row);
    const iso = at.toISOString();
    this.rows.set(spec.key, {
      ...row,
      ...next,
      since: next.state === row.state ? row.since : iso,
      lastAt: iso,
      lastOk: r.ok,
      lastMs: Math.round(r.durationMs),
      lastDetail: detail,
      lastValue: r.value ?? null,
      lastWarning: r.warning ?? null,
      lastOkAt: r.ok ? iso : row.lastOkAt,
    });
    if (next.state !== row.state) this.log.info(`${spec.key}: ${row.state} -> ${next.state} (${detail})`);
  }

  /** Writes the results that came in, in one transaction, then rolls up and alerts. */
  private async flush(): Promise<void> {
    const state = this.deps.state;
    if (!state || state.readonly) {
      this.pending = [];
      return;
    }
    this.writePending();
    const now = this.clock.now();
    try {
      this.rollup(now);
    } catch (e) {
      this.log.warn(`could not roll up the results: ${describeError(e)}`);
    }
    try {
      await this.alert(now);
    } catch (e) {
      // alerts are never a reason to stop monitoring: the next flush tries again from state
      this.log.warn(`could not raise the monitor's alerts: ${describeError(e)}`);
    }
  }

  /**
   * Writes what came in so far, without rolling up or alerting (a pass writes as it goes, so
   * that little is left to write once its slowest check answers).
   */
  private writePending(): void {
    const state = this.deps.state;
    if (!this.pending.length || !state || state.readonly) return;
    const batch = this.pending;
    this.pending = [];
    try {
      state.monitor.batch(() => batch.forEach((p) => this.apply(p)));
    } catch (e) {
      this.log.warn(`could not record ${batch.length} check result(s): ${describeError(e)}`);
    }
  }

  private rollup(now: Date): void {
    const hour = Math.floor(now.getTime() / 3_600_000);
    if (hour === this.rolledHour || !this.deps.state) return;
    this.deps.state.monitor.rollup(now, this.retention);
    this.rolledHour = hour;
  }

  private async alert(now: Date): Promise<void> {
    const events = alertsFor(this.deps.state, {
      specs: this.specs,
      rows: this.rows,
      closure: this.closure,
      now,
      repeatSeconds: this.deps.config.notifications.repeat_interval,
    });
    for (const ev of events) {
      if (!this.deps.notifier) continue;
      await this.deps.notifier.notify(ev);
    }
  }

  /** Every spec of the named subjects (all when none) once; the checks' states and alerts as the daemon would make them. */
  async pass(opts: { subjects?: string[]; signal: AbortSignal; lockWaitMs?: number }): Promise<PassReport> {
    await this.prepare(opts.signal);
    const specs = this.select(opts.subjects);
    const started = this.clock.now();
    // every running probe may listen to the signal: no warning about a leak at 11 listeners
    setMaxListeners(0, opts.signal);
    const lock = await this.lock(opts.signal, opts.lockWaitMs ?? 0, `monitor${opts.subjects?.length ? ` ${opts.subjects.join(' ')}` : ''}`);
    try {
      return await this.passLocked(specs, opts, started);
    } finally {
      lock?.release();
    }
  }

  /** The monitor lock: a pass from cron and the daemon's loop never write the same checks at once. */
  private async lock(signal: AbortSignal, waitMs: number, command: string): Promise<Lock | null> {
    const state = this.deps.state;
    if (!state || state.readonly) return null;
    const lock = await state.acquireLock('monitor', { waitMs, signal, command });
    if (lock.tookOver) this.log.warn(`took over the monitor lock from pid ${lock.tookOver.pid}, which no longer runs`);
    return lock;
  }

  private async passLocked(specs: MonitorSpec[], opts: { subjects?: string[]; signal: AbortSignal }, started: Date): Promise<PassReport> {
    this.load(this.specs);
    await runAll(
      specs,
      this.deps.config.monitoring.concurrency,
      (s) => this.run(s, opts.signal),
      (spec, r, at) => {
        // a check cut short by Ctrl-C or a kill says nothing about the service
        if (opts.signal.aborted) return;
        if (this.pending.push({ spec, r, at }) >= WRITE_BATCH) this.writePending();
      },
      this.clock,
    );
    await this.flush();
    const checks = this.reports(opts.subjects);
    const down = [
      ...new Set(checks.filter((c) => (c.state === 'DOWN' || c.state === 'FLAPPING') && !c.unreachableVia).map((c) => c.subject)),
    ];
    const report = { startedAt: started.toISOString(), durationMs: this.clock.now().getTime() - started.getTime(), checks, down };
    if (!opts.subjects?.length) this.notePass(started, down);
    return report;
  }

  /**
   * Remembers a whole pass (a `monitor` run, or one interval of the daemon's loop) for the
   * metrics of the monitor job: in kv, not as a run (a pass a minute would fill the runs table).
   */
  notePass(startedAt: Date, down: string[]): void {
    const state = this.deps.state;
    if (!state || state.readonly) return;
    const now = this.clock.now();
    state.set('monitor.lastPass', {
      startedAt: startedAt.toISOString(),
      endedAt: now.toISOString(),
      durationMs: now.getTime() - startedAt.getTime(),
      checks: this.specs.length,
      down,
    });
  }

  /** The daemon's mode: checks run as they fall due until the signal aborts. */
  async loop(signal: AbortSignal): Promise<void> {
    setMaxListeners(0, signal);
    await this.prepare(signal);
    const lock = await this.lock(signal, 0, 'daemon (monitor)');
    try {
      await this.loopLocked(signal);
    } finally {
      lock?.release();
    }
  }

  private async loopLocked(signal: AbortSignal): Promise<void> {
    this.load(this.specs);
    let flushing: Promise<void> = Promise.resolve();
    // results are written (and alerted on) at most once a second: one transaction for all that came in
    let timer: NodeJS.Timeout | null = null;
    const later = (): void => {
      if (timer || !this.pending.length) return;
      timer = setTimeout(() => {
        timer = null;
        flushing = flushing.then(() => this.flush()).catch((e: unknown) => this.log.warn(`monitor: ${describeError(e)}`));
      }, FLUSH_EVERY_MS);
    };
    await loop(this.specs, signal, {
      limit: this.deps.config.monitoring.concurrency,
      clock: this.clock,
      run: (s) => this.run(s, signal),
      // a check cut short by a reload or SIGTERM says nothing about the service
      onResult: (spec, r, at) => {
        if (!signal.aborted) this.pending.push({ spec, r, at });
      },
      onIdle: later,
      // a check whose last result is recent waits for its turn instead of running again at start
      firstDue: (s) => {
        const last = this.rows.get(s.key)?.lastAt;
        return last ? Date.parse(last) + s.intervalS * 1000 : this.clock.now().getTime();
      },
    });
    if (timer) clearTimeout(timer);
    flushing = flushing.then(() => this.flush()).catch((e: unknown) => this.log.warn(`monitor: ${describeError(e)}`));
    await flushing;
    this.windows.dispose();
  }

  /** The checks as they stand, from memory (after load) or state. */
  reports(subjects?: string[]): CheckReport[] {
    const specs = this.select(subjects);
    if (!this.rows.size && this.deps.state) for (const r of this.deps.state.monitor.listChecks()) this.rows.set(r.key, r);
    const down = downSubjects(this.specs, this.rows);
    const now = this.clock.now();
    return specs.map((s) => {
      const row = this.rows.get(s.key);
      return {
        key: s.key,
        subject: s.subject,
        label: s.label,
        type: s.type,
        side: s.side,
        state: row?.state ?? 'PENDING',
        since: row?.since ?? now.toISOString(),
        ok: row?.lastOk ?? null,
        detail: row?.lastDetail ?? null,
        durationMs: row?.lastMs ?? null,
        warning: row?.lastWarning ?? null,
        unreachableVia:
          s.side === 'internal' && row && ['DOWN', 'PENDING', 'FLAPPING'].includes(row.state)
            ? unreachableVia(s.subject, this.closure, down)
            : null,
        maintenance: row?.state === 'MAINTENANCE' ? this.maintenanceOf(s.subject, now) : null,
      };
    });
  }
}
