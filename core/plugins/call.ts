/**
 * The one way into a plugin. Every call an engine makes (backup hooks, guest operations,
 * notifications, health) goes through callPlugin(): it is not started when the signal has
 * already aborted, it gives up as soon as the signal aborts even when the plugin ignores it,
 * it is timed (debug log), and whatever the plugin throws comes out as a PluginError that
 * names the plugin and the operation and keeps what the plugin said about it (its hint,
 * Retry-After, whether it is permanent, whether anything changed). Aborts and our own coded
 * errors pass through unchanged, so the engines tell "cancelled" and "timed out" apart as before.
 */
import { raceSignal } from '../../lib/async';
import { AutopilotError, isAbortError } from '../../lib/errors';
import type { PluginErrorFields } from './contract';

export interface PluginErrorOptions extends PluginErrorFields {
  /** an HTTP status the error came with */
  status?: number;
  cause?: unknown;
}

/** What a plugin threw, with the plugin's name and the operation it was asked for. */
export class PluginError extends AutopilotError {
  readonly retryAfterMs?: number;
  readonly permanent: boolean;
  /** false when the plugin said nothing was changed (nothing to roll back); undefined when it did not say */
  readonly changed?: boolean;
  readonly status?: number;

  constructor(
    readonly plugin: string,
    readonly operation: string,
    message: string,
    o: PluginErrorOptions = {},
  ) {
    super('PLUGIN_ERROR', message, { hint: o.hint, cause: o.cause });
    this.name = 'PluginError';
    this.retryAfterMs = o.retryAfterMs;
    this.permanent = o.permanent === true;
    this.changed = o.changed;
    this.status = o.status;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Turns a throw from a plugin into a PluginError (aborts and AutopilotErrors stay as they are).
 * The fields are read from the error as the contract's PluginErrorFields describe them.
 */
export function toPluginError(plugin: string, operation: string, e: unknown): unknown {
  if (e instanceof AutopilotError || isAbortError(e)) return e;
  const err = (e ?? {}) as Error & PluginErrorFields & { status?: unknown };
  const message = e instanceof Error ? e.message || e.name : String(e);
  return new PluginError(plugin, operation, message, {
    hint: str(err.hint),
    retryAfterMs: num(err.retryAfterMs),
    permanent: err.permanent === true,
    changed: typeof err.changed === 'boolean' ? err.changed : undefined,
    status: num(err.status),
    cause: e,
  });
}

export interface PluginCall {
  /** the plugin's name */
  plugin: string;
  /** what it is asked to do, e.g. 'beforeBackup' */
  operation: string;
  /** aborts the call (the run's signal, or a deadline) */
  signal: AbortSignal;
  /** how the operation is named in "… was cancelled" (default: the plugin's <operation> step) */
  what?: string;
  /** gets one debug line with the time the call took */
  logger?: { debug(message: string): void };
}

/** Calls into a plugin under the rules above. */
export async function callPlugin<T>(call: PluginCall, fn: () => T | Promise<T>): Promise<T> {
  const what = call.what ?? `the ${call.operation} step of the ${call.plugin} plugin`;
  if (call.signal.aborted) throw new AutopilotError('ABORTED', `${what} was not started: cancelled`);
  const t0 = Date.now();
  try {
    return await raceSignal(Promise.resolve().then(fn), call.signal, () => new AutopilotError('ABORTED', `${what} was cancelled`));
  } catch (e) {
    throw toPluginError(call.plugin, call.operation, e);
  } finally {
    call.logger?.debug(`${call.plugin}.${call.operation}: ${Date.now() - t0} ms`);
  }
}
