/**
 * The daemon's HTTP endpoint (node:http): /healthz, /status and /metrics, each answered by a
 * callback. A bearer token is asked for when one is set (it always is off loopback: the config
 * check refuses the address without one); it is compared in constant time and never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AutopilotError } from '../../lib/errors';
import type { Logger } from '../../lib/log';

export interface EndpointHandlers {
  /** /healthz: ok false answers 503 */
  health(): { ok: boolean; text: string };
  status(): Promise<unknown>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface EndpointOptions extends EndpointHandlers {
  listen: string;
  port: number;
  token?: string;
  logger: Logger;
}

export interface Endpoint {
  host: string;
  port: number;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Whether the request carries the token; both sides hashed first, so the comparison takes the same time whatever the length. */
function authorized(req: http.IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(token)) && Boolean(m);
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, o: EndpointOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const send = (status: number, type: string, body: string, extra: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...extra });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
  if (!['/healthz', '/status', '/metrics'].includes(path)) return send(404, 'text/plain', 'not found: try /healthz, /status or /metrics\n');
  if (!authorized(req, o.token))
    return send(401, 'text/plain', 'a bearer token is required (Authorization: Bearer <daemon.token>)\n', {
      'www-authenticate': 'Bearer realm="homelab-autopilot"',
    });
  if (path === '/healthz') {
    const h = o.health();
    return send(h.ok ? 200 : 503, 'text/plain; charset=utf-8', `${h.text}\n`);
  }
  if (path === '/status') return send(200, 'application/json', JSON.stringify(await o.status(), null, 2) + '\n');
  const m = await o.metrics();
  return send(200, m.contentType, m.body);
}

/** Listens on listen:port; a port in use or an address that is not ours is a clear error naming daemon.port / daemon.listen. */
export async function startEndpoint(o: EndpointOptions): Promise<Endpoint> {
  const server = http.createServer((req, res) => {
    answer(req, res, o).catch((e: unknown) => {
      o.logger.warn(`the daemon's ${req.url ?? ''} failed: ${(e as Error)?.message ?? String(e)}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  server.keepAliveTimeout = 5000;
  const host = o.listen.replace(/^\[(.*)\]$/, '$1');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const where = `${o.listen}:${o.port}`;
      const why =
        e.code === 'EADDRINUSE'
          ? `port ${o.port} on ${o.listen} is in use by another program`
          : e.code === 'EADDRNOTAVAIL'
            ? `${o.listen} is not an address of this host`
            : e.code === 'EACCES'
              ? `no permission to listen on ${where}`
              : `${e.code ?? ''} ${e.message}`.trim();
      reject(
        new AutopilotError('CONFIG_INVALID', `the daemon's endpoint cannot listen on ${where}: ${why}`, {
          hint: 'choose another daemon.port (0: no endpoint) or daemon.listen in the config',
        }),
      );
    });
    server.listen(o.port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    host: addr.address,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
