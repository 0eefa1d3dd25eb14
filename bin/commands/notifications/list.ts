import * as Flags from '@oclif/core/flags';
import { listNotifications, type NotificationRecord } from '../../../core/queries';
import { BaseCommand } from '../../base';
import { localTime, table } from '../../render';

export default class NotificationsList extends BaseCommand<typeof NotificationsList> {
  static override summary = 'Show the notifications sent, failed or held back by their cooldown, newest first.';
  static override examples = [
    '<%= config.bin %> notifications list',
    '<%= config.bin %> notifications list --channel ops-mail --limit 5 --json',
  ];
  static override flags = {
    channel: Flags.string({ summary: 'Only this channel.' }),
    limit: Flags.integer({ min: 1, default: 30, summary: 'How many.' }),
  };

  async run(): Promise<NotificationRecord[]> {
    const { flags } = await this.parse(NotificationsList);
    const app = await this.openApp('ro', { plugins: false, secrets: false });
    const list = listNotifications(app.state, { channel: flags.channel, limit: flags.limit });
    if (!list.length) this.out('no notifications recorded yet');
    else
      this.out(
        table(
          ['TIME', 'CHANNEL', 'EVENT', 'SUBJECT', 'STATUS', 'ATTEMPTS', 'TITLE / ERROR'],
          list.map((n) => [
            localTime(n.createdAt),
            n.channel,
            n.event,
            n.subject,
            n.status,
            n.attempts,
            n.error ? `${n.title} — ${n.error}` : n.title,
          ]),
        ),
      );
    return list;
  }
}
