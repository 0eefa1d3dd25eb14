/**
 * Health checks: the type of a `health_checks` entry, its label, and runCheck, with which the
 * update engine validates a service. The checks themselves are the monitor's probes
 * (core/monitor/probes.ts): http(s), tcp, icmp, dns, tls, command, running, backup; see
 * docs/checks.md.
 */
import type { StateManager } from '../../lib/state';
import type { ServiceConfig } from '../plugins/contract';
import { probeFor } from '../monitor/probes';

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
    case 'icmp':
      return `icmp ${c.host}`;
    case 'dns':
      return `dns ${c.query} ${c.record_type ?? 'A'}${c.server ? ` @${c.server}` : ''}`;
    case 'tls': {
      const host = c.host ?? (c.url ? new URL(c.url).hostname : '?');
      const port = c.port ?? (c.url && new URL(c.url).port ? Number(new URL(c.url).port) : 443);
      return `tls ${host}:${port}`;
    }
    case 'backup':
      return `backup within ${c.max_age}${typeof c.max_age === 'number' ? 's' : ''}`;
    default:
      return 'running';
  }
}

/** The time limit of a check when it sets none: 5 s, a command 30 s. */
export function checkTimeoutMs(c: HealthCheck): number {
  return (c.timeout ?? (c.type === 'command' ? 30 : 5)) * 1000;
}

export interface CheckContext {
  signal: AbortSignal;
  running?: () => Promise<boolean>;
  /** where a backup check reads the service's backups (without it, a backup check fails) */
  state?: StateManager | null;
  /** the service the checks belong to */
  service?: ServiceConfig;
}

/** Runs one check through its monitor probe (core/monitor/probes.ts); never throws. `running` asks the service's plugin. */
export async function runCheck(c: HealthCheck, ctx: CheckContext): Promise<CheckResult> {
  const running = ctx.running;
  const probe = probeFor(c, { service: ctx.service, running: running ? () => running() : undefined });
  const r = await probe({
    signal: ctx.signal,
    timeoutMs: checkTimeoutMs(c),
    now: () => new Date(),
    state: ctx.state ?? null,
    history: () => [],
  });
  return { check: describeCheck(c), ok: r.ok, detail: r.detail, durationMs: r.durationMs };
}

/** Runs every check (in order); all must pass. */
export async function runChecks(checks: HealthCheck[], ctx: CheckContext): Promise<{ ok: boolean; results: CheckResult[] }> {
  const results: CheckResult[] = [];
  for (const c of checks) results.push(await runCheck(c, ctx));
  return { ok: results.every((r) => r.ok), results };
}
