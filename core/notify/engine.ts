/**
 * The notification engine: every engine reports events here. It decides whether an event is
 * worth a message (cooldown per event and subject, kept in state so that it holds across
 * cron runs; a recovery always goes through; a persisting failure is repeated at an
 * interval), routes it to the channels that want it, renders the channel's templates, and
 * delivers to all channels in parallel, each retried with backoff within its own time
 * budget. Delivery never throws: a channel that fails is recorded and logged, and never
 * changes the result of the job that raised the event.
 */
import * as os from 'node:os';
import { raceSignal, sleep } from '../../lib/async';
import { describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import type { ChannelConfig, NotificationsConfig } from '../config/types';
import type { NotificationMessage, NotificationPlugin, Severity } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';
import { toPluginError } from '../plugins/call';

/** An event as engines raise it: a message without its time (added when it is sent). */
export type NotifyEvent = Omit<NotificationMessage, 'time'>;

export interface ChannelResult {
  channel: string;
  type: string;
  ok: boolean;
  attempts: number;
  error?: string;
  durationMs: number;
}

export interface DeliveryReport {
  event: string;
  subject: string;
  /** sent: passed the cooldown (the channels may still have failed); suppressed: held back */
  decision: 'sent' | 'suppressed' | 'no-channel' | 'failed';
  reason?: string;
  channels: ChannelResult[];
}

/** A success that ends a failure of the same subject: always delivered. */
export const RECOVERY_OF: Record<string, string> = {
  backup_success: 'backup_failed',
  update_success: 'update_failed',
  service_recovered: 'service_down',
  restore_test_passed: 'restore_test_failed',
};

/** Conditions that persist until resolved: sent once, then again every repeat_interval. */
export const PERSISTENT = new Set([
  'backup_failed',
  'update_failed',
  'service_down',
  'restore_test_failed',
  'external_access_failed',
  'disk_space_warning',
]);

const RANK: Record<string, number> = { info: 0, success: 0, warning: 1, critical: 2 };

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

export interface NotificationEngineDeps {
  config: NotificationsConfig;
  registry: PluginRegistry;
  state: StateManager | null;
  logger: Logger;
  signal: AbortSignal;
  now?(): Date;
}

export class NotificationEngine {
  private readonly log: Logger;
  private readonly host = os.hostname();

  constructor(private readonly deps: NotificationEngineDeps) {
    this.log = deps.logger.child('notify');
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  get channels(): ChannelConfig[] {
    return this.deps.config.channels;
  }

  /** Cooldown, recovery and repeat, decided once per event, in state. */
  private decide(ev: NotifyEvent): { send: boolean; reason?: string; recoveryOf?: string } {
    const state = this.deps.state;
    if (!state) return { send: true };
    const now = this.now().getTime();
    const failed = RECOVERY_OF[ev.event];
    // a recovery always goes through; the failure ends once someone has been told (settle())
    if (failed && state.cooldown.isFailing(failed, ev.subject)) return { send: true, recoveryOf: failed };
    const last = state.cooldown.lastSent(ev.event, ev.subject);
    const since = last ? now - Date.parse(last) : Infinity;
    if (PERSISTENT.has(ev.event)) {
      const ongoing = state.cooldown.isFailing(ev.event, ev.subject);
      if (!ongoing) state.cooldown.markFailing(ev.event, ev.subject, this.now().toISOString());
      const every = this.deps.config.repeat_interval * 1000;
      if (ongoing && since < every)
        return {
          send: false,
          reason: `still failing; repeated every ${this.deps.config.repeat_interval}s, last sent ${Math.round(since / 1000)}s ago`,
        };
      // failing again soon after a recovery (flapping): the cooldown still holds
      if (!ongoing && since < this.deps.config.cooldown * 1000)
        return {
          send: false,
          reason: `failing again ${Math.round(since / 1000)}s after the last alert (cooldown ${this.deps.config.cooldown}s)`,
        };
      return { send: true };
    }
    const cooldown = this.deps.config.cooldown * 1000;
    if (since < cooldown)
      return { send: false, reason: `cooldown: sent ${Math.round(since / 1000)}s ago (cooldown ${this.deps.config.cooldown}s)` };
    return { send: true };
  }

  /** After delivery: only an event someone received counts as sent (and only then does a recovery end its failure). */
  private settle(ev: NotifyEvent, recoveryOf: string | undefined, delivered: boolean): void {
    const state = this.deps.state;
    if (!state || state.readonly || !delivered) return;
    state.cooldown.markSent(ev.event, ev.subject, this.now().toISOString());
    if (recoveryOf) state.cooldown.clearFailing(recoveryOf, ev.subject);
  }

  private message(ev: NotifyEvent, channel: ChannelConfig): NotificationMessage {
    const time = this.now().toISOString();
    const vars = { event: ev.event, severity: ev.severity, subject: ev.subject, title: ev.title, text: ev.text, time, host: this.host };
    return {
      event: ev.event,
      severity: ev.severity,
      subject: ev.subject,
      title: channel.title_template ? render(channel.title_template, vars) : ev.title,
      text: channel.text_template ? render(channel.text_template, vars) : ev.text,
      details: { ...(ev.details ?? {}), host: this.host },
      time,
    };
  }

  /** Delivers to one channel, retrying with backoff (or as Retry-After asks) within its time budget. */
  private async deliver(channel: ChannelConfig, message: NotificationMessage): Promise<ChannelResult> {
    const started = Date.now();
    const budget = (channel.timeout ?? this.deps.config.timeout) * 1000;
    const deadline = started + budget;
    const result = (ok: boolean, attempts: number, error?: string): ChannelResult => ({
      channel: channel.name,
      type: channel.type,
      ok,
      attempts,
      error,
      durationMs: Date.now() - started,
    });
    let plugin: NotificationPlugin;
    try {
      plugin = this.deps.registry.require<NotificationPlugin>('notification', channel.type, `notification channel '${channel.name}'`);
    } catch (e) {
      return result(false, 0, describeError(e));
    }
    let delay = 1000;
    // the channel's own answer, kept when a later attempt only runs out of time
    let lastAnswer: string | undefined;
    for (let attempt = 1; ; attempt++) {
      const left = deadline - Date.now();
      const signal = AbortSignal.any([this.deps.signal, AbortSignal.timeout(Math.max(1, left))]);
      let error: Error & { retryAfterMs?: number; permanent?: boolean };
      try {
        const op = { signal, logger: this.deps.logger.child(`plugin:${channel.type}`), dryRun: false, deadline };
        const timedOut = (): Error => new Error(this.deps.signal.aborted ? 'cancelled' : `no answer within ${Math.round(budget / 1000)}s`);
        await raceSignal(
          Promise.resolve().then(() => plugin.send(message, channel, op)),
          signal,
          timedOut,
        );
        return result(true, attempt);
      } catch (e) {
        error = toPluginError(channel.type, 'send', e) as Error & { retryAfterMs?: number; permanent?: boolean };
      }
      if (!signal.aborted) lastAnswer = describeError(error);
      const wait = error.retryAfterMs !== undefined ? Math.max(250, error.retryAfterMs) : delay * (0.8 + Math.random() * 0.4);
      // a permanent error (a 401, a wrong URL) is not tried again: it cannot succeed later
      if (error.permanent === true || this.deps.signal.aborted || Date.now() + wait >= deadline) {
        const why = signal.aborted && lastAnswer ? `${describeError(error)}; before that: ${lastAnswer}` : describeError(error);
        return result(false, attempt, mask(`${why}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`));
      }
      this.log.debug(`channel ${channel.name}: attempt ${attempt} failed (${describeError(error)}); trying again in ${Math.round(wait)}ms`);
      await sleep(wait, this.deps.signal);
      delay = Math.min(delay * 2, 30_000);
    }
  }

  private record(
    ev: { event: string; severity: string; subject: string; title: string },
    r: ChannelResult | null,
    status: 'sent' | 'failed' | 'suppressed',
    runId: number | null,
    error?: string,
  ): void {
    const state = this.deps.state;
    if (!state || state.readonly) return;
    state.recordNotification({
      channel: r?.channel ?? '-',
      event: ev.event,
      severity: ev.severity,
      subject: ev.subject,
      title: mask(ev.title),
      status,
      attempts: r?.attempts ?? 0,
      error: error ?? r?.error ?? null,
      runId,
    });
  }

  private async dispatch(ev: NotifyEvent, channels: ChannelConfig[], runId: number | null): Promise<ChannelResult[]> {
    const results = await Promise.all(channels.map((c) => this.deliver(c, this.message(ev, c))));
    for (const r of results) {
      this.record(ev, r, r.ok ? 'sent' : 'failed', runId);
      if (r.ok) this.log.info(`${ev.event} about ${ev.subject} sent to ${r.channel}`);
      else this.log.warn(`${ev.event} about ${ev.subject} could not be sent to ${r.channel}: ${r.error}`);
    }
    return results;
  }

  /** Reports one event: decided, routed, delivered. Never throws. */
  async notify(ev: NotifyEvent, runId: number | null = null): Promise<DeliveryReport> {
    try {
      const d = this.decide(ev);
      if (!d.send) {
        this.log.debug(`${ev.event} about ${ev.subject} held back: ${d.reason}`);
        this.record(ev, null, 'suppressed', runId, d.reason);
        return { event: ev.event, subject: ev.subject, decision: 'suppressed', reason: d.reason, channels: [] };
      }
      const channels = this.channels.filter((c) => routes(c, ev.event, ev.severity, d.recoveryOf));
      if (!channels.length) return { event: ev.event, subject: ev.subject, decision: 'no-channel', channels: [] };
      const results = await this.dispatch(ev, channels, runId);
      this.settle(
        ev,
        d.recoveryOf,
        results.some((r) => r.ok),
      );
      return { event: ev.event, subject: ev.subject, decision: 'sent', channels: results };
    } catch (e) {
      this.log.warn(`notification of ${ev.event} about ${ev.subject} failed: ${describeError(e)}`);
      return { event: ev.event, subject: ev.subject, decision: 'failed', reason: mask(describeError(e)), channels: [] };
    }
  }

  /** Collects the events of one run and sends each channel one message about those it wants. */
  digest(): Digest {
    return new Digest(this);
  }

  /** @internal used by Digest */
  async flushDigest(events: NotifyEvent[], summary: { title: string; subject: string }, runId: number | null): Promise<DeliveryReport[]> {
    try {
      const decided = events.map((ev) => ({ ev, d: this.decide(ev) }));
      const reports: DeliveryReport[] = [];
      for (const { ev, d } of decided) {
        if (!d.send) {
          this.record(ev, null, 'suppressed', runId, d.reason);
          reports.push({ event: ev.event, subject: ev.subject, decision: 'suppressed', reason: d.reason, channels: [] });
        }
      }
      const deliveries = this.channels.map(async (c) => {
        const items = decided.filter(({ ev, d }) => d.send && routes(c, ev.event, ev.severity, d.recoveryOf));
        if (!items.length) return null;
        const worst = items.reduce((a, b) => (RANK[b.ev.severity] > RANK[a.ev.severity] ? b : a)).ev;
        const ev: NotifyEvent = {
          event: worst.event,
          severity: worst.severity,
          subject: summary.subject,
          title: summary.title,
          text: items.map(({ ev: e, d }) => `${d.recoveryOf ? '[recovered] ' : ''}${e.title}${e.text ? `: ${e.text}` : ''}`).join('\n'),
          details: {
            items: items.map(({ ev: e }) => ({ event: e.event, severity: e.severity, subject: e.subject, title: e.title, text: e.text })),
          },
        };
        const r = await this.deliver(c, this.message(ev, c));
        this.record(ev, r, r.ok ? 'sent' : 'failed', runId);
        if (r.ok) this.log.info(`digest (${items.length} event${items.length > 1 ? 's' : ''}) sent to ${c.name}`);
        else this.log.warn(`digest could not be sent to ${c.name}: ${r.error}`);
        return { ev, r, items: items.map((x) => x.ev) };
      });
      const done = (await Promise.all(deliveries)).filter(
        (x): x is { ev: NotifyEvent; r: ChannelResult; items: NotifyEvent[] } => x !== null,
      );
      for (const { ev, d } of decided.filter((x) => x.d.send))
        this.settle(
          ev,
          d.recoveryOf,
          done.some((x) => x.r.ok && x.items.includes(ev)),
        );
      if (done.length)
        reports.push({ event: done[0].ev.event, subject: summary.subject, decision: 'sent', channels: done.map((x) => x.r) });
      return reports;
    } catch (e) {
      this.log.warn(`the digest failed: ${describeError(e)}`);
      return [];
    }
  }

  /** Sends a test message to every enabled channel (or the one named), ignoring routing and cooldown. */
  async test(only?: string): Promise<ChannelResult[]> {
    const channels = only ? this.channels.filter((c) => c.name === only) : this.channels.filter((c) => c.enabled !== false);
    const ev: NotifyEvent = {
      event: 'test',
      severity: 'info',
      subject: this.host,
      title: `Test message from homelab-autopilot on ${this.host}`,
      text: 'If you can read this, this channel works.',
    };
    return this.dispatch(ev, channels, null);
  }
}

export class Digest {
  private readonly events: NotifyEvent[] = [];
  constructor(private readonly engine: NotificationEngine) {}
  add(ev: NotifyEvent): void {
    this.events.push(ev);
  }
  get size(): number {
    return this.events.length;
  }
  flush(summary: { title: string; subject: string }, runId: number | null): Promise<DeliveryReport[]> {
    return this.engine.flushDigest(this.events, summary, runId);
  }
}
