/**
 * Health checks: used by the update engine to validate a service (and later by the monitor).
 * http(s) (status, body contains or matches, timeout, TLS verified unless told otherwise),
 * tcp (a connection), command (its exit code, run without a shell), running (the service's
 * guest or containers run).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as fs from 'node:fs';
import { execFile, splitCommandLine } from '../../lib/exec';

export { HEALTH_CHECKS_SCHEMA } from './schema';

/** The monitor's timing keys, which any check may carry (the update engine ignores them). */
export interface CheckTiming {
  name?: string;
  timeout?: number;
  interval?: number | string;
  failure_threshold?: number;
  recovery_threshold?: number;
  /** false: validates updates only */
  monitor?: boolean;
}

export type HealthCheck = CheckTiming &
  (
    | {
        type: 'http';
        url: string;
        expect_status?: number | number[];
        body_contains?: string;
        body_matches?: string;
        insecure?: boolean;
        ca_file?: string;
        max_response_ms?: number;
      }
    | { type: 'tcp'; host: string; port: number }
    | { type: 'icmp'; host: string }
    | { type: 'dns'; query: string; record_type?: 'A' | 'AAAA'; server?: string; expect?: string | string[] }
    | { type: 'tls'; url?: string; host?: string; port?: number; warn_days?: number; insecure?: boolean; ca_file?: string }
    | { type: 'command'; command: string | string[]; expect_exit?: number }
    | { type: 'running' }
    | { type: 'backup'; max_age: number | string }
  );

export interface CheckResult {
  check: string;
  ok: boolean;
  detail: string;
  durationMs: number;
}

export function describeCheck(c: HealthCheck): string {
  if (c.name) return c.name;
  switch (c.type) {
    case 'http': {
      // never a password from the URL in plans, logs or state
      const u = new URL(c.url);
      if (u.username || u.password) {
        u.username = '';
        u.password = '';
      }
      return `http ${u.toString()}`;
    }
    case 'tcp':
      return `tcp ${c.host}:${c.port}`;
    case 'command':
      return `command ${Array.isArray(c.command) ? c.command.join(' ') : c.command}`;
    default:
      return 'running';
  }
}

function httpCheck(c: Extract<HealthCheck, { type: 'http' }>, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(c.url);
    const mod = url.protocol === 'https:' ? https : http;
    const timeoutMs = (c.timeout ?? 5) * 1000;
    const req = mod.request(
      url,
      {
        method: 'GET',
        signal,
        timeout: timeoutMs,
        rejectUnauthorized: !c.insecure,
        ca: c.ca_file ? fs.readFileSync(c.ca_file) : undefined,
        headers: { 'User-Agent': 'homelab-autopilot health check' },
      } as https.RequestOptions,
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 1024 * 1024) body += d;
        });
        res.on('end', () => {
          clearTimeout(timer);
          const status = res.statusCode ?? 0;
          const want = c.expect_status === undefined ? null : Array.isArray(c.expect_status) ? c.expect_status : [c.expect_status];
          if (want ? !want.includes(status) : status < 200 || status >= 400)
            return reject(new Error(`status ${status}, expected ${want ? want.join(' or ') : '2xx or 3xx'}`));
          if (c.body_contains !== undefined && !body.includes(c.body_contains))
            return reject(new Error(`status ${status}, but the body does not contain ${JSON.stringify(c.body_contains)}`));
          if (c.body_matches !== undefined && !new RegExp(c.body_matches).test(body))
            return reject(new Error(`status ${status}, but the body does not match /${c.body_matches}/`));
          resolve(`status ${status}`);
        });
      },
    );
    // a whole-answer deadline, not only an idle one
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)), timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)));
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

function tcpCheck(c: Extract<HealthCheck, { type: 'tcp' }>, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const timeoutMs = (c.timeout ?? 5) * 1000;
    const sock = net.connect({ host: c.host, port: c.port });
    const done = (e?: Error): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      if (e) reject(e);
      else resolve('connected');
    };
    const onAbort = (): void => done(new Error('cancelled'));
    const t = setTimeout(() => done(new Error(`no connection within ${timeoutMs / 1000}s`)), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done());
    sock.once('error', (e) => done(e));
  });
}

async function commandCheck(c: Extract<HealthCheck, { type: 'command' }>, signal: AbortSignal): Promise<string> {
  const argv = Array.isArray(c.command) ? c.command : splitCommandLine(c.command);
  const r = await execFile(argv[0], argv.slice(1), { timeoutMs: (c.timeout ?? 30) * 1000, signal });
  const want = c.expect_exit ?? 0;
  if (r.code !== want)
    throw new Error(
      `exit ${r.code ?? r.signal}, expected ${want}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}` : ''}`,
    );
  return `exit ${r.code}`;
}

/** Runs one check; never throws. `running` asks the service's plugin. */
export async function runCheck(c: HealthCheck, ctx: { signal: AbortSignal; running?: () => Promise<boolean> }): Promise<CheckResult> {
  const t0 = Date.now();
  const name = describeCheck(c);
  try {
    let detail: string;
    if (c.type === 'http') detail = await httpCheck(c, ctx.signal);
    else if (c.type === 'tcp') detail = await tcpCheck(c, ctx.signal);
    else if (c.type === 'command') detail = await commandCheck(c, ctx.signal);
    else {
      if (!ctx.running) throw new Error('this service type cannot tell whether it runs');
      if (!(await ctx.running())) throw new Error('not running');
      detail = 'running';
    }
    return { check: name, ok: true, detail, durationMs: Date.now() - t0 };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return {
      check: name,
      ok: false,
      detail: err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message,
      durationMs: Date.now() - t0,
    };
  }
}

/** Runs every check (in order); all must pass. */
export async function runChecks(
  checks: HealthCheck[],
  ctx: { signal: AbortSignal; running?: () => Promise<boolean> },
): Promise<{ ok: boolean; results: CheckResult[] }> {
  const results: CheckResult[] = [];
  for (const c of checks) results.push(await runCheck(c, ctx));
  return { ok: results.every((r) => r.ok), results };
}
