/**
 * "Full in N days": a straight line fitted by least squares through a file system's used
 * percentage over the last days (the values its disk check recorded, and the one measured
 * now), and where that line reaches 100 %. No forecast from fewer than 3 points, or points
 * spanning less than an hour (too little to tell growth from noise), or when the line does
 * not rise. The days are counted from the current measurement, not from the fitted line's
 * value now, so that a disk that just filled up is not forecast as still having room.
 */

export interface Point {
  /** epoch seconds */
  at: number;
  value: number;
}

export interface Line {
  /** units per second */
  slope: number;
  /** the value at `at` = 0 */
  intercept: number;
}

/** The forecast's window: what the last 7 days recorded. */
export const FORECAST_WINDOW_S = 7 * 86400;
const MIN_POINTS = 3;
const MIN_SPAN_S = 3600;

/** The least-squares line through the points; null with fewer than 2 points or all at one time. */
export function fitLine(points: readonly Point[]): Line | null {
  const n = points.length;
  if (n < 2) return null;
  // centred on the means: epoch seconds squared would lose precision
  const mt = points.reduce((a, p) => a + p.at, 0) / n;
  const mv = points.reduce((a, p) => a + p.value, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.at - mt) * (p.value - mv);
    sxx += (p.at - mt) ** 2;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  return { slope, intercept: mv - slope * mt };
}

/**
 * Days until the value reaches `limit` (default 100 %) at the rate of the fitted line, from
 * the newest point; null when there is no forecast (too few points, too short a span, not
 * rising). 0 when already at or past the limit.
 */
export function daysUntilFull(points: readonly Point[], limit = 100): number | null {
  if (points.length < MIN_POINTS) return null;
  const sorted = [...points].sort((a, b) => a.at - b.at);
  if (sorted[sorted.length - 1].at - sorted[0].at < MIN_SPAN_S) return null;
  const line = fitLine(sorted);
  if (!line || line.slope <= 0) return null;
  const current = sorted[sorted.length - 1].value;
  if (current >= limit) return 0;
  return (limit - current) / line.slope / 86400;
}

/** "3 hours", "1.5 days", "12 days", "more than a year". */
export function describeDays(days: number): string {
  if (days < 1) {
    const h = Math.max(1, Math.round(days * 24));
    return `${h} hour${h === 1 ? '' : 's'}`;
  }
  if (days < 10) return `${Math.round(days * 10) / 10} days`;
  if (days > 365) return 'more than a year';
  return `${Math.round(days)} days`;
}
