/**
 * The notification engine's decisions (cooldown, recovery, repeat of a persisting failure, the
 * digest) with an injected clock: time passes by moving the fake clock, never by waiting. The
 * state is a real SQLite database in a temporary folder, opened afresh for each "cron run" as a
 * new process would; the channels are a recording plugin behind a fake registry.
 */
import * as path from 'node:path';
import type { ChannelConfig, NotificationsConfig } from '../../core/config/types';
import { NotificationEngine, type NotifyEvent } from '../../core/notify/engine';
import type { NotificationMessage, NotificationPlugin } from '../../core/plugins/contract';
import type { PluginRegistry } from '../../core/plugins/host';
import { silentLogger } from '../../lib/log';
import { StateManager } from '../../lib/state';
import { cleanupTmp, tmpDir } from '../helpers/cli';

afterAll(cleanupTmp);

const COOLDOWN = 300;
const REPEAT = 3600;

const failed = (subject = 'web'): NotifyEvent => ({
  event: 'backup_failed',
  severity: 'critical',
  subject,
  title: `Backup of ${subject} FAILED`,
  text: 'disk full',
});
const succeeded = (subject = 'web'): NotifyEvent => ({
  event: 'backup_success',
  severity: 'success',
  subject,
  title: `Backup of ${subject} succeeded`,
  text: '',
});
/** an event that is neither a persisting failure nor a recovery: the plain cooldown applies */
const rolledBack = (subject = 'web'): NotifyEvent => ({
  event: 'rollback_executed',
  severity: 'warning',
  subject,
  title: `Update of ${subject} failed and was ROLLED BACK`,
  text: '',
});

interface Delivery {
  channel: string;
  message: NotificationMessage;
}

/**
 * A homelab with a fake clock: `run()` is one cron run (a new engine on the state database
 * opened again), `advance(s)` lets seconds pass, `sent` holds what the channels received.
 */
function homelab(channels: Partial<ChannelConfig>[] = [{ name: 'ops' }], overrides: Partial<NotificationsConfig> = {}) {
  const dir = path.join(tmpDir('ha-notify-'), 'state');
  let t = Date.parse('2026-12-01T03:00:00Z');
  const sent: Delivery[] = [];
  /** channels that fail for now (the plugin throws) */
  const down = new Set<string>();
  const plugin: NotificationPlugin = {
    async send(message, channel) {
      const name = String(channel.name);
      // "come back in an hour": beyond the channel's time budget, so the engine gives up at once instead of waiting to retry
      if (down.has(name)) throw Object.assign(new Error(`${name} answered 503`), { retryAfterMs: 3_600_000 });
      sent.push({ channel: name, message });
    },
  };
  // the part of PluginRegistry the engine uses
  const find = (kind: string, name: string): NotificationPlugin | undefined =>
    kind === 'notification' && name === 'recorder' ? plugin : undefined;
  const registry = {
    find,
    require(kind: string, name: string, neededBy: string): NotificationPlugin {
      const p = find(kind, name);
      if (!p) throw new Error(`${neededBy} needs the ${kind} plugin '${name}', which is not installed`);
      return p;
    },
  } as unknown as PluginRegistry;
  const config: NotificationsConfig = {
    cooldown: COOLDOWN,
    repeat_interval: REPEAT,
    digest: true,
    timeout: 5,
    channels: channels.map((c) => ({ name: 'ops', type: 'recorder', enabled: true, min_severity: 'warning', ...c })),
    ...overrides,
  };
  let state: StateManager | null = null;
  const run = (): NotificationEngine => {
    state?.close();
    state = StateManager.open(dir);
    return new NotificationEngine({
      config,
      registry,
      state,
      logger: silentLogger,
      signal: new AbortController().signal,
      now: () => new Date(t),
    });
  };
  return {
    sent,
    down,
    run,
    advance(seconds: number): void {
      t += seconds * 1000;
    },
    /** what `notifications list` shows, oldest first: [event, subject, channel, status] */
    recorded(): string[][] {
      return state!
        .listNotifications({ limit: 1000 })
        .reverse()
        .map((n) => [n.event, n.subject, n.channel, n.status]);
    },
    close(): void {
      state?.close();
    },
  };
}

let h: ReturnType<typeof homelab>;
afterEach(() => h?.close());

describe('notification engine: cooldown', () => {
  it('holds an event back for `cooldown` seconds after it was sent, per subject, and records that it did', async () => {
    h = homelab();
    expect((await h.run().notify(rolledBack())).decision).toBe('sent');
    h.advance(COOLDOWN - 1);
    const held = await h.run().notify(rolledBack());
    expect(held).toMatchObject({ decision: 'suppressed', channels: [] });
    expect(held.reason).toMatch(new RegExp(`cooldown: sent ${COOLDOWN - 1}s ago \\(cooldown ${COOLDOWN}s\\)`));
    // another subject has a cooldown of its own
    expect((await h.run().notify(rolledBack('db'))).decision).toBe('sent');
    h.advance(1);
    expect((await h.run().notify(rolledBack())).decision).toBe('sent');
    expect(h.sent.map((d) => d.message.subject)).toEqual(['web', 'db', 'web']);
    expect(h.recorded()).toEqual([
      ['rollback_executed', 'web', 'ops', 'sent'],
      ['rollback_executed', 'web', '-', 'suppressed'],
      ['rollback_executed', 'db', 'ops', 'sent'],
      ['rollback_executed', 'web', 'ops', 'sent'],
    ]);
  });

  it('starts the cooldown only when someone received the event', async () => {
    h = homelab();
    h.down.add('ops');
    const lost = await h.run().notify(rolledBack());
    expect(lost.decision).toBe('sent');
    expect(lost.channels).toEqual([
      expect.objectContaining({ channel: 'ops', ok: false, attempts: 1, error: expect.stringMatching(/503/) }),
    ]);
    h.down.clear();
    h.advance(1);
    expect((await h.run().notify(rolledBack())).channels).toEqual([expect.objectContaining({ ok: true })]);
    expect(h.sent).toHaveLength(1);
  });
});

describe('notification engine: recovery', () => {
  it('always sends the recovery of a failure, within the cooldown and to where the failure went', async () => {
    // ops only asks for warnings and worse: a success alone does not reach it
    h = homelab();
    expect((await h.run().notify(succeeded())).decision).toBe('no-channel');
    expect((await h.run().notify(failed())).decision).toBe('sent');
    h.advance(10);
    const recovery = await h.run().notify(succeeded());
    expect(recovery).toMatchObject({ decision: 'sent', channels: [{ channel: 'ops', ok: true }] });
    expect(h.sent.map((d) => d.message.event)).toEqual(['backup_failed', 'backup_success']);
    // the failure ended with the recovery: the next success is an ordinary one, within its cooldown
    h.advance(10);
    expect((await h.run().notify(succeeded())).decision).toBe('suppressed');
    // and the next failure, a minute after the last alert, is flapping: held back by the cooldown
    h.advance(40);
    const flap = await h.run().notify(failed());
    expect(flap.decision).toBe('suppressed');
    expect(flap.reason).toMatch(/failing again 60s after the last alert \(cooldown 300s\)/);
  });

  it('keeps the failure open while nobody received its recovery, so the next success is a recovery too', async () => {
    h = homelab();
    await h.run().notify(failed());
    h.down.add('ops');
    h.advance(10);
    expect((await h.run().notify(succeeded())).channels).toEqual([expect.objectContaining({ ok: false })]);
    h.down.clear();
    h.advance(10);
    expect((await h.run().notify(succeeded())).channels).toEqual([expect.objectContaining({ channel: 'ops', ok: true })]);
    expect(h.sent.map((d) => d.message.event)).toEqual(['backup_failed', 'backup_success']);
  });

  it('sends a recovery to a channel that lists only the failure among its events', async () => {
    h = homelab([{ name: 'pager', events: ['backup_failed'] }]);
    await h.run().notify(failed());
    expect((await h.run().notify(succeeded())).channels).toEqual([expect.objectContaining({ channel: 'pager', ok: true })]);
    expect(h.sent.map((d) => `${d.channel}:${d.message.event}`)).toEqual(['pager:backup_failed', 'pager:backup_success']);
  });
});

describe('notification engine: incidents', () => {
  const HOUR = 3600;
  const DAY = 86_400;

  it('a failure that comes back after its recovery is a new incident, held back only by the cooldown', async () => {
    h = homelab([{ name: 'ops' }], { cooldown: HOUR, repeat_interval: DAY });
    // 10:00 the backup fails, 10:30 it recovers: both sent
    expect((await h.run().notify(failed())).decision).toBe('sent');
    h.advance(30 * 60);
    expect((await h.run().notify(succeeded())).decision).toBe('sent');
    // 10:45 it fails again: within the hour's cooldown of the 10:00 alert
    h.advance(15 * 60);
    const early = await h.run().notify(failed());
    expect(early).toMatchObject({ decision: 'suppressed', reason: expect.stringMatching(/cooldown 3600s/) });
    // 11:00 the cooldown is over: sent, not held back until 10:00 tomorrow by repeat_interval
    h.advance(15 * 60);
    expect((await h.run().notify(failed())).decision).toBe('sent');
    // from now on it is an open incident again: repeated every repeat_interval
    h.advance(2 * HOUR);
    expect((await h.run().notify(failed())).reason).toMatch(/still failing; repeated every 86400s/);
    expect(h.sent.map((d) => d.message.event)).toEqual(['backup_failed', 'backup_success', 'backup_failed']);
  });

  const updateFailed = (severity: 'warning' | 'critical', cause?: string): NotifyEvent => ({
    event: 'update_failed',
    severity,
    subject: 'web',
    title: severity === 'critical' ? 'Update of web failed and the ROLLBACK FAILED too: act now' : 'Update of web was not done',
    text: '',
    ...(cause ? { cause } : {}),
  });

  it('a higher severity always goes out: a critical alert is not held back by an open warning', async () => {
    h = homelab([{ name: 'ops' }], { cooldown: HOUR, repeat_interval: DAY });
    expect((await h.run().notify(updateFailed('warning'))).decision).toBe('sent');
    h.advance(60);
    expect((await h.run().notify(updateFailed('critical'))).decision).toBe('sent');
    // each incident keeps its own repeat: neither is sent again an hour later
    h.advance(HOUR);
    expect((await h.run().notify(updateFailed('warning'))).decision).toBe('suppressed');
    expect((await h.run().notify(updateFailed('critical'))).decision).toBe('suppressed');
    // one recovery ends both
    expect((await h.run().notify({ ...succeeded(), event: 'update_success', title: 'Update of web succeeded' })).decision).toBe('sent');
    h.advance(HOUR);
    expect((await h.run().notify(updateFailed('critical'))).decision).toBe('sent');
    expect(h.sent.map((d) => `${d.message.event}:${d.message.severity}`)).toEqual([
      'update_failed:warning',
      'update_failed:critical',
      'update_success:success',
      'update_failed:critical',
    ]);
  });

  it('a failure left open by an earlier version (keyed by subject alone) still ends with its recovery', async () => {
    h = homelab();
    const engine = h.run();
    (engine as unknown as { deps: { state: StateManager } }).deps.state.set('notify.failing.backup_failed.web', '2026-11-30T03:00:00Z');
    expect((await engine.notify(succeeded())).channels).toEqual([expect.objectContaining({ channel: 'ops', ok: true })]);
    expect((await h.run().notify(succeeded())).decision).toBe('suppressed'); // an ordinary success now
  });

  it('incidents of different causes never hold each other back', async () => {
    h = homelab([{ name: 'ops' }], { cooldown: HOUR, repeat_interval: DAY });
    expect((await h.run().notify(updateFailed('warning', 'precheck'))).decision).toBe('sent');
    expect((await h.run().notify(updateFailed('warning', 'pull'))).decision).toBe('sent');
    expect((await h.run().notify(updateFailed('warning', 'precheck'))).decision).toBe('suppressed');
  });
});

describe('notification engine: a failure that persists', () => {
  it('is sent once, then again every repeat_interval while it lasts', async () => {
    h = homelab();
    expect((await h.run().notify(failed())).decision).toBe('sent');
    h.advance(COOLDOWN); // past the cooldown, but a persisting failure waits for repeat_interval
    const held = await h.run().notify(failed());
    expect(held.decision).toBe('suppressed');
    expect(held.reason).toMatch(new RegExp(`still failing; repeated every ${REPEAT}s, last sent ${COOLDOWN}s ago`));
    h.advance(REPEAT - COOLDOWN - 1);
    expect((await h.run().notify(failed())).decision).toBe('suppressed');
    h.advance(1);
    expect((await h.run().notify(failed())).decision).toBe('sent');
    // the interval counts from the last message sent
    h.advance(REPEAT - 1);
    expect((await h.run().notify(failed())).decision).toBe('suppressed');
    h.advance(1);
    expect((await h.run().notify(failed())).decision).toBe('sent');
    expect(h.sent).toHaveLength(3);
    expect(h.recorded().map((r) => r[3])).toEqual(['sent', 'suppressed', 'suppressed', 'sent', 'suppressed', 'sent']);
  });

  it('is sent again on the next run when nobody received it', async () => {
    h = homelab();
    h.down.add('ops');
    expect((await h.run().notify(failed())).channels).toEqual([expect.objectContaining({ ok: false })]);
    h.down.clear();
    h.advance(60);
    expect((await h.run().notify(failed())).channels).toEqual([expect.objectContaining({ ok: true })]);
    h.advance(60);
    expect((await h.run().notify(failed())).decision).toBe('suppressed');
    expect(h.recorded().map((r) => r[3])).toEqual(['failed', 'sent', 'suppressed']);
  });

  it('is tracked per subject', async () => {
    h = homelab();
    await h.run().notify(failed('web'));
    h.advance(60);
    expect((await h.run().notify(failed('db'))).decision).toBe('sent');
    expect((await h.run().notify(failed('web'))).decision).toBe('suppressed');
  });
});

describe('notification engine: digest', () => {
  const summary = { title: 'Backup: the nightly run', subject: 'backup --all' };

  it('sends each channel one message about the events it wants, leaves out those held back, and settles each event', async () => {
    h = homelab([{ name: 'ops' }, { name: 'all', min_severity: 'info' }]);
    let d = h.run().digest();
    d.add(failed('web'));
    d.add(succeeded('db'));
    expect(d.size).toBe(2);
    const first = await d.flush(summary, null);
    expect(first).toEqual([expect.objectContaining({ decision: 'sent', subject: 'backup --all' })]);
    expect(first[0].channels.map((c) => [c.channel, c.ok])).toEqual([
      ['ops', true],
      ['all', true],
    ]);
    const ops = h.sent.find((x) => x.channel === 'ops')!.message;
    expect(ops).toMatchObject({ event: 'backup_failed', severity: 'critical', subject: 'backup --all', title: summary.title });
    expect(ops.text).toBe('Backup of web FAILED: disk full');
    const all = h.sent.find((x) => x.channel === 'all')!.message;
    expect(all.event).toBe('backup_failed'); // the worst of its events
    expect(all.text.split('\n')).toEqual(['Backup of web FAILED: disk full', 'Backup of db succeeded']);
    expect(all.details?.items).toHaveLength(2);

    // the next night: web still fails (held back until repeat_interval), db's success is past its cooldown
    h.advance(600);
    h.sent.length = 0;
    d = h.run().digest();
    d.add(failed('web'));
    d.add(succeeded('db'));
    const second = await d.flush(summary, null);
    expect(second.map((r) => [r.decision, r.subject])).toEqual([
      ['suppressed', 'web'],
      ['sent', 'backup --all'],
    ]);
    expect(second[0].reason).toMatch(/still failing/);
    expect(h.sent.map((x) => [x.channel, x.message.text])).toEqual([['all', 'Backup of db succeeded']]);

    // web recovers: marked as such, and sent to ops too, where the failure went; the title says it recovered
    h.advance(600);
    h.sent.length = 0;
    d = h.run().digest();
    d.add(succeeded('web'));
    await d.flush({ ...summary, recoveredTitle: (subjects) => `Backup of ${subjects.join(', ')} recovered` }, null);
    expect(h.sent.map((x) => [x.channel, x.message.title, x.message.text])).toEqual([
      ['ops', 'Backup of web recovered', '[recovered] Backup of web succeeded'],
      ['all', 'Backup of web recovered', '[recovered] Backup of web succeeded'],
    ]);
    expect(h.recorded()).toEqual([
      ['backup_failed', 'backup --all', 'ops', 'sent'],
      ['backup_failed', 'backup --all', 'all', 'sent'],
      ['backup_failed', 'web', '-', 'suppressed'],
      ['backup_success', 'backup --all', 'all', 'sent'],
      ['backup_success', 'backup --all', 'ops', 'sent'],
      ['backup_success', 'backup --all', 'all', 'sent'],
    ]);
  });

  it('settles only the events of a channel that received them', async () => {
    h = homelab([{ name: 'ops' }, { name: 'all', min_severity: 'info' }]);
    h.down.add('all');
    const d = h.run().digest();
    d.add(failed('web'));
    d.add(succeeded('db'));
    await d.flush(summary, null);
    // web's failure reached ops; db's success went only to the channel that was down, so it was never sent
    h.down.clear();
    h.advance(10);
    expect((await h.run().notify(succeeded('db'))).channels).toEqual([expect.objectContaining({ channel: 'all', ok: true })]);
    expect((await h.run().notify(failed('web'))).decision).toBe('suppressed');
  });
});
