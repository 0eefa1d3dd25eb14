/** Built-in notification plugin `discord`: a channel webhook through discord.js's WebhookClient, embeds coloured by severity. */
import { SEVERITY_COLOR, type NotificationPluginDefinition } from '../../../core/plugins/contract';

const plugin: NotificationPluginDefinition = {
  name: 'discord',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'Posts to a Discord channel webhook, embeds coloured by severity',
  channelSchema: {
    properties: {
      webhook_url: {
        type: 'string',
        pattern: '^https://(ptb\\.|canary\\.)?discord(app)?\\.com/api(/v\\d+)?/webhooks/\\d{17,20}/[\\w-]{60,80}$',
        'x-secret': true,
        description: 'https://discord.com/api/webhooks/<id>/<token> (a secret: use webhook_url_file)',
      },
      username: { type: 'string' },
      api_url: {
        type: 'string',
        pattern: '^https?://',
        description: 'the Discord API base, for a proxy (default https://discord.com/api)',
      },
    },
    required: ['webhook_url'],
  },
  create() {
    return {
      async send(message, channel, op) {
        // discord.js is heavy: loaded only when a message goes to Discord
        const { WebhookClient } = await import('discord.js');
        const client = new WebhookClient(
          { url: String(channel.webhook_url) },
          {
            rest: {
              ...(typeof channel.api_url === 'string' ? { api: channel.api_url } : {}),
              // within our budget, and a rate limit comes back to us (with its delay) instead of being waited out inside
              timeout: Math.max(1000, Math.min(15_000, (op.deadline ?? Date.now() + 15_000) - Date.now())),
              retries: 0,
              rejectOnRateLimit: () => true,
            },
          },
        );
        const stop = (): void => client.destroy();
        op.signal.addEventListener('abort', stop, { once: true });
        try {
          await client.send({
            username: typeof channel.username === 'string' ? channel.username : 'homelab-autopilot',
            embeds: [
              {
                title: message.title.slice(0, 256),
                description: message.text.slice(0, 4000) || '-',
                color: parseInt((SEVERITY_COLOR[message.severity] ?? '#888888').slice(1), 16),
                timestamp: message.time,
                fields: [
                  { name: 'event', value: message.event, inline: true },
                  { name: 'subject', value: message.subject.slice(0, 1024), inline: true },
                ],
                footer: { text: 'homelab-autopilot' },
              },
            ],
          });
        } catch (e) {
          const err = e as Error & { status?: number; retryAfter?: number; timeToReset?: number };
          const retryAfterMs = err.name === 'RateLimitError' ? (err.retryAfter ?? err.timeToReset) : undefined;
          throw Object.assign(new Error(`discord: ${err.message}`), { status: err.status, retryAfterMs });
        } finally {
          op.signal.removeEventListener('abort', stop);
          client.destroy();
        }
      },
    };
  },
};

export default plugin;
