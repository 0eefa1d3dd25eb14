/**
 * What every probe shares: its own time limit (our own timer, so a server that never answers
 * holds only this probe, and only until its timeout), the caller's signal, the time it took,
 * and any throw turned into `ok: false` with a one-line reason. A probe's body receives a
 * signal that aborts at the deadline; the probe answers at the deadline even when the body
 * ignores it.
 */
import { deadlineSignal, raceSignal } from '../../../lib/async';
import { AutopilotError } from '../../../lib/errors';
import type { ProbeEnv, ProbeResult } from '../types';

/** What a probe's body returns; a failure may also be thrown (its message becomes the detail). */
export interface Outcome {
  ok?: boolean;
  detail: string;
  value?: number | null;
  warning?: string | null;
}

/** An error whose message is the whole detail (no code prefixed). */
export class ProbeFailure extends Error {
  constructor(
    message: string,
    readonly value?: number | null,
  ) {
    super(message);
    this.name = 'ProbeFailure';
  }
}

export const seconds = (ms: number): string => `${Math.round(ms / 100) / 10}s`;

/** One line for a thrown value: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1" keeps its code once. */
export function failureDetail(e: unknown): string {
  if (e instanceof ProbeFailure || e instanceof AutopilotError) return e.message;
  const err = e as NodeJS.ErrnoException;
  const message = err instanceof Error ? err.message || err.name : String(e);
  return err?.code && !message.includes(err.code) ? `${err.code}: ${message}` : message;
}

/** Runs a probe's body under the probe's rules; never throws. */
export async function runProbe(env: ProbeEnv, body: (signal: AbortSignal) => Promise<Outcome>): Promise<ProbeResult> {
  const t0 = performance.now();
  const ms = (): number => Math.round(performance.now() - t0);
  if (env.signal.aborted) return { ok: false, detail: 'cancelled', durationMs: 0 };
  const deadline = deadlineSignal(env.timeoutMs, env.signal);
  try {
    const out = await raceSignal(body(deadline.signal), deadline.signal, () =>
      deadline.timedOut() ? new ProbeFailure(`no answer within ${seconds(env.timeoutMs)}`) : new ProbeFailure('cancelled'),
    );
    return { ok: out.ok ?? true, detail: out.detail, durationMs: ms(), value: out.value ?? null, warning: out.warning ?? null };
  } catch (e) {
    // the body may notice the abort first and throw its own error: the deadline is the reason
    const detail = deadline.timedOut() ? `no answer within ${seconds(env.timeoutMs)}` : env.signal.aborted ? 'cancelled' : failureDetail(e);
    return { ok: false, detail, durationMs: ms(), value: e instanceof ProbeFailure ? (e.value ?? null) : null, warning: null };
  } finally {
    deadline.clear();
  }
}

/** Days from now until a time (negative when past), to one decimal. */
export function daysUntil(at: Date, now: Date): number {
  return Math.round(((at.getTime() - now.getTime()) / 86_400_000) * 10) / 10;
}

/** "2026-03-01" of a date, in UTC (certificate dates are UTC). */
export const isoDay = (d: Date): string => d.toISOString().slice(0, 10);
