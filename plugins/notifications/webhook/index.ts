/**
 * Built-in notification plugin `webhook`: POSTs the message as JSON, optionally signed with
 * an HMAC-SHA256 of the body (header X-Homelab-Autopilot-Signature: sha256=<hex>).
 */
import { createHmac } from 'node:crypto';
import type { NotificationPluginDefinition } from '../../../core/plugins/contract';

const plugin: NotificationPluginDefinition = {
  name: 'webhook',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'POSTs each message as JSON to a URL, optionally HMAC-signed',
  channelSchema: {
    properties: {
      url: { type: 'string', pattern: '^https?://', 'x-secret': true, description: 'where to POST (may hold a token: masked in logs)' },
      hmac_secret: {
        type: 'string',
        minLength: 8,
        'x-secret': true,
        description: 'signs the body: X-Homelab-Autopilot-Signature: sha256=<hex HMAC-SHA256>',
      },
      headers: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    },
    required: ['url'],
  },
  create(ctx) {
    return {
      async send(message, channel, op) {
        const body = JSON.stringify(message);
        const headers: Record<string, string> = {
          'content-type': 'application/json',
          'user-agent': 'homelab-autopilot',
          ...((channel.headers as Record<string, string>) ?? {}),
        };
        if (typeof channel.hmac_secret === 'string')
          headers['x-homelab-autopilot-signature'] = `sha256=${createHmac('sha256', channel.hmac_secret).update(body).digest('hex')}`;
        await ctx.http({
          url: String(channel.url),
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
