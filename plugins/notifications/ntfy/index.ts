/** Built-in notification plugin `ntfy`: publishes to an ntfy topic (a self-hosted ntfy server or ntfy.sh). */
import type { NotificationPluginDefinition, Severity } from '../../../core/plugins/contract';

const PRIORITY: Record<Severity, number> = { info: 3, success: 3, warning: 4, critical: 5 };
const TAGS: Record<Severity, string> = {
  info: 'information_source',
  success: 'white_check_mark',
  warning: 'warning',
  critical: 'rotating_light',
};

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
        const headers: Record<string, string> = {
          title: message.title,
          priority: String(PRIORITY[message.severity] ?? 3),
          tags: TAGS[message.severity] ?? 'information_source',
          'content-type': 'text/plain; charset=utf-8',
        };
        if (typeof channel.token === 'string') headers.authorization = `Bearer ${channel.token}`;
        // header values must be Latin-1: titles with other characters go in the body
        if (/[^\x20-\x7e]/.test(message.title)) delete headers.title;
        const body = headers.title ? message.text : `${message.title}\n${message.text}`;
        await ctx.http({ url: `${String(channel.server).replace(/\/+$/, '')}/${String(channel.topic)}`, body, headers, signal: op.signal });
      },
    };
  },
};

export default plugin;
