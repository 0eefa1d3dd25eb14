/**
 * The state machine of one check, pure. Health is what the results say, with thresholds:
 * a new check is PENDING until its first result; `failure_threshold` failures in a row make
 * it DOWN (the ones before are PENDING when it was UP); `recovery_threshold` successes in a
 * row make a DOWN check UP. The shown state is the health, except in maintenance
 * (MAINTENANCE: our own work or a window; the health still follows the results underneath)
 * and while it flaps (FLAPPING: more than `changes` changes into or out of DOWN within the
 * window, counted by the caller from the transitions, this one included).
 */
import type { Health, MonitorState } from '../../lib/state';

export interface Counters {
  health: Health;
  state: MonitorState;
  fails: number;
  oks: number;
}

export interface StepInput {
  ok: boolean;
  failureThreshold: number;
  recoveryThreshold: number;
  /** why the check is in maintenance now, or null */
  maintenance: string | null;
  /** changes of health into or out of DOWN within the flapping window, before this result */
  flipsBefore: number;
  /** more changes than this within the window is FLAPPING */
  flapChanges: number;
}

export function nextHealth(
  prev: Counters,
  ok: boolean,
  failureThreshold: number,
  recoveryThreshold: number,
): Pick<Counters, 'health' | 'fails' | 'oks'> {
  if (ok) {
    const oks = prev.oks + 1;
    if (prev.health === 'DOWN') return { health: oks >= recoveryThreshold ? 'UP' : 'DOWN', fails: 0, oks };
    return { health: 'UP', fails: 0, oks };
  }
  const fails = prev.fails + 1;
  if (fails >= failureThreshold) return { health: 'DOWN', fails, oks: 0 };
  // failing, but not often enough yet: a DOWN check stays DOWN, anything else is PENDING
  return { health: prev.health === 'DOWN' ? 'DOWN' : 'PENDING', fails, oks: 0 };
}

/** Whether a change of health counts towards flapping. */
export function isFlip(from: Health, to: Health): boolean {
  return from !== to && (from === 'DOWN' || to === 'DOWN');
}

export function shownState(health: Health, maintenance: string | null, flips: number, flapChanges: number): MonitorState {
  if (maintenance) return 'MAINTENANCE';
  if (flips > flapChanges) return 'FLAPPING';
  return health;
}

/** One result applied to a check. */
export function step(prev: Counters, input: StepInput): Counters {
  const h = nextHealth(prev, input.ok, input.failureThreshold, input.recoveryThreshold);
  const flips = input.flipsBefore + (isFlip(prev.health, h.health) ? 1 : 0);
  return { ...h, state: shownState(h.health, input.maintenance, flips, input.flapChanges) };
}
