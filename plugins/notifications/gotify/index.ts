/** Built-in notification plugin `gotify`: posts to a Gotify server's /message with an application token. */
import type { NotificationPluginDefinition, Severity } from '../../../core/plugins/contract';

const PRIORITY: Record<Severity, number> = { info: 2, success: 2, warning: 5, critical: 8 };

const plugin: NotificationPluginDefinition = {
  name: 'gotify',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'Posts to a Gotify server, priority by severity',
  channelSchema: {
    properties: {
      url: { type: 'string', pattern: '^https?://', description: 'the Gotify server, e.g. https://gotify.lan' },
      token: { type: 'string', 'x-secret': true, description: 'the application token' },
    },
    required: ['url', 'token'],
  },
  create(ctx) {
    return {
      async send(message, channel, op) {
        await ctx.http({
          url: `${String(channel.url).replace(/\/+$/, '')}/message`,
          headers: { 'content-type': 'application/json', 'x-gotify-key': String(channel.token) },
          body: JSON.stringify({
            title: message.title,
            message: message.text,
            priority: PRIORITY[message.severity] ?? 2,
            extras: { 'homelab-autopilot': { event: message.event, subject: message.subject } },
          }),
          signal: op.signal,
          // what is left of the channel's budget, not a fixed time-out of our own
          timeoutMs: op.deadline ? Math.max(100, op.deadline - Date.now()) : undefined,
        });
      },
    };
  },
};

export default plugin;
