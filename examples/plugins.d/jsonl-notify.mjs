// Example notification plugin (an ES module): appends every message as one JSON line to a
// file, which a log shipper or a script can follow. Shows the notification contract: send().
//
// plugins:
//   jsonl-notify:
//     path: /var/log/homelab-autopilot/notifications.jsonl

import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/** @type {import('homelab-autopilot/dist/core/plugins/contract').NotificationPluginDefinition} */
export default {
  name: 'jsonl-notify',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  description: 'Appends each notification as a JSON line to a file',
  optionsSchema: {
    properties: { path: { type: 'string', minLength: 1, 'x-path': true, default: 'notifications.jsonl' } },
    additionalProperties: false,
  },
  channelSchema: { properties: { path: { type: 'string', 'x-path': true } } },
  create(ctx) {
    return {
      async send(message, channel) {
        const file = channel.path || ctx.options.path;
        await mkdir(dirname(file), { recursive: true });
        await appendFile(file, JSON.stringify(message) + '\n', { mode: 0o640 });
      },
    };
  },
};
