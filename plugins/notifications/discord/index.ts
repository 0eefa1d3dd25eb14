/**
 * Built-in notification plugin `discord`: a channel webhook through discord.js's WebhookClient,
 * embeds coloured by severity. Text from outside (an error) is markdown-escaped and mentions
 * are switched off (allowed_mentions: {parse: []}); each field is fitted to Discord's limits.
 */
import { cutText, fitText, SEVERITY_COLOR, type NotificationPluginDefinition } from '../../../core/plugins/contract';

/**
 * The webhook URLs discord.js accepts (its parseWebhookURL: an unanchored, case-insensitive
 * match), spelled without the `i` flag a JSON Schema pattern cannot carry.
 */
const DISCORD_WEBHOOK_PATTERN =
  '[hH][tT][tT][pP][sS]?://(?:[pP][tT][bB]\\.|[cC][aA][nN][aA][rR][yY]\\.)?[dD][iI][sS][cC][oO][rR][dD]\\.[cC][oO][mM]/[aA][pP][iI](?:/[vV]\\d{1,2})?/[wW][eE][bB][hH][oO][oO][kK][sS]/(\\d{17,19})/([\\w-]{68})';

/** Answers worth trying again: time-outs, rate limits, server errors. */
const retryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

type DiscordError = Error & {
  status?: number;
  code?: string | number;
  retryAfter?: number;
  timeToReset?: number;
  sublimitTimeout?: number;
  global?: boolean;
  route?: string;
  method?: string;
  cause?: { code?: string; message?: string };
};

/** discord.js's errors as the engine reads them: a useful text, the rate limit's delay, whether to try again. */
function discordError(e: unknown): Error {
  const err = (e ?? {}) as DiscordError;
  // its name is `RateLimitError[<route>]`, and its message is empty
  if (typeof err.name === 'string' && err.name.startsWith('RateLimitError')) {
    const wait = Math.max(err.retryAfter ?? 0, err.timeToReset ?? 0, err.sublimitTimeout ?? 0);
    const where = err.global ? 'globally' : `on ${err.method ? `${err.method.toUpperCase()} ` : ''}${err.route ?? 'this webhook'}`;
    return Object.assign(new Error(`discord: rate limited ${where}; retry after ${(wait / 1000).toFixed(1)}s`), {
      status: 429,
      retryAfterMs: wait,
    });
  }
  const code = err.cause?.code;
  const message = err.message || err.name || String(e);
  if (err.code === 'WebhookURLInvalid')
    return Object.assign(new Error(`discord: ${message}`), {
      permanent: true,
      hint: 'use the URL Discord shows: https://discord.com/api/webhooks/<id>/<token>',
    });
  const tls = Boolean(code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code));
  const status = typeof err.status === 'number' ? err.status : undefined;
  return Object.assign(new Error(`discord: ${status ? `answered ${status}: ` : ''}${message}${code ? ` (${code})` : ''}`), {
    status,
    permanent: tls || (status !== undefined && !retryable(status)),
  });
}

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
        pattern: DISCORD_WEBHOOK_PATTERN,
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
        const { WebhookClient, escapeMarkdown } = await import('discord.js');
        const left = Math.max(100, Math.min(15_000, (op.deadline ?? Date.now() + 15_000) - Date.now()));
        let client: InstanceType<typeof WebhookClient>;
        try {
          client = new WebhookClient(
            { url: String(channel.webhook_url) },
            {
              rest: {
                ...(typeof channel.api_url === 'string' ? { api: channel.api_url } : {}),
                // within what is left of our budget, and a rate limit comes back to us (with its delay) instead of being waited out inside
                timeout: left,
                retries: 0,
                rejectOnRateLimit: () => true,
              },
            },
          );
        } catch (e) {
          throw discordError(e);
        }
        const stop = (): void => client.destroy();
        op.signal.addEventListener('abort', stop, { once: true });
        const md = (s: string): string => escapeMarkdown(s);
        try {
          await client.send({
            username: cutText(typeof channel.username === 'string' ? channel.username : 'homelab-autopilot', 80),
            // no @everyone, @here, role or user pings, whatever the text says
            allowedMentions: { parse: [] },
            embeds: [
              {
                title: fitText(message.title, 256, { escape: md, maxLine: 256 }),
                description: fitText(message.text, 4096, { escape: md }) || '-',
                color: parseInt((SEVERITY_COLOR[message.severity] ?? '#888888').slice(1), 16),
                timestamp: message.time,
                fields: [
                  // our own event name, not text from outside
                  { name: 'event', value: cutText(message.event, 100), inline: true },
                  { name: 'subject', value: fitText(message.subject, 256, { escape: md, maxLine: 256 }) || '-', inline: true },
                ],
                footer: { text: 'homelab-autopilot' },
              },
            ],
          });
        } catch (e) {
          throw discordError(e);
        } finally {
          op.signal.removeEventListener('abort', stop);
          client.destroy();
        }
      },
    };
  },
};

export default plugin;
