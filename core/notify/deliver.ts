/**
 * Delivery to one channel: the plugin's send(), retried with backoff (or as Retry-After asks)
 * within the channel's time budget. The budget is our own timer (lib/async.ts deadlineSignal),
 * not AbortSignal.timeout combined by AbortSignal.any, which a garbage collection can lose on
 * Node 20; the plugin gets it as op.signal and op.deadline, to size its own time-outs to what
 * is left. An error the plugin marks `permanent` (a 401, a wrong URL) is not tried again.
 */
import { deadlineSignal, raceSignal, sleep } from '../../lib/async';
import { describeError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { ChannelConfig } from '../config/types';
import type { NotificationMessage, NotificationPlugin } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';
import { toPluginError } from '../plugins/call';

export interface ChannelResult {
  channel: string;
  type: string;
  ok: boolean;
  attempts: number;
  error?: string;
  durationMs: number;
}

export interface DeliverDeps {
  registry: PluginRegistry;
  logger: Logger;
  /** the run's signal (SIGINT, SIGTERM) */
  signal: AbortSignal;
  /** the budget of a channel without its own `timeout`, in seconds */
  timeout: number;
}

type SendError = Error & { retryAfterMs?: number; permanent?: boolean };

export async function deliver(channel: ChannelConfig, message: NotificationMessage, deps: DeliverDeps): Promise<ChannelResult> {
  const started = Date.now();
  const budgetMs = (channel.timeout ?? deps.timeout) * 1000;
  const deadline = started + budgetMs;
  const result = (ok: boolean, attempts: number, error?: string): ChannelResult => ({
    channel: channel.name,
    type: channel.type,
    ok,
    attempts,
    error,
    durationMs: Date.now() - started,
  });
  let plugin: NotificationPlugin;
  try {
    plugin = deps.registry.require<NotificationPlugin>('notification', channel.type, `notification channel '${channel.name}'`);
  } catch (e) {
    return result(false, 0, mask(describeError(e)));
  }
  const budget = deadlineSignal(budgetMs, deps.signal);
  const log = deps.logger.child('notify');
  const timedOut = (): Error => new Error(deps.signal.aborted ? 'cancelled' : `no answer within ${Math.round(budgetMs / 1000)}s`);
  try {
    let delay = 1000;
    // the channel's own answer, kept when a later attempt only runs out of time
    let lastAnswer: string | undefined;
    for (let attempt = 1; ; attempt++) {
      let error: SendError;
      try {
        const op = { signal: budget.signal, logger: deps.logger.child(`plugin:${channel.type}`), dryRun: false, deadline };
        await raceSignal(
          Promise.resolve().then(() => plugin.send(message, channel, op)),
          budget.signal,
          timedOut,
        );
        return result(true, attempt);
      } catch (e) {
        error = budget.signal.aborted ? timedOut() : (toPluginError(channel.type, 'send', e) as SendError);
      }
      if (!budget.signal.aborted) lastAnswer = describeError(error);
      const wait = error.retryAfterMs !== undefined ? Math.max(250, error.retryAfterMs) : delay * (0.8 + Math.random() * 0.4);
      // a permanent error (a 401, a wrong URL) is not tried again: it cannot succeed later
      if (error.permanent === true || budget.signal.aborted || Date.now() + wait >= deadline) {
        const why = budget.signal.aborted && lastAnswer ? `${describeError(error)}; before that: ${lastAnswer}` : describeError(error);
        return result(false, attempt, mask(`${why}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`));
      }
      log.debug(
        `channel ${channel.name}: attempt ${attempt} failed (${mask(describeError(error))}); trying again in ${Math.round(wait)}ms`,
      );
      await sleep(wait, budget.signal);
      delay = Math.min(delay * 2, 30_000);
    }
  } finally {
    budget.clear();
  }
}
