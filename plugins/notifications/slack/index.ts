/**
 * Built-in notification plugin `slack`: an incoming webhook (@slack/webhook), blocks coloured by
 * severity. Every text is escaped as Slack asks (&, <, >), so an error text cannot ping
 * `<!channel>` or make a link, and each block is fitted to Slack's limits item by item.
 */
import { fitText, SEVERITY_COLOR, type NotificationPluginDefinition } from '../../../core/plugins/contract';

const EMOJI: Record<string, string> = {
  info: ':information_source:',
  success: ':white_check_mark:',
  warning: ':warning:',
  critical: ':rotating_light:',
};

/** Slack's control characters, escaped in every text we send. */
const escapeSlack = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Answers worth trying again: time-outs, rate limits, server errors. */
const retryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

type SlackError = Error & {
  statusCode?: number;
  statusMessage?: string;
  body?: string;
  original?: Error & { cause?: { code?: string; message?: string } };
};

function slackError(e: unknown, retryAfter: string | null): Error {
  const err = (e ?? {}) as SlackError;
  if (typeof err.statusCode === 'number') {
    const status = err.statusCode;
    const body = typeof err.body === 'string' ? err.body.trim().slice(0, 200) : '';
    const wait = status === 429 && retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    return Object.assign(new Error(`slack: answered ${status} ${err.statusMessage ?? ''}${body ? `: ${body}` : ''}`.trim()), {
      status,
      retryAfterMs: wait,
      permanent: !retryable(status),
    });
  }
  const original = (err.original ?? err) as Error & { cause?: { code?: string; message?: string } };
  const code = original.cause?.code;
  // a malformed URL, a redirect (never followed) or a TLS failure: the same on every try
  if (code === 'ERR_INVALID_URL' || /Invalid URL|Failed to parse URL/i.test(original.message))
    return Object.assign(new Error('slack: the webhook URL is not a valid URL'), { permanent: true });
  const permanent =
    Boolean(code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) ||
    /redirect/i.test(`${original.message} ${original.cause?.message ?? ''}`);
  return Object.assign(new Error(`slack: ${code ?? original.cause?.message ?? original.message}`), { permanent });
}

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
        // our fetch: ends with the engine's budget (op.signal), and keeps Retry-After for a 429
        const fetchFn = async (url: string | URL, init?: RequestInit): Promise<Response> => {
          const res = await fetch(url, { ...init, signal: op.signal });
          retryAfter = res.headers.get('retry-after');
          return res;
        };
        const hook = new IncomingWebhook(String(channel.webhook_url), {
          fetch: fetchFn,
          // no time-out of its own: the budget's signal ends the request
          timeout: 0,
          username: typeof channel.username === 'string' ? channel.username : undefined,
          icon_emoji: typeof channel.icon_emoji === 'string' ? channel.icon_emoji : undefined,
        });
        const esc = { escape: escapeSlack };
        try {
          await hook.send({
            text: fitText(`${EMOJI[message.severity] ?? ''} ${message.title}`, 3000, { ...esc, maxLine: 3000 }),
            attachments: [
              {
                color: SEVERITY_COLOR[message.severity] ?? '#888888',
                blocks: [
                  { type: 'header', text: { type: 'plain_text', text: fitText(message.title, 150, { ...esc, maxLine: 150 }) || '-' } },
                  { type: 'section', text: { type: 'mrkdwn', text: fitText(message.text, 3000, esc) || '-' } },
                  {
                    type: 'context',
                    elements: [
                      {
                        type: 'mrkdwn',
                        text: `*${escapeSlack(message.event)}* · ${fitText(message.subject, 1000, { ...esc, maxLine: 1000 })} · ${escapeSlack(message.time)}`,
                      },
                    ],
                  },
                ],
              },
            ],
          });
        } catch (e) {
          throw slackError(e, retryAfter);
        }
      },
    };
  },
};

export default plugin;
