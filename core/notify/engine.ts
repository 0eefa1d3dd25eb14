/**
 * The notification engine: every engine reports events here. It decides whether an event is
 * worth a message (./decide.ts: cooldown, recovery, repeat, per incident, kept in state so that
 * it holds across cron runs), routes it to the channels that want it and renders the channel's
 * templates (./render.ts), and delivers to all channels in parallel, each retried with backoff
 * within its own time budget (./deliver.ts). Delivery never throws: a channel that fails is
 * recorded and logged, and never changes the result of the job that raised the event.
 */
import * as os from 'node:os';
import { describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import type { ChannelConfig, NotificationsConfig } from '../config/types';
import type { NotificationMessage } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';
import { decide, settle, type Decision } from './decide';
import { deliver, type ChannelResult } from './deliver';
import { digestEvent, messageFor, routes, type DigestSummary, type NotifyEvent } from './render';

export { PERSISTENT, RECOVERY_OF } from './decide';
export type { ChannelResult } from './deliver';
export { render, routes, type DigestSummary, type NotifyEvent } from './render';

export interface DeliveryReport {
  event: string;
  subject: string;
  /** sent: passed the cooldown (the channels may still have failed); suppressed: held back */
  decision: 'sent' | 'suppressed' | 'no-channel' | 'failed';
  reason?: string;
  channels: ChannelResult[];
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

  private decide(ev: NotifyEvent): Decision {
    return decide(this.deps.state, this.deps.config, ev, this.now());
  }

  private settle(ev: NotifyEvent, d: Decision, delivered: boolean): void {
    settle(this.deps.state, ev, d, delivered, this.now());
  }

  private message(ev: NotifyEvent, channel: ChannelConfig): NotificationMessage {
    return messageFor(ev, channel, this.host, this.now().toISOString());
  }

  private deliver(channel: ChannelConfig, message: NotificationMessage): Promise<ChannelResult> {
    const { registry, logger, signal, config } = this.deps;
    return deliver(channel, message, { registry, logger, signal, timeout: config.timeout });
  }

  /** Records one outcome; whatever came from outside (titles, subjects, errors) is masked first. */
  private record(
    ev: { event: string; severity: string; subject: string; title: string },
    r: ChannelResult | null,
    status: 'sent' | 'failed' | 'suppressed',
    runId: number | null,
    error?: string,
  ): void {
    const state = this.deps.state;
    if (!state || state.readonly) return;
    const why = error ?? r?.error;
    state.recordNotification({
      channel: r?.channel ?? '-',
      event: ev.event,
      severity: ev.severity,
      subject: mask(ev.subject),
      title: mask(ev.title),
      status,
      attempts: r?.attempts ?? 0,
      error: why ? mask(why) : null,
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
        d,
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
  async flushDigest(events: NotifyEvent[], summary: DigestSummary, runId: number | null): Promise<DeliveryReport[]> {
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
        const ev = digestEvent(
          items.map(({ ev: e, d }) => ({ ev: e, recovery: Boolean(d.recoveryOf) })),
          summary,
        );
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
          d,
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
  flush(summary: DigestSummary, runId: number | null): Promise<DeliveryReport[]> {
    return this.engine.flushDigest(this.events, summary, runId);
  }
}
