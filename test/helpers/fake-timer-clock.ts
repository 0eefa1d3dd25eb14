/**
 * A TimerClock moved by hand (core/daemon/clock.ts). advance() fires the due timers in time
 * order, letting promises settle after each; it always ends: time only moves forward, and a
 * bound on the timers fired in one call stops a timer that keeps re-arming itself at zero.
 */
import type { TimerClock } from '../../core/daemon/clock';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

export class FakeTimerClock implements TimerClock {
  private t: number;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(start: Date | string) {
    this.t = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.t);
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** timers waiting */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    await settle();
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error('FakeTimerClock: more than 10000 timers fired in one advance (a timer re-arms itself at zero?)');
      const due = this.timers.filter((x) => x.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }

  /** Moves time to `when` (not backwards). */
  advanceTo(when: Date | string): Promise<void> {
    return this.advance(Math.max(0, new Date(when).getTime() - this.t));
  }
}
