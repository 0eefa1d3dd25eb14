/**
 * Whether an event is worth a message, decided once per event with the state database so
 * that it holds across cron runs. An incident is one event about one subject at one severity
 * (and cause, when the event names one): a critical alert never waits behind an open warning,
 * and incidents of different causes never hold each other back.
 *
 * - a recovery always goes through, and ends every open incident of its failure;
 * - a persisting failure is sent once, then again every repeat_interval while it stays open;
 * - a failure that is not open (the first one, or one after its recovery) is a new incident:
 *   only the cooldown since the last alert about it holds it back;
 * - anything else is held back for the cooldown.
 *
 * Only what someone received counts (settle()): an incident opens, and a recovery ends its
 * failure, once a channel delivered it.
 */
import type { StateManager } from '../../lib/state';
import type { NotificationsConfig } from '../config/types';
import type { NotifyEvent } from './render';

/** A success that ends a failure of the same subject: always delivered. */
export const RECOVERY_OF: Record<string, string> = {
  backup_success: 'backup_failed',
  update_success: 'update_failed',
  service_recovered: 'service_down',
  restore_test_passed: 'restore_test_failed',
  external_access_restored: 'external_access_failed',
  resource_recovered: 'resource_threshold',
  backup_fresh: 'backup_stale',
  certificate_renewed: 'certificate_expiring',
};

/** Conditions that persist until resolved: sent once, then again every repeat_interval. */
export const PERSISTENT = new Set([
  'backup_failed',
  'update_failed',
  'service_down',
  'restore_test_failed',
  'external_access_failed',
  'disk_space_warning',
  'resource_threshold',
  'backup_stale',
  'certificate_expiring',
]);

export interface Decision {
  send: boolean;
  reason?: string;
  /** the failure this event is the recovery of */
  recoveryOf?: string;
}

/** The incident an event belongs to: its subject, severity and cause. */
export function incidentOf(ev: NotifyEvent): string {
  return `${ev.subject}#${ev.severity}${ev.cause ? `:${ev.cause}` : ''}`;
}

export function decide(state: StateManager | null, config: NotificationsConfig, ev: NotifyEvent, now: Date): Decision {
  if (!state) return { send: true };
  const failed = RECOVERY_OF[ev.event];
  if (failed && state.cooldown.openIncidents(failed, ev.subject).length) return { send: true, recoveryOf: failed };
  const incident = incidentOf(ev);
  const last = state.cooldown.lastSent(ev.event, incident);
  const since = last ? now.getTime() - Date.parse(last) : Infinity;
  const s = (ms: number): number => Math.round(ms / 1000);
  if (PERSISTENT.has(ev.event)) {
    if (state.cooldown.isFailing(ev.event, incident)) {
      if (since < config.repeat_interval * 1000)
        return { send: false, reason: `still failing; repeated every ${config.repeat_interval}s, last sent ${s(since)}s ago` };
      return { send: true };
    }
    // a new incident (after a recovery, too): the cooldown alone holds it back
    if (since < config.cooldown * 1000)
      return { send: false, reason: `failing again ${s(since)}s after the last alert (cooldown ${config.cooldown}s)` };
    return { send: true };
  }
  if (since < config.cooldown * 1000) return { send: false, reason: `cooldown: sent ${s(since)}s ago (cooldown ${config.cooldown}s)` };
  return { send: true };
}

/** After delivery: only an event someone received counts as sent, opens its incident, or ends a failure. */
export function settle(state: StateManager | null, ev: NotifyEvent, d: Decision, delivered: boolean, now: Date): void {
  if (!state || state.readonly || !delivered) return;
  const incident = incidentOf(ev);
  const iso = now.toISOString();
  state.cooldown.markSent(ev.event, incident, iso);
  if (PERSISTENT.has(ev.event)) state.cooldown.markFailing(ev.event, incident, iso);
  if (d.recoveryOf)
    for (const open of state.cooldown.openIncidents(d.recoveryOf, ev.subject)) state.cooldown.clearFailing(d.recoveryOf, open);
}
