/**
 * Maintenance: when a subject's checks are MAINTENANCE rather than DOWN. Three sources:
 * the config's recurring windows (a cron expression plus a duration: open from each time the
 * expression fires until the duration has passed), manual windows (`monitoring maintenance
 * SERVICE --for 30m`), and our own work (an update, a backup in stop mode, a restore test or
 * a failover writes a window tied to its run: it ends when the run ends or its process dies).
 */
import { durationSeconds } from '../../lib/duration';
import type { StateManager } from '../../lib/state';
import type { MaintenanceWindowConfig } from '../config/types';

interface Matcher {
  match(d: Date): boolean;
  destroy(): void | Promise<void>;
}

/** node-cron's matcher for an expression (a task that is never started). */
function matcherOf(expr: string, timezone?: string): Matcher {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when the config has windows
  const cron = require('node-cron') as { createTask(e: string, fn: () => void, o: { timezone?: string }): Matcher };
  return cron.createTask(expr, () => undefined, timezone ? { timezone } : {});
}

export class MaintenanceWindows {
  private readonly windows: { cfg: MaintenanceWindowConfig; seconds: number; matcher: Matcher | null }[];
  /** the last minute asked and its answer, per window: a pass asks for many subjects at once */
  private cache = new Map<number, { minute: number; openUntil: number | null }>();

  constructor(
    config: MaintenanceWindowConfig[],
    private readonly timezone?: string,
  ) {
    this.windows = config.map((cfg) => ({ cfg, seconds: durationSeconds(cfg.duration), matcher: null }));
  }

  /** When window i opened last, if it is still open at `at`: the end of the window, else null. */
  private openUntil(i: number, at: Date): number | null {
    const minute = Math.floor(at.getTime() / 60_000);
    const hit = this.cache.get(i);
    if (hit && hit.minute === minute) return hit.openUntil;
    const w = this.windows[i];
    w.matcher ??= matcherOf(w.cfg.cron, this.timezone);
    let openUntil: number | null = null;
    // the most recent firing within the duration (one check per minute back: a week is 10,080)
    const back = Math.min(Math.ceil(w.seconds / 60), 60 * 24 * 31);
    for (let m = 0; m <= back; m++) {
      const t = new Date((minute - m) * 60_000);
      if (w.matcher.match(t)) {
        const end = t.getTime() + w.seconds * 1000;
        if (end > at.getTime()) openUntil = end;
        break;
      }
    }
    this.cache.set(i, { minute, openUntil });
    return openUntil;
  }

  /** The configured window open for a subject at a time, as a reason, or null. */
  reasonFor(subject: string, at: Date): string | null {
    for (let i = 0; i < this.windows.length; i++) {
      const w = this.windows[i].cfg;
      if (w.services && !w.services.includes(subject)) continue;
      const until = this.openUntil(i, at);
      if (until !== null)
        return `maintenance window ${w.name ?? `"${w.cron}"`}, until ${new Date(until).toISOString().replace(/\.\d+Z$/, 'Z')}`;
    }
    return null;
  }

  dispose(): void {
    for (const w of this.windows) void w.matcher?.destroy();
  }
}

/** Every subject in maintenance now, with its reason: the config's windows, manual ones and our own work. */
export function maintenanceNow(state: StateManager | null, windows: MaintenanceWindows, subjects: string[], at: Date): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of state?.monitor.activeMaintenance(at) ?? [])
    if (!out.has(m.subject)) out.set(m.subject, m.source === 'work' ? m.reason : `${m.reason}, until ${m.endsAt.replace(/\.\d+Z$/, 'Z')}`);
  for (const s of subjects) {
    if (out.has(s)) continue;
    const r = windows.reasonFor(s, at);
    if (r) out.set(s, r);
  }
  return out;
}
