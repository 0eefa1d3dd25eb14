/**
 * Probes for every check type (./probes/*.ts), made once per check from the config: whatever
 * can be prepared (a URL parsed, a regular expression compiled, a CA file read at the first
 * run) is prepared here, not at every run. Each probe never throws, answers within its own
 * time limit (env.timeoutMs) or as soon as env.signal aborts, and reports how long it took.
 * The update engine runs the same probes through core/health/checks.ts runCheck.
 */
import { describeCheck, type HealthCheck } from '../health/checks';
import type { Probe, ProbeDeps } from './types';
import { httpProbe } from './probes/http';
import { icmpProbe, tcpProbe } from './probes/net';
import { dnsProbe } from './probes/dns';
import { tlsProbe } from './probes/tls';
import { backupProbe, commandProbe, runningProbe } from './probes/local';

export { externalProbe } from './probes/external';

/** The probe of one health check. */
export function probeFor(check: HealthCheck, deps: ProbeDeps = {}): Probe {
  try {
    return makeProbe(check, deps);
  } catch (e) {
    // a check the schema let through but that cannot be prepared (a URL that does not parse) fails at every run
    const detail = `${describeCheck(check)}: ${(e as Error).message}`;
    return () => Promise.resolve({ ok: false, detail, durationMs: 0 });
  }
}

function makeProbe(check: HealthCheck, deps: ProbeDeps): Probe {
  switch (check.type) {
    case 'http':
      return httpProbe(check);
    case 'tcp':
      return tcpProbe(check);
    case 'icmp':
      return icmpProbe(check);
    case 'dns':
      return dnsProbe(check);
    case 'tls':
      return tlsProbe(check);
    case 'command':
      return commandProbe(check);
    case 'running':
      return runningProbe(deps);
    case 'backup':
      return backupProbe(check, deps);
    default: {
      const type = (check as { type: unknown }).type;
      return () => Promise.resolve({ ok: false, detail: `unknown check type ${JSON.stringify(type)}`, durationMs: 0 });
    }
  }
}
