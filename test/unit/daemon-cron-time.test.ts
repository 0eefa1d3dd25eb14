import * as cron from 'node-cron';
import { nextRun, parseCron, previousRun } from '../../core/daemon/cron-time';

const iso = (d: Date | null): string | null => d?.toISOString() ?? null;

describe('cron times', () => {
  test('next and previous of a daily expression in UTC', () => {
    const s = parseCron('0 2 * * *', 'UTC');
    expect(iso(nextRun(s, new Date('2026-03-10T01:59:59Z')))).toBe('2026-03-10T02:00:00.000Z');
    expect(iso(nextRun(s, new Date('2026-03-10T02:00:00Z')))).toBe('2026-03-11T02:00:00.000Z');
    expect(iso(previousRun(s, new Date('2026-03-10T02:00:00Z')))).toBe('2026-03-10T02:00:00.000Z');
    expect(iso(previousRun(s, new Date('2026-03-10T01:59:59Z')))).toBe('2026-03-09T02:00:00.000Z');
  });

  test('six fields with seconds', () => {
    const s = parseCron('*/2 * * * * *', 'UTC');
    expect(iso(nextRun(s, new Date('2026-03-10T10:00:00.500Z')))).toBe('2026-03-10T10:00:02.000Z');
    expect(iso(previousRun(s, new Date('2026-03-10T10:00:03.900Z')))).toBe('2026-03-10T10:00:02.000Z');
    expect(iso(nextRun(s, new Date('2026-03-10T23:59:59Z')))).toBe('2026-03-11T00:00:00.000Z');
  });

  test('the time zone is honoured, across a DST change', () => {
    const s = parseCron('0 2 * * *', 'Europe/Berlin');
    // winter: UTC+1
    expect(iso(nextRun(s, new Date('2026-01-15T12:00:00Z')))).toBe('2026-01-16T01:00:00.000Z');
    // summer: UTC+2
    expect(iso(nextRun(s, new Date('2026-07-15T12:00:00Z')))).toBe('2026-07-16T00:00:00.000Z');
    // 2026-03-29 02:00 does not exist in Berlin: the next one is the 30th
    expect(iso(nextRun(s, new Date('2026-03-28T12:00:00Z')))).toBe('2026-03-30T00:00:00.000Z');
    expect(iso(previousRun(s, new Date('2026-03-29T12:00:00Z')))).toBe('2026-03-28T01:00:00.000Z');
  });

  test('weekdays, last day of the month, nth weekday', () => {
    expect(iso(nextRun(parseCron('30 3 * * mon-fri', 'UTC'), new Date('2026-03-13T04:00:00Z')))).toBe('2026-03-16T03:30:00.000Z');
    expect(iso(nextRun(parseCron('0 0 L * *', 'UTC'), new Date('2026-02-10T00:00:00Z')))).toBe('2026-02-28T00:00:00.000Z');
    expect(iso(previousRun(parseCron('0 0 L * *', 'UTC'), new Date('2026-02-10T00:00:00Z')))).toBe('2026-01-31T00:00:00.000Z');
    // the second Monday of April 2026 is the 13th
    expect(iso(nextRun(parseCron('0 9 * * 1#2', 'UTC'), new Date('2026-04-01T00:00:00Z')))).toBe('2026-04-13T09:00:00.000Z');
    // node-cron refuses a day that never comes
    expect(() => parseCron('0 0 31 2 *', 'UTC')).toThrow(/impossible/);
  });

  test("the next times agree with node-cron's own", () => {
    const exprs = ['0 2 * * *', '*/15 * * * *', '5 4 * * sun', '0 0 1,15 * *', '0 */6 * * *', '0 9 * * 1-5', '*/7 * * * * *', '0 0 L * *'];
    for (const tz of ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata']) {
      for (const e of exprs) {
        const task = cron.createTask(e, () => {}, { timezone: tz });
        const now = new Date();
        const theirs = task.getNextRuns(3);
        const s = parseCron(e, tz);
        const ours: Date[] = [];
        let at = now;
        for (let i = 0; i < 3; i++) ours.push((at = nextRun(s, at) as Date));
        // node-cron starts from the current second; ours from now: compare from the first both agree on
        expect(ours.slice(-2).map(iso)).toEqual(theirs.slice(-2).map(iso));
        void task.destroy();
      }
    }
  });
});
