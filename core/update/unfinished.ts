/**
 * Updates whose process died (SIGKILL, OOM, a power cut) and left their service half done.
 * From the moment an update may change something (its snapshot) until its run is over, a
 * marker in state says so: `update.inflight.<service>`, with the run, the process and the
 * snapshot. The engine removes it when the run ends, whatever the outcome; a marker whose
 * process is gone is an unfinished update: `status` shows it, the next `update` names it,
 * and `rollback` goes back to its snapshot (and removes it).
 */
import * as os from 'node:os';
import { processAlive, processStartTime } from '../../lib/proc';
import type { StateManager } from '../../lib/state';

export interface InflightUpdate {
  service: string;
  runId: number | null;
  host: string;
  pid: number;
  procStart: string | null;
  startedAt: string;
  /** the snapshot it holds, once made */
  snapshot: string | null;
}

export interface UnfinishedUpdate extends InflightUpdate {
  /** the step the process died in (from the run's recorded steps) */
  step: string | null;
  /** what happened and what to do, in a sentence or two */
  summary: string;
}

const PREFIX = 'update.inflight';
const key = (service: string): string => `${PREFIX}.${service}`;

/** Marks an update of `service` as under way (the snapshot is about to be made, or was made). */
export function markInflight(state: StateManager | null, service: string, runId: number | null, snapshot: string | null): void {
  if (!state || state.readonly) return;
  const prev = state.get<InflightUpdate>(key(service));
  const mine = prev && prev.pid === process.pid && prev.runId === runId;
  state.set(key(service), {
    service,
    runId,
    host: os.hostname(),
    pid: process.pid,
    procStart: processStartTime(process.pid),
    startedAt: mine ? prev.startedAt : new Date().toISOString(),
    snapshot,
  } satisfies InflightUpdate);
}

/** The run of this process is over: its marker goes (a marker of another run is left alone). */
export function clearInflight(state: StateManager | null, service: string, runId: number | null): void {
  if (!state || state.readonly) return;
  const m = state.get<InflightUpdate>(key(service));
  if (m && m.pid === process.pid && m.runId === runId) state.delete(key(service));
}

/** Forgets the unfinished update of `service` (after a rollback brought it back). */
export function forgetUnfinished(state: StateManager | null, service: string): void {
  if (state && !state.readonly) state.delete(key(service));
}

/** The unfinished update of a service: its marker, when the process that wrote it is gone. */
export function unfinishedUpdate(state: StateManager | null, service: string): UnfinishedUpdate | null {
  const m = state?.get<InflightUpdate>(key(service));
  if (!state || !m) return null;
  // still running, or on another host (whose processes cannot be checked from here)
  if (m.host !== os.hostname() || processAlive(m.pid, m.procStart)) return null;
  const steps = m.runId === null ? [] : state.listSteps(m.runId);
  const last = steps.at(-1) ?? null;
  // it died while removing older snapshots: the update itself was good
  if (last?.step === 'cleanup') return null;
  const step = last ? last.step : null;
  const during = step ? `during its ${step} step` : 'before its first step';
  const what = m.snapshot
    ? `snapshot ${m.snapshot} holds ${service} as it was before: go back with 'homelab-autopilot rollback ${service}' (or check it and run the update again)`
    : `no snapshot was finished, so ${service} may be left stopped: start it again, or roll back to an older snapshot with 'homelab-autopilot rollback ${service} --snapshot ID'`;
  return {
    ...m,
    step,
    summary: `an update of ${service} did not finish: its process (pid ${m.pid}) ended ${during} (run ${m.runId ?? '?'}, started ${m.startedAt}); ${what}`,
  };
}

/** Every service with an unfinished update. */
export function unfinishedUpdates(state: StateManager | null): UnfinishedUpdate[] {
  if (!state) return [];
  return Object.keys(state.list(PREFIX))
    .map((service) => unfinishedUpdate(state, service))
    .filter((u): u is UnfinishedUpdate => u !== null);
}
