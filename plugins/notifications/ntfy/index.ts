/**
 * Built-in notification plugin `ntfy`: publishes to an ntfy topic (a self-hosted ntfy server or
 * ntfy.sh). The body stays within ntfy's 4,096 bytes (a longer one becomes an attachment), item
 * by item; a title with characters outside ASCII is sent RFC 2047-encoded, as ntfy reads it.
 */
import { cutText, fitText, type NotificationPluginDefinition, type Severity } from '../../../core/plugins/contract';

const PRIORITY: Record<Severity, number> = { info: 3, success: 3, warning: 4, critical: 5 };
const TAGS: Record<Severity, string> = {
  info: 'information_source',
  success: 'white_check_mark',
  warning: 'warning',
  critical: 'rotating_light',
};

/** ntfy's message size limit: a longer body is turned into an attachment. */
const MAX_BODY_BYTES = 4096;

/** A header value in RFC 2047 encoded words (=?UTF-8?B?…?=), each at most 75 characters, split between code points. */
function encodeWords(text: string): string {
  const words: string[] = [];
  let chunk = '';
  for (const ch of text) {
    // 45 bytes of UTF-8 make 60 characters of base64: with =?UTF-8?B??= a word stays under 75
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w).toString('base64')}?=`).join(' ');
}

const plugin: NotificationPluginDefinition = {
  name: 'ntfy',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'Publishes to an ntfy topic, priority by severity',
  channelSchema: {
    properties: {
      server: { type: 'string', pattern: '^https?://', default: 'https://ntfy.sh' },
      topic: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
      token: { type: 'string', 'x-secret': true, description: 'an ntfy access token (Authorization: Bearer)' },
    },
    required: ['topic'],
  },
  create(ctx) {
    return {
      async send(message, channel, op) {
        const title = cutText(message.title.replace(/[\r\n]+/g, ' '), 250);
        const headers: Record<string, string> = {
          // header values must be printable ASCII: anything else goes RFC 2047-encoded
          title: /^[\x20-\x7e]*$/.test(title) ? title : encodeWords(title),
          priority: String(PRIORITY[message.severity] ?? 3),
          tags: TAGS[message.severity] ?? 'information_source',
          'content-type': 'text/plain; charset=utf-8',
        };
        if (typeof channel.token === 'string') headers.authorization = `Bearer ${channel.token}`;
        const body = fitText(message.text, MAX_BODY_BYTES, { measure: (s) => Buffer.byteLength(s) });
        await ctx.http({
          url: `${String(channel.server).replace(/\/+$/, '')}/${String(channel.topic)}`,
          body,
          headers,
          signal: op.signal,
          // what is left of the channel's budget, not a fixed time-out of our own
          timeoutMs: op.deadline ? Math.max(100, op.deadline - Date.now()) : undefined,
        });
      },
    };
  },
};

export default plugin;
