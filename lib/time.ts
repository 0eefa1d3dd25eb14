/**
 * Local timestamps in the two forms the product shows: `20261202_104500` in file and
 * snapshot names, `2026-12-02 10:45:00` in logs and tables. Local time, as a person reads it.
 */
const p = (n: number): string => String(n).padStart(2, '0');

/** YYYYMMDD_HHMMSS (archive and snapshot names). */
export function stampName(d: Date): string {
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** YYYY-MM-DD HH:MM:SS (log lines, tables). */
export function stampText(d: Date): string {
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
