/**
 * What a channel receives: which channels want an event (routes), the channel's templates
 * (render, messageFor), and the one message a digest sends a channel about its events.
 */
import type { ChannelConfig } from '../config/types';
import type { NotificationMessage, Severity } from '../plugins/contract';

/**
 * An event as engines raise it: a message without its time (added when it is sent). `cause`
 * (optional) tells incidents of one event, subject and severity apart: they never hold each
 * other back.
 */
export type NotifyEvent = Omit<NotificationMessage, 'time'> & { cause?: string };

export const RANK: Record<string, number> = { info: 0, success: 0, warning: 1, critical: 2 };

export function render(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (m, k: string) => (k in vars ? vars[k] : m));
}

/** Whether a channel gets an event (a recovery goes wherever its failure would have gone). */
export function routes(channel: ChannelConfig, event: string, severity: Severity, recoveryOf?: string): boolean {
  if (channel.enabled === false) return false;
  if (recoveryOf) return routes(channel, recoveryOf, 'critical') || (channel.events?.includes(event) ?? false);
  if (channel.events) return channel.events.includes(event);
  return RANK[severity] >= RANK[channel.min_severity ?? 'warning'];
}

/** The message a channel receives about an event, through its templates. */
export function messageFor(ev: NotifyEvent, channel: ChannelConfig, host: string, time: string): NotificationMessage {
  const vars = { event: ev.event, severity: ev.severity, subject: ev.subject, title: ev.title, text: ev.text, time, host };
  return {
    event: ev.event,
    severity: ev.severity,
    subject: ev.subject,
    title: channel.title_template ? render(channel.title_template, vars) : ev.title,
    text: channel.text_template ? render(channel.text_template, vars) : ev.text,
    details: { ...(ev.details ?? {}), host },
    time,
  };
}

/** What the engine that made a digest says about it: its subject and title. */
export interface DigestSummary {
  subject: string;
  title: string;
  /** the title for a channel whose events are all good and include recoveries of these subjects */
  recoveredTitle?(subjects: string[]): string;
}

export interface DigestItem {
  ev: NotifyEvent;
  recovery: boolean;
}

/** One channel's digest: titled by the summary (or as a recovery), one line per event, the worst event's name and severity. */
export function digestEvent(items: DigestItem[], summary: DigestSummary): NotifyEvent {
  const worst = items.reduce((a, b) => (RANK[b.ev.severity] > RANK[a.ev.severity] ? b : a)).ev;
  const recovered = items.filter((i) => i.recovery).map((i) => i.ev.subject);
  const allGood = items.every((i) => i.recovery || RANK[i.ev.severity] === 0);
  const title =
    allGood && recovered.length
      ? (summary.recoveredTitle?.(recovered) ?? `${summary.title}: ${recovered.join(', ')} recovered`)
      : summary.title;
  return {
    event: worst.event,
    severity: worst.severity,
    subject: summary.subject,
    title,
    text: items.map(({ ev: e, recovery }) => `${recovery ? '[recovered] ' : ''}${e.title}${e.text ? `: ${e.text}` : ''}`).join('\n'),
    details: {
      items: items.map(({ ev: e }) => ({ event: e.event, severity: e.severity, subject: e.subject, title: e.title, text: e.text })),
    },
  };
}
