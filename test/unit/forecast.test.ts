/** The disk forecast's arithmetic, from hand-computed cases. */
import { daysUntilFull, describeDays, fitLine } from '../../core/monitor/forecast';

const DAY = 86400;
const T0 = 1_800_000_000; // epoch seconds, large as real ones are

describe('fitLine (least squares)', () => {
  it('finds the exact line through points on a line', () => {
    const line = fitLine([0, 1, 2, 3].map((d) => ({ at: T0 + d * DAY, value: 50 + 2 * d })));
    expect(line).not.toBeNull();
    expect((line?.slope ?? 0) * DAY).toBeCloseTo(2, 10);
    expect((line?.intercept ?? 0) + (line?.slope ?? 0) * T0).toBeCloseTo(50, 6);
  });
  it('fits the mean slope through noise: (0,1) (1,3) (2,2) (3,4) gives 0.8 per step', () => {
    // hand computed: mean t 1.5, mean v 2.5; Sxy = 4, Sxx = 5
    const line = fitLine([1, 3, 2, 4].map((v, i) => ({ at: T0 + i * DAY, value: v })));
    expect((line?.slope ?? 0) * DAY).toBeCloseTo(0.8, 10);
  });
  it('has no line through fewer than 2 points or points at one time', () => {
    expect(fitLine([{ at: T0, value: 3 }])).toBeNull();
    expect(
      fitLine([
        { at: T0, value: 3 },
        { at: T0, value: 5 },
      ]),
    ).toBeNull();
  });
});

describe('daysUntilFull', () => {
  it('counts from the newest measurement at the fitted growth: 80 % growing 2 % a day is full in 10 days', () => {
    const points = [74, 76, 78, 80].map((v, i) => ({ at: T0 + i * DAY, value: v }));
    expect(daysUntilFull(points)).toBeCloseTo(10, 10);
  });
  it('uses the measured value now, not the fitted one: after a jump to 90 %, 2 days at the fitted 5 % a day', () => {
    // fitted slope through (0,80) (1,80) (2,90): Sxy = 10, Sxx = 2 -> 5 %/day; (100 - 90) / 5 = 2 days
    const points = [80, 80, 90].map((v, i) => ({ at: T0 + i * DAY, value: v }));
    expect(daysUntilFull(points)).toBeCloseTo(2, 10);
  });
  it('orders the points by time itself', () => {
    const points = [78, 74, 80, 76].map((v) => ({ at: T0 + ((v - 74) / 2) * DAY, value: v }));
    expect(daysUntilFull(points)).toBeCloseTo(10, 10);
  });
  it('gives no forecast when the disk does not grow, from too few points, or from less than an hour', () => {
    expect(daysUntilFull([80, 80, 80].map((v, i) => ({ at: T0 + i * DAY, value: v })))).toBeNull();
    expect(daysUntilFull([80, 79, 78].map((v, i) => ({ at: T0 + i * DAY, value: v })))).toBeNull();
    expect(
      daysUntilFull([
        { at: T0, value: 10 },
        { at: T0 + DAY, value: 20 },
      ]),
    ).toBeNull();
    expect(daysUntilFull([10, 20, 30].map((v, i) => ({ at: T0 + i * 60, value: v })))).toBeNull();
  });
  it('says 0 when already full, and takes another limit', () => {
    expect(daysUntilFull([98, 99, 100].map((v, i) => ({ at: T0 + i * DAY, value: v })))).toBe(0);
    expect(
      daysUntilFull(
        [40, 45, 50].map((v, i) => ({ at: T0 + i * DAY, value: v })),
        60,
      ),
    ).toBeCloseTo(2, 10);
  });
  it('stays exact with hourly points over a week (epoch-sized times)', () => {
    const points = Array.from({ length: 7 * 24 }, (_, h) => ({ at: T0 + h * 3600, value: 20 + h * (1 / 24) }));
    // 1 % a day; the newest point is 20 + 167/24
    expect(daysUntilFull(points)).toBeCloseTo(100 - (20 + 167 / 24), 6);
  });
});

describe('describeDays', () => {
  it('says hours under a day, tenths under ten days, whole days, then more than a year', () => {
    expect(describeDays(0.01)).toBe('1 hour');
    expect(describeDays(0.5)).toBe('12 hours');
    expect(describeDays(2.345)).toBe('2.3 days');
    expect(describeDays(42.4)).toBe('42 days');
    expect(describeDays(400)).toBe('more than a year');
  });
});
