/**
 * Waiting, the two ways the engines need it: a pause that ends early when a signal aborts,
 * and a promise raced against a signal (for work that may ignore the signal it was given,
 * such as a plugin's hook), plus the clock the engines take so that tests can move time.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Waits `ms`, or less when the signal aborts first; never rejects (callers look at the signal). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    /* aborted: the caller sees signal.aborted */
  }
}

/**
 * Settles as `work` does, or rejects with `onAbort()` as soon as the signal aborts, whichever
 * comes first. The work itself is not stopped (it was given the signal and should stop too).
 */
export function raceSignal<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {}); // nobody waits for it any more
    return Promise.reject(onAbort());
  }
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}

/** Time as the engines see it: real by default, moved by hand in tests. */
export interface Clock {
  now(): Date;
  /** waits `ms` (less when the signal aborts) */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = { now: () => new Date(), sleep };

/**
 * A signal that aborts after `ms` or when `parent` aborts, whichever comes first, with our own
 * timer: on Node 20 a timeout combined through AbortSignal.any can be collected by the garbage
 * collector and never fire. The timer and the parent's listener hold the controller until
 * clear() (call it when the work is done).
 */
export function deadlineSignal(ms: number, parent?: AbortSignal): { signal: AbortSignal; timedOut(): boolean; clear(): void } {
  const ac = new AbortController();
  let fired = false;
  const timer = setTimeout(
    () => {
      fired = true;
      ac.abort(new DOMException('the time budget ran out', 'TimeoutError'));
    },
    Math.max(0, ms),
  );
  const follow = (): void => ac.abort(parent?.reason);
  if (parent?.aborted) follow();
  else parent?.addEventListener('abort', follow, { once: true });
  return {
    signal: ac.signal,
    timedOut: () => fired,
    clear(): void {
      clearTimeout(timer);
      parent?.removeEventListener('abort', follow);
    },
  };
}
