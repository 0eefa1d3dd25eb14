/**
 * When a cron expression fires: the next time after an instant and the last one at or before
 * it, in a time zone. node-cron parses the expression (the same parser that checks it in the
 * config, so the fields mean what node-cron means: 5 or 6 fields, names, ranges, steps, L, W,
 * nL, n#k; day of month AND day of week); the walk over days and times is ours, because
 * node-cron has no "previous" and reads the real clock, and the daemon's clock is injected.
 */

export interface CronFields {
  second: number[];
  minute: number[];
  hour: number[];
  dayOfMonth: (number | string)[];
  month: number[];
  dayOfWeek: (number | string)[];
}

export interface CronSchedule {
  expression: string;
  timezone?: string;
  fields: CronFields;
}

/** Days searched before giving up (an expression such as "0 0 31 2 *" never fires). */
const MAX_DAYS = 366 * 8;

export function parseCron(expression: string, timezone?: string): CronSchedule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded by the daemon only
  const cron = require('node-cron') as { parse(e: string): CronFields };
  const fields = cron.parse(expression);
  const asc = (a: number[]): number[] => [...new Set(a)].sort((x, y) => x - y);
  return {
    expression,
    timezone,
    fields: { ...fields, second: asc(fields.second), minute: asc(fields.minute), hour: asc(fields.hour), month: asc(fields.month) },
  };
}

interface Ymd {
  y: number;
  m: number;
  d: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string | undefined): Intl.DateTimeFormat {
  const key = tz ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(key, f);
  }
  return f;
}

/** The wall-clock parts of an instant in a time zone. */
function localParts(ms: number, tz: string | undefined): Ymd & { sec: number } {
  const p: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return { y: p.year, m: p.month, d: p.day, sec: p.hour * 3600 + p.minute * 60 + p.second };
}

/** The instant a wall-clock time names in a time zone, or null when it does not exist (a DST gap). */
function toInstant(day: Ymd, sec: number, tz: string | undefined): number | null {
  const wall = Date.UTC(day.y, day.m - 1, day.d) + sec * 1000;
  let guess = wall;
  for (let i = 0; i < 3; i++) {
    const lp = localParts(guess, tz);
    const seen = Date.UTC(lp.y, lp.m - 1, lp.d) + lp.sec * 1000;
    if (seen === wall) return guess;
    guess += wall - seen;
  }
  return null;
}

function lastDay(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
}

function weekday(y: number, m: number, d: number): number {
  return new Date(Date.UTC(y, m - 1, d)).getUTCDay();
}

function nearestWeekday(y: number, m: number, target: number): number {
  const last = lastDay(y, m);
  if (target < 1 || target > last) return -1;
  const wd = weekday(y, m, target);
  if (wd === 6) return target === 1 ? 3 : target - 1;
  if (wd === 0) return target === last ? target - 2 : target + 1;
  return target;
}

function domMatches(field: (number | string)[], { y, m, d }: Ymd): boolean {
  return field.some((v) => {
    if (v === d) return true;
    if (typeof v !== 'string') return false;
    if (v === 'L') return d === lastDay(y, m);
    const w = /^(L|\d+)W$/.exec(v);
    if (w) return nearestWeekday(y, m, w[1] === 'L' ? lastDay(y, m) : Number(w[1])) === d;
    const off = /^L-(\d+)$/.exec(v);
    return off ? lastDay(y, m) - Number(off[1]) === d : false;
  });
}

function dowMatches(field: (number | string)[], { y, m, d }: Ymd): boolean {
  const wd = weekday(y, m, d);
  return field.some((v) => {
    if (v === wd || (v === 7 && wd === 0)) return true;
    if (typeof v !== 'string') return false;
    const nth = /^([0-7])#([1-5])$/.exec(v);
    if (nth) return Number(nth[1]) % 7 === wd && Math.floor((d - 1) / 7) + 1 === Number(nth[2]);
    const last = /^([0-7])L$/i.exec(v);
    return last ? Number(last[1]) % 7 === wd && d + 7 > lastDay(y, m) : false;
  });
}

function dayMatches(f: CronFields, day: Ymd): boolean {
  return f.month.includes(day.m) && domMatches(f.dayOfMonth, day) && dowMatches(f.dayOfWeek, day);
}

function addDays(day: Ymd, n: number): Ymd {
  const t = new Date(Date.UTC(day.y, day.m - 1, day.d + n));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

/** The seconds of the day the fields fire at, in order (from the end when `reverse`). */
function* timesOfDay(f: CronFields, reverse: boolean): Generator<number> {
  const order = (a: number[]): number[] => (reverse ? [...a].reverse() : a);
  for (const h of order(f.hour)) for (const mi of order(f.minute)) for (const s of order(f.second)) yield h * 3600 + mi * 60 + s;
}

function search(s: CronSchedule, fromMs: number, direction: 1 | -1): Date | null {
  const start = localParts(fromMs, s.timezone);
  let day: Ymd = start;
  for (let i = 0; i < MAX_DAYS; i++, day = addDays(day, direction)) {
    if (!dayMatches(s.fields, day)) continue;
    for (const sec of timesOfDay(s.fields, direction < 0)) {
      // on the first day, skip by wall clock what is on the wrong side of the start
      if (i === 0 && (direction > 0 ? sec < start.sec : sec > start.sec)) continue;
      const at = toInstant(day, sec, s.timezone);
      if (at !== null && (direction > 0 ? at > fromMs : at <= fromMs)) return new Date(at);
    }
  }
  return null;
}

/** The first time strictly after `after` the expression fires, or null when it never does. */
export function nextRun(s: CronSchedule, after: Date): Date | null {
  return search(s, after.getTime(), 1);
}

/** The last time at or before `at` the expression fired, or null when it never did (within 8 years). */
export function previousRun(s: CronSchedule, at: Date): Date | null {
  return search(s, at.getTime(), -1);
}
