/**
 * Retention with the prune semantics of Proxmox Backup Server and vzdump.
 *
 * Backups are taken newest first. The options are applied in the order keep-last,
 * keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly. Each option selects
 * the newest backup of each of its periods (local time; weeks are ISO weeks) until it
 * has selected N periods; a period already covered by a backup that an earlier option
 * kept is not selected again, and a backup an earlier option passed over as "not the
 * newest of its period" is not reconsidered. Protected backups are always kept and
 * never count against a limit. With no option set at all, everything is kept.
 */

export interface KeepOptions {
  keep_last?: number;
  keep_hourly?: number;
  keep_daily?: number;
  keep_weekly?: number;
  keep_monthly?: number;
  keep_yearly?: number;
}

export const KEEP_OPTIONS = ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly'] as const;

export interface PruneCandidate {
  id: string;
  time: Date;
  protected?: boolean;
}

export type PruneMark = 'keep' | 'remove' | 'protected';

export interface PruneDecision {
  id: string;
  time: Date;
  mark: PruneMark;
  /** the option that kept it (keep-daily, …), 'protected', 'no retention set', or the pin reason */
  reason: string;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** ISO 8601 week-numbering year and week of a local date. */
export function isoWeek(d: Date): { year: number; week: number } {
  const date = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const day = (date.getDay() + 6) % 7; // Monday 0 … Sunday 6
  date.setDate(date.getDate() - day + 3); // the Thursday of this week decides the year
  const year = date.getFullYear();
  const firstThursday = new Date(year, 0, 4);
  const firstDay = (firstThursday.getDay() + 6) % 7;
  firstThursday.setDate(firstThursday.getDate() - firstDay + 3);
  const week = 1 + Math.round((date.getTime() - firstThursday.getTime()) / (7 * 24 * 3600 * 1000));
  return { year, week };
}

const SELECTORS: Record<(typeof KEEP_OPTIONS)[number], (c: PruneCandidate) => string> = {
  keep_last: (c) => `${c.id}`,
  keep_hourly: (c) => `${c.time.getFullYear()}/${pad(c.time.getMonth() + 1)}/${pad(c.time.getDate())}/${pad(c.time.getHours())}`,
  keep_daily: (c) => `${c.time.getFullYear()}/${pad(c.time.getMonth() + 1)}/${pad(c.time.getDate())}`,
  keep_weekly: (c) => {
    const w = isoWeek(c.time);
    return `${w.year}/${pad(w.week)}`;
  },
  keep_monthly: (c) => `${c.time.getFullYear()}/${pad(c.time.getMonth() + 1)}`,
  keep_yearly: (c) => `${c.time.getFullYear()}`,
};

const PERIOD: Record<(typeof KEEP_OPTIONS)[number], string> = {
  keep_last: 'backup',
  keep_hourly: 'hour',
  keep_daily: 'day',
  keep_weekly: 'week',
  keep_monthly: 'month',
  keep_yearly: 'year',
};

export function keepsSomething(o: KeepOptions): boolean {
  return KEEP_OPTIONS.some((k) => (o[k] ?? 0) > 0);
}

/**
 * Decides which backups to keep. `pinned` ids are kept whatever the options say
 * (the engine pins the newest verified backup), with the reason given.
 */
export function computePrune(candidates: PruneCandidate[], options: KeepOptions, pinned: Map<string, string> = new Map()): PruneDecision[] {
  const list = [...candidates].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1));
  const marks = new Map<string, { mark: PruneMark; reason: string }>();

  if (!keepsSomething(options)) {
    return list.map((c) => ({
      id: c.id,
      time: c.time,
      mark: c.protected ? 'protected' : 'keep',
      reason: c.protected ? 'protected' : 'no retention set',
    }));
  }

  for (const opt of KEEP_OPTIONS) {
    const keep = options[opt] ?? 0;
    if (keep <= 0) continue;
    const select = SELECTORS[opt];
    const alreadyIncluded = new Set<string>();
    for (const c of list) if (marks.get(c.id)?.mark === 'keep') alreadyIncluded.add(select(c));
    const included = new Set<string>();
    for (const c of list) {
      if (marks.has(c.id)) continue;
      if (c.protected) {
        marks.set(c.id, { mark: 'protected', reason: 'protected' });
        continue;
      }
      const sel = select(c);
      if (alreadyIncluded.has(sel)) continue;
      if (!included.has(sel)) {
        if (included.size >= keep) break;
        included.add(sel);
        marks.set(c.id, { mark: 'keep', reason: opt.replace('_', '-') });
      } else {
        marks.set(c.id, { mark: 'remove', reason: `not the newest of its ${PERIOD[opt]}` });
      }
    }
  }

  return list.map((c) => {
    if (c.protected) return { id: c.id, time: c.time, mark: 'protected', reason: 'protected' };
    const m = marks.get(c.id);
    if (m?.mark === 'keep') return { id: c.id, time: c.time, mark: 'keep', reason: m.reason };
    const pin = pinned.get(c.id);
    if (pin) return { id: c.id, time: c.time, mark: 'keep', reason: pin };
    return { id: c.id, time: c.time, mark: 'remove', reason: m?.reason ?? 'outside every keep-* window' };
  });
}
