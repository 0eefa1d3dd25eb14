/** Durations as the config writes them: whole seconds, or a number with a unit (`90s`, `30m`, `26h`, `7d`, `2w`). */
const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds of a duration; throws on anything else (the config schema has already refused it). */
export function durationSeconds(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([smhdw])$/.exec(v.trim());
  if (!m) throw new Error(`not a duration: ${JSON.stringify(v)} (seconds, or a number with s, m, h, d or w)`);
  return Math.round(Number(m[1]) * UNIT[m[2]]);
}

/** A short human form: 45s, 12m, 3h 5m, 2d 4h. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)}h` : ''}`;
}
