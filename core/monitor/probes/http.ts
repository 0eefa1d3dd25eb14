/**
 * http(s) probes: one GET (no keep-alive, so each run sees a fresh connection and TLS
 * handshake, as a visitor would), its status, optionally its body, its time against
 * max_response_ms, TLS verified by the system CAs, a CA file (read once, at the first run) or
 * not at all (`insecure`). `fetchOnce` is shared with the external probe, which pins the
 * address it resolved itself.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { HealthCheck } from '../../health/checks';
import type { Probe } from '../types';
import { ProbeFailure, runProbe } from './run';

export type HttpCheck = Extract<HealthCheck, { type: 'http' }>;

const BODY_LIMIT = 1024 * 1024;

export interface FetchOptions {
  signal: AbortSignal;
  insecure?: boolean;
  ca?: Buffer;
  /** read the body (up to 1 MiB); otherwise it is drained unread */
  body: boolean;
  /** connect to this address instead of resolving the URL's host (SNI, Host and the certificate's name stay the URL's) */
  address?: { address: string; family: number };
}

export interface FetchResult {
  status: number;
  body: string;
  ms: number;
  /** the server's certificate's end of validity (https) */
  validTo: Date | null;
}

/** A lookup that answers with one fixed address, in the shape net.connect asks for (`all` or not). */
function pinned(a: { address: string; family: number }): net.LookupFunction {
  return ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address: a.address, family: a.family }]);
    else cb(null, a.address, a.family);
  }) as unknown as net.LookupFunction;
}

/** One GET; rejects on a network or TLS error (with its code) or when the signal aborts. */
export function fetchOnce(url: URL, o: FetchOptions): Promise<FetchResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(
      url,
      {
        method: 'GET',
        signal: o.signal,
        agent: false,
        rejectUnauthorized: !o.insecure,
        ca: o.ca,
        lookup: o.address ? pinned(o.address) : undefined,
        headers: { 'User-Agent': 'homelab-autopilot health check', Connection: 'close' },
      } as https.RequestOptions,
      (res) => {
        const sock = res.socket as tls.TLSSocket;
        const cert = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : null;
        const validTo = cert?.valid_to ? new Date(cert.valid_to) : null;
        let body = '';
        if (o.body) {
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            if (body.length < BODY_LIMIT) body += d;
          });
        } else res.resume();
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: Math.round(performance.now() - t0), validTo }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Whether the status is what the check expects (default: 2xx or 3xx), and what it expected. */
export function statusProblem(status: number, expect: number | number[] | undefined): string | null {
  const want = expect === undefined ? null : Array.isArray(expect) ? expect : [expect];
  if (want ? want.includes(status) : status >= 200 && status < 400) return null;
  return `status ${status}, expected ${want ? want.join(' or ') : '2xx or 3xx'}`;
}

/** The CA file, read once (a failed read is tried again at the next run). */
export function caLoader(file: string | undefined): () => Buffer | undefined {
  let ca: Buffer | undefined;
  return () => {
    if (!file) return undefined;
    try {
      ca ??= fs.readFileSync(file);
    } catch (e) {
      throw new ProbeFailure(`cannot read ca_file ${file}: ${(e as Error).message}`);
    }
    return ca;
  };
}

export function httpProbe(c: HttpCheck): Probe {
  const url = new URL(c.url);
  const ca = caLoader(c.ca_file);
  let re: RegExp | null | undefined;
  const pattern = (): RegExp | null => {
    if (re === undefined) {
      try {
        re = c.body_matches === undefined ? null : new RegExp(c.body_matches);
      } catch (e) {
        throw new ProbeFailure(`body_matches is not a valid regular expression: ${(e as Error).message}`);
      }
    }
    return re;
  };
  const wantBody = c.body_contains !== undefined || c.body_matches !== undefined;
  return (env) =>
    runProbe(env, async (signal) => {
      const r = await fetchOnce(url, { signal, insecure: c.insecure, ca: ca(), body: wantBody });
      const bad = statusProblem(r.status, c.expect_status);
      if (bad) throw new ProbeFailure(bad, r.ms);
      if (c.body_contains !== undefined && !r.body.includes(c.body_contains))
        throw new ProbeFailure(`status ${r.status}, but the body does not contain ${JSON.stringify(c.body_contains)}`, r.ms);
      const p = pattern();
      if (p && !p.test(r.body)) throw new ProbeFailure(`status ${r.status}, but the body does not match /${c.body_matches}/`, r.ms);
      if (c.max_response_ms !== undefined && r.ms > c.max_response_ms)
        throw new ProbeFailure(`status ${r.status} in ${r.ms} ms, slower than ${c.max_response_ms} ms`, r.ms);
      return { detail: `status ${r.status} in ${r.ms} ms`, value: r.ms };
    });
}
