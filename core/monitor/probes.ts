/**
 * Probes of the health checks: provisional, over core/health/checks.ts runCheck (the full
 * set of check types and the external probe arrive with the probes branch).
 */
import { runCheck, type HealthCheck } from '../health/checks';
import type { ExternalConfig } from '../config/types';
import type { Probe, ProbeDeps } from './types';

export function probeFor(check: HealthCheck, deps: ProbeDeps): Probe {
  return async (env) => {
    const r = await runCheck(
      { ...check, timeout: env.timeoutMs / 1000 },
      {
        signal: env.signal,
        running: deps.running ? () => (deps.running as NonNullable<ProbeDeps['running']>)(env.signal) : undefined,
      },
    );
    return { ok: r.ok, detail: r.detail, durationMs: r.durationMs };
  };
}

export function externalProbe(ext: ExternalConfig): Probe {
  return probeFor({ type: 'http', url: ext.url, expect_status: ext.expect_status, body_contains: ext.body_contains }, {});
}
