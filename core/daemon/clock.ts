/**
 * The daemon's time: what time it is and a timer, injected so that schedules, catch-up,
 * time-outs and restarts are tested with a clock moved by hand. The daemon holds one timer per
 * thing it waits for (the next due job, a running job's time-out, a restart's back-off): no
 * polling loop, so an idle daemon costs nothing.
 */

export interface TimerClock {
  now(): Date;
  /** calls `fn` once after `ms`; the returned function cancels it */
  setTimer(ms: number, fn: () => void): () => void;
}

/** Node's timers take at most 2^31-1 ms; a longer wait is cut into days, each re-checking the time. */
const MAX_TIMER_MS = 24 * 3600 * 1000;

export const realTimerClock: TimerClock = {
  now: () => new Date(),
  setTimer(ms, fn) {
    let cancelled = false;
    let handle: NodeJS.Timeout;
    const arm = (left: number): void => {
      const until = Date.now() + left;
      handle = setTimeout(
        () => {
          if (cancelled) return;
          const rest = until - Date.now();
          if (rest > 0) arm(rest);
          else fn();
        },
        Math.min(Math.max(0, left), MAX_TIMER_MS),
      );
    };
    arm(ms);
    return () => {
      cancelled = true;
      clearTimeout(handle);
    };
  },
};

/** Waits `ms` on the clock, or less when the signal aborts; never rejects. */
export function waitOn(clock: TimerClock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const cancel = clock.setTimer(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}
