import { durationSeconds } from '../../lib/duration';
import type { SchedulesConfig } from '../config/types';

/** Whether schedules.monitor asks for the monitor in the daemon, and its default check interval. */
export function monitorSchedule(s: SchedulesConfig | undefined): { interval: number | null } | null {
  const m = s?.monitor;
  if (m === undefined || m === false) return null;
  if (m === true) return { interval: null };
  if (typeof m === 'number' || typeof m === 'string') return { interval: durationSeconds(m) };
  if (m.enabled === false) return null;
  return { interval: m.interval === undefined ? null : durationSeconds(m.interval) };
}
