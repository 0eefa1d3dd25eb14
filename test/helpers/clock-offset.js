'use strict';
// Preloaded into a CLI child process (`node --require`) by startCli/runCli({ clockOffsetMs }):
// the process's wall clock (Date) reads that much later, as if the command ran that much later.
// Durations, timers and time-outs use the monotonic clock and are untouched. For tests of what
// state keeps across runs (cooldowns, repeat intervals, names with one-second resolution)
// without waiting. Test code only: nothing in the product reads HA_TEST_CLOCK_OFFSET_MS.
const offset = Number(process.env.HA_TEST_CLOCK_OFFSET_MS) || 0;
delete process.env.HA_TEST_CLOCK_OFFSET_MS;

if (offset) {
  const RealDate = Date;
  const now = () => RealDate.now() + offset;
  // a function rather than a subclass, so that Date() without `new` still works (a string, as always)
  function ShiftedDate(...args) {
    if (!new.target) return new RealDate(now()).toString();
    return args.length ? new RealDate(...args) : new RealDate(now());
  }
  ShiftedDate.prototype = RealDate.prototype;
  ShiftedDate.now = now;
  ShiftedDate.parse = RealDate.parse;
  ShiftedDate.UTC = RealDate.UTC;
  globalThis.Date = ShiftedDate;
}
