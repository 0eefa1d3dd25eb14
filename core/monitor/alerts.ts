/**
 * Alerts that mean something: one per incident, per subject and side, never one per check.
 * A subject's side is DOWN while one of its checks of that side is DOWN (FLAPPING: one warning
 * instead of a stream); a check in MAINTENANCE counts for nothing. A subject whose dependency
 * is DOWN is "unreachable (router down)" and raises nothing of its own; the parent's alert
 * names the subjects it takes along. A subject left DOWN after its parent recovered is an
 * outage of its own, alerted then. Warnings (a certificate about to expire, a disk filling
 * up) are raised when they appear and again every repeat_interval while they last.
 *
 * What was raised is kept in state (kv `monitor.incidents`), so that `monitor` run from cron
 * every minute raises each incident once, as the daemon does.
 */
import type { StateManager } from '../../lib/state';
import type { NotifyEvent } from '../notify/engine';
import type { CheckSide, MonitorSpec } from './types';
import type { CheckRow } from '../../lib/state';

const KEY = 'monitor.incidents';

interface Incident {
  level: 'down' | 'flapping';
  since: string;
  /** whether an alert went out for it (not when it began while a dependency was down) */
  alerted: boolean;
  via?: string;
  /** when the dependency it was suppressed by came back: its own checks must answer again before it counts as its own */
  viaClearedAt?: string;
}

interface Warned {
  text: string;
  at: string;
}

const EVENTS: Record<CheckSide, { down: string; up: string; what: string }> = {
  internal: { down: 'service_down', up: 'service_recovered', what: 'is down' },
  external: { down: 'external_access_failed', up: 'external_access_restored', what: 'cannot be reached from outside' },
  resource: { down: 'resource_threshold', up: 'resource_recovered', what: 'is over its threshold' },
  backup: { down: 'backup_stale', up: 'backup_fresh', what: 'has no recent verified backup' },
  certificate: { down: 'certificate_expiring', up: 'certificate_renewed', what: 'has a certificate that expired or is invalid' },
};

const WARNING_EVENT: Partial<Record<CheckSide, string>> = {
  certificate: 'certificate_expiring',
  // the external probe warns about the public certificate only
  external: 'certificate_expiring',
  resource: 'resource_threshold',
};

export interface AlertInput {
  specs: MonitorSpec[];
  rows: Map<string, CheckRow>;
  /** subject -> the subjects it depends on, directly or not */
  closure: Map<string, string[]>;
  now: Date;
  repeatSeconds: number;
}

/** The subjects with an internal check DOWN. */
export function downSubjects(specs: MonitorSpec[], rows: Map<string, CheckRow>): Set<string> {
  const out = new Set<string>();
  for (const s of specs) {
    if (s.side !== 'internal') continue;
    const r = rows.get(s.key);
    // a parent in maintenance (our own update of the router) whose checks fail takes its children along too
    if (r && (r.state === 'DOWN' || (r.state === 'MAINTENANCE' && r.health === 'DOWN'))) out.add(s.subject);
  }
  return out;
}

/** The first dependency of a subject that is DOWN, or null. */
export function unreachableVia(subject: string, closure: Map<string, string[]>, down: Set<string>): string | null {
  return (closure.get(subject) ?? []).find((d) => down.has(d)) ?? null;
}

function describe(checks: { spec: MonitorSpec; row: CheckRow | undefined }[]): string {
  return checks
    .map(({ spec, row }) => `- ${spec.label}: ${row?.state ?? 'PENDING'}${row?.lastDetail ? `: ${row.lastDetail}` : ''}`)
    .join('\n');
}

/** Compares each subject's sides with what was raised before; returns the events to send and saves the new picture. */
export function alertsFor(state: StateManager | null, input: AlertInput): NotifyEvent[] {
  const { specs, rows, closure, now } = input;
  const incidents = state?.get<Record<string, Incident>>(KEY, {}) ?? {};
  const warned = state?.get<Record<string, Warned>>(`${KEY}.warnings`, {}) ?? {};
  const down = downSubjects(specs, rows);
  const groups = new Map<string, { subject: string; side: CheckSide; checks: { spec: MonitorSpec; row: CheckRow | undefined }[] }>();
  for (const spec of specs) {
    const k = `${spec.subject}|${spec.side}`;
    const g = groups.get(k) ?? { subject: spec.subject, side: spec.side, checks: [] };
    g.checks.push({ spec, row: rows.get(spec.key) });
    groups.set(k, g);
  }
  const events: NotifyEvent[] = [];
  const iso = now.toISOString();
  for (const [k, g] of groups) {
    const states = g.checks.map((c) => c.row?.state);
    const level: Incident['level'] | null = states.includes('DOWN') ? 'down' : states.includes('FLAPPING') ? 'flapping' : null;
    const prev = incidents[k];
    const ev = EVENTS[g.side];
    const failing = g.checks.filter((c) => c.row?.state === 'DOWN' || c.row?.state === 'FLAPPING');
    if (level) {
      const via = g.side === 'internal' ? unreachableVia(g.subject, closure, down) : null;
      if (prev && prev.level === level && (prev.alerted || via)) continue;
      if (via) {
        incidents[k] = { level, since: prev?.since ?? iso, alerted: false, via };
        continue;
      }
      // its dependency just came back: its own failing checks must answer once more before this is an outage of its own
      if (prev && !prev.alerted && prev.via) {
        const cleared = prev.viaClearedAt ?? iso;
        if (!failing.every((c) => (c.row?.lastAt ?? '') > cleared)) {
          incidents[k] = { ...prev, viaClearedAt: cleared };
          continue;
        }
      }
      const dependents = [...closure].filter(([, deps]) => deps.includes(g.subject)).map(([s]) => s);
      const along = dependents.length ? `\nTakes along: ${dependents.map((d) => `${d}${down.has(d) ? ' (down)' : ''}`).join(', ')}` : '';
      events.push({
        event: ev.down,
        severity: level === 'flapping' ? 'warning' : 'critical',
        subject: g.subject,
        cause: level === 'flapping' ? 'flapping' : undefined,
        title: `${g.subject} ${level === 'flapping' ? 'is flapping (up and down again and again)' : ev.what}`,
        text: `${describe(failing)}${along}`,
        details: { side: g.side, checks: failing.map((c) => c.spec.label), dependents },
      });
      incidents[k] = { level, since: prev?.since ?? iso, alerted: true };
    } else if (prev) {
      // in maintenance or not decided yet (PENDING): the incident stays open; only all UP ends it
      if (!g.checks.every((c) => c.row?.state === 'UP')) continue;
      delete incidents[k];
      if (prev.alerted)
        events.push({
          event: ev.up,
          severity: 'success',
          subject: g.subject,
          title: `${g.subject} ${g.side === 'internal' ? 'is up again' : 'is fine again'}`,
          text: `${describe(g.checks)}\nSince ${prev.since}.`,
          details: { side: g.side, downSince: prev.since },
        });
    }
  }
  // subjects and sides the config no longer has are forgotten (a service re-enabled later starts afresh)
  for (const k of Object.keys(incidents)) if (!groups.has(k)) delete incidents[k];
  const keys = new Set(specs.map((s) => s.key));
  for (const k of Object.keys(warned)) if (!keys.has(k)) delete warned[k];
  events.push(...warningEvents(specs, rows, warned, input));
  if (state && !state.readonly) {
    state.set(KEY, incidents);
    state.set(`${KEY}.warnings`, warned);
  }
  return events;
}

/** Warnings of certificates and resources: raised when they appear, again every repeatSeconds, and a recovery when they go. */
function warningEvents(
  specs: MonitorSpec[],
  rows: Map<string, CheckRow>,
  warned: Record<string, Warned>,
  input: AlertInput,
): NotifyEvent[] {
  const out: NotifyEvent[] = [];
  for (const spec of specs) {
    const event = WARNING_EVENT[spec.side];
    if (!event) continue;
    const row = rows.get(spec.key);
    const w = row && row.state !== 'MAINTENANCE' && row.state !== 'DOWN' ? row.lastWarning : null;
    const prev = warned[spec.key];
    if (!w) {
      if (row?.state === 'MAINTENANCE') continue; // decided once the maintenance is over
      delete warned[spec.key];
      // a warning that went away on its own (a renewed certificate, a disk cleaned up): said once
      if (prev && row?.state === 'UP')
        out.push({
          event: EVENTS[spec.side === 'external' ? 'certificate' : spec.side].up,
          severity: 'success',
          subject: spec.subject,
          title: `${spec.subject}: fine again (${spec.label})`,
          text: `${spec.label}: ${row.lastDetail ?? 'no warning any more'}\nWas: ${prev.text}`,
          details: { check: spec.label, warnedAt: prev.at },
        });
      continue;
    }
    if (prev && input.now.getTime() - Date.parse(prev.at) < input.repeatSeconds * 1000) continue;
    warned[spec.key] = { text: w, at: input.now.toISOString() };
    out.push({
      event,
      severity: 'warning',
      subject: spec.subject,
      cause: spec.label,
      title: `${spec.subject}: ${w}`,
      text: `${spec.label}: ${w}${row?.lastDetail ? ` (${row.lastDetail})` : ''}`,
      details: { check: spec.label, value: row?.lastValue ?? null },
    });
  }
  return out;
}
