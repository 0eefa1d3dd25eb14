/** Human rendering: tables, sizes, durations. Only bin/ uses this. */

export { formatBytes } from '../lib/format';
import { stampText } from '../lib/time';

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const ms = now - new Date(iso).getTime();
  if (ms < 60_000) return 'just now';
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ago`;
  return `${Math.floor(h / 24)}d ago`;
}

export function localTime(iso: string | null | undefined): string {
  return iso ? stampText(new Date(iso)) : '-';
}

/** A plain text table: a header row, a rule, the rows; columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** One step of an update or a rollback as it finishes, for stderr: "web: snapshot ok: autopilot_…". */
export function stepLine(service: string, s: { step: string; status: string; detail: string }): string {
  return `${service}: ${s.step} ${s.status === 'success' ? 'ok' : s.status.toUpperCase()}: ${s.detail}\n`;
}
