/**
 * One HTTP request with a timeout and an AbortSignal (Node's fetch). A response outside
 * 2xx becomes an HttpError carrying the status and, for 429 and 503, the Retry-After delay.
 */
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
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Retry-After is either seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const signals = [AbortSignal.timeout(req.timeoutMs ?? 15_000)];
  if (req.signal) signals.push(req.signal);
  let res: Response;
  try {
    res = await fetch(req.url, {
      method: req.method ?? 'POST',
      headers: req.headers,
      body: req.body,
      signal: AbortSignal.any(signals),
      redirect: 'error',
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why =
      err.name === 'TimeoutError'
        ? `no answer within ${(req.timeoutMs ?? 15_000) / 1000}s`
        : err.name === 'AbortError'
          ? 'cancelled'
          : (err.cause?.code ?? err.cause?.message ?? err.message);
    throw new HttpError(`${new URL(req.url).host}: ${why}`, null);
  }
  const body = await res.text();
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => (headers[k] = v));
  if (res.status < 200 || res.status > 299) {
    const retryAfterMs = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
    const snippet = body.trim().slice(0, 200);
    throw new HttpError(
      `${new URL(req.url).host} answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`,
      res.status,
      retryAfterMs,
    );
  }
  return { status: res.status, headers, body };
}
