/** Built-in notification plugin `slack`: an incoming webhook (@slack/webhook), blocks coloured by severity. */
import { SEVERITY_COLOR, type NotificationPluginDefinition } from '../../../core/plugins/contract';

const EMOJI: Record<string, string> = {
  info: ':information_source:',
  success: ':white_check_mark:',
  warning: ':warning:',
  critical: ':rotating_light:',
};

const plugin: NotificationPluginDefinition = {
  name: 'slack',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'Posts to a Slack incoming webhook, coloured by severity',
  channelSchema: {
    properties: {
      webhook_url: {
        type: 'string',
        pattern: '^https?://',
        'x-secret': true,
        description: 'the incoming webhook URL (a secret: use webhook_url_file)',
      },
      username: { type: 'string' },
      icon_emoji: { type: 'string' },
    },
    required: ['webhook_url'],
  },
  create() {
    return {
      async send(message, channel, op) {
        const { IncomingWebhook } = await import('@slack/webhook');
        let retryAfter: string | null = null;
        // our fetch: cancellable, and keeps Retry-After for a 429
        const fetchFn = async (url: string | URL, init?: RequestInit): Promise<Response> => {
          const res = await fetch(url, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, op.signal]) : op.signal });
          retryAfter = res.headers.get('retry-after');
          return res;
        };
        const hook = new IncomingWebhook(String(channel.webhook_url), {
          fetch: fetchFn,
          timeout: 15_000,
          username: typeof channel.username === 'string' ? channel.username : undefined,
          icon_emoji: typeof channel.icon_emoji === 'string' ? channel.icon_emoji : undefined,
        });
        try {
          await hook.send({
            text: `${EMOJI[message.severity] ?? ''} ${message.title}`,
            attachments: [
              {
                color: SEVERITY_COLOR[message.severity] ?? '#888888',
                blocks: [
                  { type: 'header', text: { type: 'plain_text', text: message.title.slice(0, 150) } },
                  { type: 'section', text: { type: 'mrkdwn', text: message.text.slice(0, 2900) || '-' } },
                  { type: 'context', elements: [{ type: 'mrkdwn', text: `*${message.event}* · ${message.subject} · ${message.time}` }] },
                ],
              },
            ],
          });
        } catch (e) {
          const err = e as Error & { statusCode?: number; status?: number };
          const status = err.statusCode ?? err.status;
          const wait = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
          throw Object.assign(new Error(`slack: ${err.message}`), { status, retryAfterMs: status === 429 ? wait : undefined });
        }
      },
    };
  },
};

export default plugin;
