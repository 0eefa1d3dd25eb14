/**
 * One loop over what is due, with a bounded pool (the Healthchecks model, not a timer per
 * check): the loop sleeps until the earliest due check or until a running one ends, starts
 * what is due while a slot is free, and never runs a check twice at once. Each check runs
 * under its own deadline, raced, so a probe that overruns its timeout still gives its slot back
 * at its timeout: a slow or hanging check holds only its own slot, never the others' schedule.
 * The next run of a check is due one interval after its start.
 */
import type { Clock } from '../../lib/async';
import type { MonitorSpec, ProbeEnv, ProbeResult } from './types';

/** Time a probe gets beyond its own timeout to answer before its slot is taken back. */
const GRACE_MS = 250;

export type EnvFor = (spec: MonitorSpec, signal: AbortSignal) => ProbeEnv;

/**
 * Runs one probe; never throws. A probe answers within its own timeout (ProbeEnv.timeoutMs);
 * should one not, its slot is taken back GRACE_MS later all the same (a timer raced with it:
 * no AbortController per check, which costs more than the check on loopback).
 */
export async function runProbe(spec: MonitorSpec, envFor: EnvFor, parent: AbortSignal, clock: Clock): Promise<ProbeResult> {
  const t0 = clock.now().getTime();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, detail: `no answer within ${spec.timeoutMs / 1000}s`, durationMs: clock.now().getTime() - t0 }),
      spec.timeoutMs + GRACE_MS,
    );
  });
  try {
    return await Promise.race([spec.probe(envFor(spec, parent)), late]);
  } catch (e) {
    return { ok: false, detail: (e as Error).message, durationMs: clock.now().getTime() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every spec once, at most `limit` at a time; `onResult` sees each as it ends. */
export async function runAll(
  specs: MonitorSpec[],
  limit: number,
  run: (spec: MonitorSpec) => Promise<ProbeResult>,
  onResult: (spec: MonitorSpec, r: ProbeResult, startedAt: Date) => void,
  clock: Clock,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < specs.length) {
      const spec = specs[next++];
      const startedAt = clock.now();
      onResult(spec, await run(spec), startedAt);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, specs.length) }, worker));
}

export interface LoopOptions {
  limit: number;
  clock: Clock;
  run(spec: MonitorSpec): Promise<ProbeResult>;
  onResult(spec: MonitorSpec, r: ProbeResult, startedAt: Date): void;
  /** after each wake-up, when results came in since the last one (to write them in one transaction) */
  onIdle?(): void;
  /** the first run of each spec, epoch ms (default: now) */
  firstDue?(spec: MonitorSpec): number;
}

/** Schedules the specs until the signal aborts; returns when the running checks have ended. */
export async function loop(specs: MonitorSpec[], signal: AbortSignal, o: LoopOptions): Promise<void> {
  const start = o.clock.now().getTime();
  const due = specs.map((s) => ({ spec: s, at: o.firstDue ? o.firstDue(s) : start, busy: false }));
  let running = 0;
  let wake: (() => void) | null = null;
  const inFlight = new Set<Promise<void>>();
  while (!signal.aborted) {
    const now = o.clock.now().getTime();
    const ready = due.filter((d) => !d.busy && d.at <= now).sort((a, b) => a.at - b.at);
    for (const d of ready) {
      if (running >= o.limit) break;
      running++;
      d.busy = true;
      // one interval after this start; a check overdue by more than that (the daemon was down) is not run twice in a row
      d.at = d.at + d.spec.intervalS * 1000 > now ? d.at + d.spec.intervalS * 1000 : now + d.spec.intervalS * 1000;
      const startedAt = o.clock.now();
      const p = o.run(d.spec).then((r) => {
        o.onResult(d.spec, r, startedAt);
        d.busy = false;
        running--;
        inFlight.delete(p);
        wake?.();
      });
      inFlight.add(p);
    }
    o.onIdle?.();
    const idle = due.filter((d) => !d.busy);
    const nextAt = idle.length ? Math.min(...idle.map((d) => d.at)) : Infinity;
    // a pool that is full waits for a slot; otherwise for the next due check or a slot
    const waitMs = running >= o.limit ? Infinity : Math.max(0, nextAt - o.clock.now().getTime());
    if (waitMs === 0) continue;
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    await Promise.race([
      waitMs === Infinity
        ? new Promise<void>((r) => stop.signal.addEventListener('abort', () => r(), { once: true }))
        : o.clock.sleep(waitMs, stop.signal),
      new Promise<void>((r) => (wake = r)),
    ]);
    wake = null;
    stop.abort();
    signal.removeEventListener('abort', onAbort);
  }
  await Promise.all(inFlight);
  o.onIdle?.();
}
