/**
 * A Proxmox VE REST API client (node:https only): API token or ticket authentication, TLS
 * verified by default (CA file or pinned SHA-256 fingerprint for a self-signed certificate),
 * a timeout and an AbortSignal on every request, retries with backoff and jitter for
 * idempotent reads, a circuit breaker per node, and PVE's errors turned into clear messages.
 * See ../shared/pve-api-notes.md sections 1-3 for the behaviour this follows.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { PluginLogger } from '../../../core/plugins/contract';

export interface ClientOptions {
  host: string;
  port: number;
  tokenId?: string;
  tokenSecret?: string;
  username?: string;
  password?: string;
  /** SHA-256 fingerprint of the server certificate (AA:BB:…), trusted instead of a CA */
  fingerprint?: string;
  caFile?: string;
  insecure?: boolean;
  /** ms per request */
  timeoutMs: number;
  /** retries of an idempotent request */
  retries: number;
  /** consecutive failures that open a node's breaker, and how long it stays open (ms) */
  breakerThreshold: number;
  breakerCooldownMs: number;
  logger: PluginLogger;
  /** the clock (tests) */
  now?: () => number;
  /** base of the retry backoff in ms (tests shorten it) */
  backoffMs?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** An error of the PVE API, with what PVE said and what to do about it. */
export class PveError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly hint?: string,
    readonly errors?: Record<string, string>,
    readonly pveMessage?: string,
  ) {
    super(message);
    this.name = 'PveError';
  }
}

/** Parameters as PVE wants them: booleans as 1/0, arrays repeated, nothing undefined. */
export function encodeParams(params: Record<string, unknown> | undefined): URLSearchParams {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null) continue;
    const add = (x: unknown): void => q.append(k, typeof x === 'boolean' ? (x ? '1' : '0') : String(x));
    if (Array.isArray(v)) v.forEach(add);
    else add(v);
  }
  return q;
}

/** Waits, or rejects with the signal's reason when it aborts first. */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

const normFp = (fp: string): string => fp.replace(/:/g, '').toUpperCase();

/** An https.Agent that verifies the server's certificate fingerprint before any byte is written. */
class PinnedAgent extends https.Agent {
  constructor(private readonly fingerprint: string) {
    super({ keepAlive: true, maxSockets: 8 });
  }
  override createConnection(options: https.RequestOptions, cb?: (err: Error | null, stream: Duplex) => void): undefined {
    const callback = cb as (err: Error | null, stream?: Duplex) => void;
    const socket = tls.connect({ ...(options as tls.ConnectionOptions), rejectUnauthorized: false });
    const onError = (e: Error): void => callback(e);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.removeListener('error', onError);
      const got = socket.getPeerCertificate()?.fingerprint256 ?? '';
      if (normFp(got) !== normFp(this.fingerprint)) {
        socket.destroy();
        const e = new Error(`the server's certificate fingerprint is ${got || 'missing'}, not the configured ${this.fingerprint}`);
        (e as NodeJS.ErrnoException).code = 'FINGERPRINT_MISMATCH';
        callback(e);
        return;
      }
      callback(null, socket);
    });
    return undefined;
  }
}

interface RawResponse {
  status: number;
  reason: string;
  body: string;
}

const RETRYABLE_NET = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);
/** connection errors that prove nothing was sent: a write may be tried again after these */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

const TICKET_RENEW_MS = 3600_000; // renew after an hour (tickets live two)

interface Breaker {
  failures: number;
  openUntil: number;
  last: string;
}

export class PveClient {
  private readonly agent: https.Agent;
  private ticket: { value: string; csrf: string; at: number } | null = null;
  private login: Promise<void> | null = null;
  private readonly breakers = new Map<string, Breaker>();
  private readonly now: () => number;
  /** requests sent, by method (for the benchmark and --debug) */
  readonly counts = { total: 0, GET: 0, POST: 0, PUT: 0, DELETE: 0 } as Record<string, number>;

  constructor(private readonly o: ClientOptions) {
    this.now = o.now ?? Date.now;
    if (o.fingerprint) this.agent = new PinnedAgent(o.fingerprint);
    // a CA file verifies; insecure turns verification off only when nothing to verify with is given
    else
      this.agent = new https.Agent({
        keepAlive: true,
        maxSockets: 8,
        rejectUnauthorized: Boolean(o.caFile) || !o.insecure,
        ca: o.caFile ? fs.readFileSync(o.caFile) : undefined,
      });
  }

  get authMode(): 'token' | 'ticket' {
    return this.o.tokenId ? 'token' : 'ticket';
  }

  close(): void {
    this.agent.destroy();
  }

  /** GET: idempotent, retried. */
  get<T>(path: string, params?: Record<string, unknown>, ro?: RequestOptions): Promise<T> {
    return this.call<T>('GET', path, params, ro);
  }

  /** POST/PUT/DELETE: never retried once it may have reached the server. */
  post<T>(path: string, params?: Record<string, unknown>, ro?: RequestOptions): Promise<T> {
    return this.call<T>('POST', path, params, ro);
  }

  delete<T>(path: string, params?: Record<string, unknown>, ro?: RequestOptions): Promise<T> {
    return this.call<T>('DELETE', path, params, ro);
  }

  /** The breaker key of a path: the node it is proxied to, or the API host itself. */
  private breakerKey(path: string): string {
    const m = /^\/nodes\/([^/]+)/.exec(path);
    return m ? `node ${m[1]}` : `host ${this.o.host}`;
  }

  private checkBreaker(key: string): void {
    const b = this.breakers.get(key);
    if (b && b.openUntil > this.now()) {
      const secs = Math.ceil((b.openUntil - this.now()) / 1000);
      throw new PveError(
        `${key} is unreachable (${b.last}): ${b.failures} requests in a row failed, so calls to it fail fast for ${secs}s more`,
        595,
        'check that the node is up and joined to the cluster',
      );
    }
  }

  private recordOutcome(key: string, ok: boolean, why = ''): void {
    if (ok) {
      this.breakers.delete(key);
      return;
    }
    const b = this.breakers.get(key) ?? { failures: 0, openUntil: 0, last: '' };
    b.failures++;
    b.last = why;
    if (b.failures >= this.o.breakerThreshold) {
      b.openUntil = this.now() + this.o.breakerCooldownMs;
      if (b.failures === this.o.breakerThreshold)
        this.o.logger.warn(`${key}: ${b.failures} failures in a row; failing fast for ${this.o.breakerCooldownMs / 1000}s`);
    }
    this.breakers.set(key, b);
  }

  private async call<T>(method: string, path: string, params: Record<string, unknown> | undefined, ro: RequestOptions = {}): Promise<T> {
    if (!this.o.host)
      throw new PveError(
        'no Proxmox host is configured',
        null,
        'set plugins.proxmox.host (and token_id with token_secret, or username with password) in the config',
      );
    const idempotent = method === 'GET';
    const key = this.breakerKey(path);
    let reauthed = false;
    let last: PveError | null = null;
    for (let attempt = 0; ; attempt++) {
      try {
        this.checkBreaker(`host ${this.o.host}`);
        this.checkBreaker(key);
      } catch (e) {
        // the breaker opened during our own retries: the real error says more
        throw last ?? e;
      }
      let res: RawResponse;
      try {
        if (this.authMode === 'ticket') await this.ensureTicket(ro);
        res = await this.send(method, path, params, ro);
      } catch (e) {
        if (e instanceof PveError) throw e;
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (code === 'FINGERPRINT_MISMATCH')
          throw new PveError(
            `refused to talk to ${this.o.host}: ${(e as Error).message}`,
            null,
            'if the certificate was renewed on purpose, put its new fingerprint into plugins.proxmox.fingerprint (pvenode cert info)',
          );
        if (ro.signal?.aborted) throw ro.signal.reason instanceof Error ? ro.signal.reason : e;
        // a verification failure, not a connection that broke during the handshake
        const tlsProblem =
          /^ERR_TLS_CERT|CERT_|^UNABLE_TO_VERIFY|^DEPTH_ZERO_SELF_SIGNED|^SELF_SIGNED_CERT|^ERR_TLS_/.test(code) &&
          !/ECONNRESET/.test(code);
        if (tlsProblem) {
          throw new PveError(
            `TLS verification of ${this.o.host} failed: ${(e as Error).message}`,
            null,
            'trust the PVE certificate with plugins.proxmox.fingerprint (pvenode cert info) or ca_file',
          );
        }
        const timedOut = code === 'REQUEST_TIMEOUT';
        this.recordOutcome(`host ${this.o.host}`, false, (e as Error).message);
        // a kept-alive socket the server had closed: the request never arrived (Node's documented case)
        const staleSocket = code === 'ECONNRESET' && (e as { reusedSocket?: boolean }).reusedSocket === true;
        const canRetry = (idempotent && (RETRYABLE_NET.has(code) || timedOut)) || NOT_SENT.has(code) || (staleSocket && attempt === 0);
        if (canRetry && attempt < this.o.retries) {
          await this.backoff(attempt, ro.signal);
          continue;
        }
        throw new PveError(
          `cannot reach the Proxmox API at ${this.o.host}:${this.o.port}: ${(e as Error).message}`,
          null,
          'check plugins.proxmox.host and port, and that pveproxy runs',
        );
      }
      this.counts.total++;
      this.counts[method] = (this.counts[method] ?? 0) + 1;
      if (res.status >= 200 && res.status < 300) {
        this.recordOutcome(key, true);
        if (key !== `host ${this.o.host}`) this.recordOutcome(`host ${this.o.host}`, true);
        return this.parse<T>(res).data as T;
      }
      if (res.status === 401 && this.authMode === 'ticket' && !reauthed && path !== '/access/ticket') {
        // the ticket expired or was revoked: log in again once (nothing was done on a 401)
        reauthed = true;
        this.ticket = null;
        continue;
      }
      const transient = res.status >= 500 && res.status !== 501;
      if (res.status >= 595) this.recordOutcome(key, false, `${res.status} ${res.reason}`.trim());
      last = this.errorFor(method, path, res);
      if (transient && idempotent && attempt < this.o.retries) {
        this.o.logger.debug(`${method} ${path}: ${last.message}; trying again`);
        await this.backoff(attempt, ro.signal);
        continue;
      }
      throw last;
    }
  }

  private async backoff(attempt: number, signal?: AbortSignal): Promise<void> {
    const base = this.o.backoffMs ?? 500;
    await sleep(Math.min(10_000, base * 2 ** attempt) * (0.5 + Math.random() / 2), signal);
  }

  private parse<T>(res: RawResponse): { data?: T; message?: string; errors?: Record<string, string> } {
    if (!res.body) return {};
    try {
      return JSON.parse(res.body) as { data?: T };
    } catch {
      return {};
    }
  }

  /** PVE's error in words: its `message` when there is one, else the reason phrase (older servers). */
  errorFor(method: string, path: string, res: RawResponse): PveError {
    const body = this.parse<unknown>(res);
    const said = (body.message ?? res.reason ?? '').trim();
    const what = `${method} ${path}`;
    switch (res.status) {
      case 401:
        return new PveError(
          `Proxmox refused the credentials (401 ${said || 'authentication failure'})`,
          401,
          this.authMode === 'token'
            ? 'check plugins.proxmox.token_id (user@realm!name) and token_secret, and that the token has not expired'
            : 'check plugins.proxmox.username (user@realm) and password; the ticket may have expired',
          undefined,
          said,
        );
      case 403:
        return new PveError(
          `permission denied for ${what}: ${said}`,
          403,
          `grant the privilege PVE names on that path to ${this.o.tokenId ?? this.o.username} (with a privilege-separated token, to the token too)`,
          undefined,
          said,
        );
      case 400: {
        const errs = body.errors ?? {};
        const list = Object.entries(errs).map(([k, v]) => `${k}: ${String(v).trim()}`);
        return new PveError(
          `Proxmox refused ${what}: ${list.length ? list.join('; ') : said || 'bad request'}`,
          400,
          undefined,
          errs,
          said,
        );
      }
      case 595:
      case 596:
      case 597:
      case 598:
      case 599: {
        const node = /^\/nodes\/([^/]+)/.exec(path)?.[1];
        return new PveError(
          `${node ? `node ${node}` : 'the node'} is unreachable (${res.status} ${said || 'no connection'})`,
          res.status,
          'check that the node is up and that the cluster sees it (pvecm status)',
          undefined,
          said,
        );
      }
      default:
        return new PveError(`${what} failed: ${res.status} ${said || 'error'}`, res.status, undefined, undefined, said);
    }
  }

  private headers(method: string): Record<string, string> {
    if (this.authMode === 'token') return { Authorization: `PVEAPIToken=${this.o.tokenId}=${this.o.tokenSecret ?? ''}` };
    if (!this.ticket) return {};
    const h: Record<string, string> = { Cookie: `PVEAuthCookie=${encodeURIComponent(this.ticket.value)}` };
    if (method !== 'GET') h.CSRFPreventionToken = this.ticket.csrf;
    return h;
  }

  /** Logs in, or renews a ticket older than an hour (with the ticket as the password). */
  private async ensureTicket(ro: RequestOptions): Promise<void> {
    if (this.ticket && this.now() - this.ticket.at < TICKET_RENEW_MS) return;
    // one login for all callers, with a time-out of its own: one caller's cancel must not fail the others
    const own: RequestOptions = { timeoutMs: this.o.timeoutMs };
    if (!this.login) {
      this.login = (async () => {
        if (!this.o.username || !this.o.password) {
          throw new PveError(
            'no Proxmox credentials are configured',
            null,
            'set plugins.proxmox.token_id and token_secret (recommended), or username and password',
          );
        }
        const attempt = async (password: string): Promise<RawResponse> =>
          this.send('POST', '/access/ticket', { username: this.o.username, password }, own, true);
        let res = this.ticket ? await attempt(this.ticket.value) : await attempt(this.o.password);
        if (res.status === 401 && this.ticket) res = await attempt(this.o.password); // renewal refused: log in afresh
        this.counts.total++;
        if (res.status !== 200) {
          this.ticket = null;
          throw this.errorFor('POST', '/access/ticket', res);
        }
        const data = this.parse<{ ticket: string; CSRFPreventionToken: string; NeedTFA?: number }>(res).data;
        if (!data?.ticket) throw new PveError('Proxmox answered the login without a ticket', 200);
        if (data.NeedTFA)
          throw new PveError(
            'this Proxmox user needs a second factor, which a scheduled tool cannot give',
            200,
            'use an API token (plugins.proxmox.token_id / token_secret) instead',
          );
        this.ticket = { value: data.ticket, csrf: data.CSRFPreventionToken, at: this.now() };
      })().finally(() => {
        this.login = null;
      });
    }
    const login = this.login;
    const signal = ro.signal;
    if (!signal) return login;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      login.then(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  private send(
    method: string,
    path: string,
    params: Record<string, unknown> | undefined,
    ro: RequestOptions,
    noAuth = false,
  ): Promise<RawResponse> {
    const q = encodeParams(params);
    const hasBody = method === 'POST' || method === 'PUT';
    const body = hasBody ? q.toString() : '';
    const query = !hasBody && [...q.keys()].length ? `?${q.toString()}` : '';
    const timeoutMs = ro.timeoutMs ?? this.o.timeoutMs;
    return new Promise<RawResponse>((resolve, reject) => {
      if (ro.signal?.aborted) return reject(ro.signal.reason instanceof Error ? ro.signal.reason : new Error('aborted'));
      const headers: Record<string, string> = { Accept: 'application/json', ...(noAuth ? {} : this.headers(method)) };
      if (hasBody) {
        headers['Content-Type'] = 'application/x-www-form-urlencoded';
        headers['Content-Length'] = String(Buffer.byteLength(body));
      }
      const req = https.request(
        {
          host: this.o.host,
          port: this.o.port,
          method,
          path: `/api2/json${path}${query}`,
          headers,
          agent: this.agent,
          servername: net.isIP(this.o.host) ? undefined : this.o.host,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            cleanup();
            resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? '', body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', fail);
        },
      );
      const timer = setTimeout(() => {
        const e = new Error(`no answer within ${timeoutMs / 1000}s`);
        (e as NodeJS.ErrnoException).code = 'REQUEST_TIMEOUT';
        req.destroy(e);
      }, timeoutMs);
      const onAbort = (): void => {
        req.destroy(ro.signal?.reason instanceof Error ? ro.signal.reason : new Error('aborted'));
      };
      ro.signal?.addEventListener('abort', onAbort, { once: true });
      function cleanup(): void {
        clearTimeout(timer);
        ro.signal?.removeEventListener('abort', onAbort);
      }
      function fail(e: Error): void {
        cleanup();
        reject(Object.assign(e, { reusedSocket: req.reusedSocket }));
      }
      req.on('error', fail);
      req.end(body || undefined);
    });
  }
}
