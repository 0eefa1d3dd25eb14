/**
 * Built-in notification plugin `command`: runs a script with the event in environment
 * variables (HA_EVENT, HA_SEVERITY, HA_SUBJECT, HA_TITLE, HA_TEXT, HA_TIME) and as JSON on
 * its standard input. No shell: the command is an argument list.
 */
import type { NotificationPluginDefinition } from '../../../core/plugins/contract';

const plugin: NotificationPluginDefinition = {
  name: 'command',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'Runs a command with the message in its environment and on stdin',
  channelSchema: {
    properties: {
      command: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'the program and its arguments' },
      env: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    },
    required: ['command'],
  },
  create(ctx) {
    return {
      async send(message, channel, op) {
        const [cmd, ...args] = channel.command as string[];
        const res = await ctx.exec(cmd, args, {
          input: JSON.stringify(message),
          env: {
            ...((channel.env as Record<string, string>) ?? {}),
            HA_EVENT: message.event,
            HA_SEVERITY: message.severity,
            HA_SUBJECT: message.subject,
            HA_TITLE: message.title,
            HA_TEXT: message.text,
            HA_TIME: message.time,
          },
          signal: op.signal,
          // at most a minute, and never past the channel's budget
          timeoutMs: Math.max(100, Math.min(60_000, (op.deadline ?? Date.now() + 60_000) - Date.now())),
        });
        if (res.code !== 0)
          throw new Error(
            `${cmd} exited with ${res.code ?? res.signal}${res.stderr.trim() ? `: ${res.stderr.trim().split('\n').pop()}` : ''}`,
          );
      },
    };
  },
};

export default plugin;
