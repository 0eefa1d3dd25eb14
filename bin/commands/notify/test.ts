import * as Flags from '@oclif/core/flags';
import type { ChannelResult } from '../../../core/notify/engine';
import { AutopilotError, EXIT } from '../../../lib/errors';
import { BaseCommand } from '../../base';
import { formatDuration, table } from '../../render';

export default class NotifyTest extends BaseCommand<typeof NotifyTest> {
  protected static override writesLogFile = true;
  static override summary = 'Send a test message to every enabled notification channel (or one), and say what happened.';
  static override description =
    'Routing and cooldown are ignored; each channel is retried within its time budget as for a real event. Exit code 1 when a channel failed.';
  static override examples = ['<%= config.bin %> notify test', '<%= config.bin %> notify test --channel ops-mail --json'];
  static override flags = { channel: Flags.string({ summary: 'Only this channel (by name; also a disabled one).' }) };

  async run(): Promise<ChannelResult[]> {
    const { flags } = await this.parse(NotifyTest);
    const app = await this.openApp('rw');
    const channels = app.loaded.config.notifications.channels;
    if (!channels.length)
      throw new AutopilotError('USAGE', 'no notification channels are configured', {
        hint: 'add notifications.channels to the config (docs/notifications.md)',
      });
    if (flags.channel && !channels.some((c) => c.name === flags.channel)) {
      throw new AutopilotError('USAGE', `no notification channel named '${flags.channel}'`, {
        hint: `configured channels: ${channels.map((c) => c.name).join(', ')}`,
      });
    }
    const results = await app.notifier().test(flags.channel);
    if (results.some((r) => !r.ok)) process.exitCode = EXIT.JOB_FAILED;
    this.out(
      table(
        ['CHANNEL', 'TYPE', 'RESULT', 'ATTEMPTS', 'DURATION', 'ERROR'],
        results.map((r) => [r.channel, r.type, r.ok ? 'sent' : 'FAILED', r.attempts, formatDuration(r.durationMs), r.error ?? '']),
      ),
    );
    return results;
  }
}
