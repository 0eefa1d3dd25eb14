/**
 * One HTTP request with a timeout and an AbortSignal (Node's fetch). A response outside
 * 2xx becomes an HttpError carrying the status, for 429 and 503 the Retry-After delay, and
 * whether trying again can help (`permanent`).
 */
import { deadlineSignal } from './async';

export interface HttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** ms (default 15 s) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class HttpError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    /** how long the server asked us to wait before trying again */
    readonly retryAfterMs?: number,
    /** trying again cannot help: a 4xx other than 408 and 429, a TLS error, a malformed URL, a redirect */
    readonly permanent = false,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Answers worth trying again: time-outs, rate limits and server errors. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Network error codes that no retry fixes: the certificate or the TLS handshake itself. */
export function isTlsErrorCode(code: string | undefined): boolean {
  return Boolean(code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|HOSTNAME_MISMATCH/.test(code));
}

/** Retry-After is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the URL';
  }
}

export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const timeoutMs = req.timeoutMs ?? 15_000;
  const host = hostOf(req.url);
  if (host === 'the URL') throw new HttpError('not a valid URL', null, undefined, true);
  // our own timer, not AbortSignal.timeout combined by AbortSignal.any (lost after a GC on Node 20)
  const budget = deadlineSignal(timeoutMs, req.signal);
  try {
    let res: Response;
    try {
      res = await fetch(req.url, {
        method: req.method ?? 'POST',
        headers: req.headers,
        body: req.body,
        signal: budget.signal,
        redirect: 'error',
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const code = err.cause?.code;
      if (budget.timedOut()) throw new HttpError(`${host}: no answer within ${Math.round(timeoutMs / 100) / 10}s`, null);
      if (budget.signal.aborted) throw new HttpError(`${host}: cancelled`, null);
      // a malformed URL, a redirect (never followed) or a TLS failure: the same on every try
      const permanent =
        /redirect|Invalid URL|Failed to parse URL/i.test(`${err.message} ${err.cause?.message ?? ''}`) || isTlsErrorCode(code);
      throw new HttpError(`${host}: ${code ?? err.cause?.message ?? err.message}`, null, undefined, permanent);
    }
    const body = await res.text();
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    if (res.status < 200 || res.status > 299) {
      const retryAfterMs = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
      const snippet = body.trim().slice(0, 200);
      throw new HttpError(
        `${host} answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`,
        res.status,
        retryAfterMs,
        !retryableStatus(res.status),
      );
    }
    return { status: res.status, headers, body };
  } finally {
    budget.clear();
  }
}
