/**
 * Dead-man pings: a job tells a switch such as Healthchecks.io or an Uptime Kuma push monitor
 * that it started and how it ended, so that a job that never runs (a dead cron, a machine
 * that is off) raises an alert there. A ping is retried within a short time budget and never
 * throws: a switch that is down must not fail the job it watches. The URL is a secret (a
 * Healthchecks UUID or ping key, a Kuma push token): it is never logged, only its host.
 *
 * - Healthchecks style: URL/start, URL (success), URL/<exit code> or URL/fail; a run id
 *   (`?rid=`) pairs a start with its end so that the switch measures the run's duration.
 * - Uptime Kuma (the path holds /api/push/): no start; URL?status=up&msg=OK&ping=<ms>, or
 *   URL?status=down&msg=exit <code>.
 */
import { sleep } from './async';
import { HttpError, httpRequest } from './http';
import type { Logger } from './log';
import { mask, registerSecret } from './mask';

/** An error page's body (HTML, many lines) cut to one short line for the log. */
function oneLine(text: string): string {
  const flat = text
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}
export type PingKind = 'start' | 'success' | 'fail';

export interface PingOptions {
  /** the job's exit code (fail: Healthchecks' URL/<code>, Kuma's message) */
  exitCode?: number;
  /** how long the job ran (Kuma's ping=) */
  durationMs?: number;
  /** a Healthchecks run id (a UUID) pairing a start with its end */
  runId?: string;
  /** stops the ping early (the budget below applies anyway) */
  signal?: AbortSignal;
  /** the whole budget, every try and pause included (default 10 s) */
  timeoutMs?: number;
  /** tries after the first (default 2) */
  retries?: number;
  logger?: Logger;
}

export interface PingResult {
  /** the switch answered 2xx */
  ok: boolean;
  /** false when there was nothing to send (an Uptime Kuma push URL has no start) */
  sent: boolean;
  attempts: number;
  /** why it failed, masked */
  error?: string;
}

const DEFAULT_BUDGET_MS = 10_000;
const DEFAULT_RETRIES = 2;
const FIRST_PAUSE_MS = 250;

function parse(url: string): URL | null {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u : null;
  } catch {
    return null;
  }
}

/** Whether a ping URL is an Uptime Kuma push URL (its path holds /api/push/). */
export function isUptimeKuma(url: string): boolean {
  return /\/api\/push\//.test(parse(url)?.pathname ?? '');
}

/**
 * The URL a ping of this kind requests, or null when there is nothing to send (an Uptime
 * Kuma start) or the URL is not http(s).
 */
export function pingTarget(url: string, kind: PingKind, opts: Pick<PingOptions, 'exitCode' | 'durationMs' | 'runId'> = {}): string | null {
  const u = parse(url);
  if (!u) return null;
  if (isUptimeKuma(url)) {
    if (kind === 'start') return null;
    const up = kind === 'success';
    u.searchParams.set('status', up ? 'up' : 'down');
    u.searchParams.set('msg', up ? 'OK' : opts.exitCode !== undefined ? `exit ${opts.exitCode}` : 'failed');
    u.searchParams.set('ping', opts.durationMs !== undefined ? String(Math.max(0, Math.round(opts.durationMs))) : '');
    return u.toString();
  }
  const base = u.pathname.replace(/\/+$/, '');
  const code = opts.exitCode;
  const suffix =
    kind === 'start'
      ? '/start'
      : kind === 'success'
        ? ''
        : code !== undefined && Number.isInteger(code) && code > 0 && code <= 255
          ? `/${code}`
          : '/fail';
  u.pathname = base + suffix;
  if (opts.runId) u.searchParams.set('rid', opts.runId);
  return u.toString();
}

/**
 * Registers what is secret in a ping URL with the mask: the URL, and every path segment of a
 * Kuma push URL after /api/push/ (a short token is not caught by the mask's own URL rules).
 */
export function registerPingUrl(url: string): void {
  registerSecret(url);
  const u = parse(url);
  if (!u) return;
  const segments = u.pathname.split('/').filter(Boolean);
  const push = segments.indexOf('push');
  if (push > 0 && segments[push - 1] === 'api') for (const s of segments.slice(push + 1)) registerSecret(s);
  else for (const s of segments) if (/[0-9]/.test(s) && s.length >= 6) registerSecret(s);
}

/** How a ping URL is named in logs: its host only. */
export function pingHost(url: string): string {
  return parse(url)?.host ?? 'an invalid URL';
}

/** Sends one ping: retried with a short backoff within its budget; never throws. */
export async function ping(url: string, kind: PingKind, opts: PingOptions = {}): Promise<PingResult> {
  registerPingUrl(url);
  const log = opts.logger;
  const what = `dead-man ping '${kind}' to ${pingHost(url)}`;
  const target = pingTarget(url, kind, opts);
  if (!parse(url)) {
    log?.warn(`${what} not sent: the URL is not http(s)`);
    return { ok: false, sent: false, attempts: 0, error: 'not an http(s) URL' };
  }
  if (!target) return { ok: true, sent: false, attempts: 0 };
  const budget = opts.timeoutMs ?? DEFAULT_BUDGET_MS;
  const tries = 1 + Math.max(0, opts.retries ?? DEFAULT_RETRIES);
  const deadline = Date.now() + budget;
  let error = '';
  let attempts = 0;
  try {
    for (let i = 0; i < tries; i++) {
      const left = deadline - Date.now();
      if (left <= 0 || opts.signal?.aborted) break;
      attempts++;
      try {
        await httpRequest({
          url: target,
          method: 'GET',
          headers: { 'user-agent': 'homelab-autopilot' },
          timeoutMs: left,
          signal: opts.signal,
        });
        log?.debug(`${what}: sent${attempts > 1 ? ` (try ${attempts})` : ''}`);
        return { ok: true, sent: true, attempts };
      } catch (e) {
        error = oneLine(mask(e instanceof Error ? e.message : String(e)));
        if (e instanceof HttpError && e.permanent) break;
        if (i < tries - 1) {
          log?.debug(`${what}: try ${attempts} failed: ${error}`);
          const pause = Math.min((e as HttpError).retryAfterMs ?? FIRST_PAUSE_MS * 2 ** i, deadline - Date.now());
          if (pause > 0) await sleep(pause, opts.signal);
        }
      }
    }
  } catch (e) {
    // nothing above should throw; a ping must never fail its job
    error = mask(e instanceof Error ? e.message : String(e));
  }
  if (!error) error = attempts ? 'no answer' : `no time left (budget ${Math.round(budget / 100) / 10}s)`;
  log?.warn(`${what} failed after ${attempts} ${attempts === 1 ? 'try' : 'tries'}: ${error} (the job's result is not affected)`);
  return { ok: false, sent: true, attempts, error };
}
