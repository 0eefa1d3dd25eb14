/**
 * What the monitor watches, made once from the config: a spec per health check of every
 * enabled service and monitoring target (unless the check says `monitor: false`), one per
 * `external:` URL, and the resources (disk, memory, load, hypervisor nodes). Each spec has its
 * own interval, timeout and thresholds (the check's, else monitoring's), and the subjects it
 * depends on.
 */
import { durationSeconds } from '../../lib/duration';
import type { Logger } from '../../lib/log';
import { describeCheck, type HealthCheck } from '../health/checks';
import type { AutopilotConfig, ExternalConfig } from '../config/types';
import type { ServiceConfig } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';
import { externalProbe, probeFor } from './probes';
import { RunningCache } from './running';
import type { ResourceProbe } from './resources';
import type { CheckSide, MonitorSpec } from './types';

interface Entry {
  name: string;
  checks: HealthCheck[];
  dependsOn: string[];
  external?: ExternalConfig;
  service?: ServiceConfig;
}

function entries(config: AutopilotConfig): Entry[] {
  const svcs = config.services
    .filter((s) => s.enabled !== false)
    .map((s) => ({
      name: s.name,
      checks: (s.health_checks as HealthCheck[] | undefined) ?? [],
      dependsOn: (s.depends_on as string[] | undefined) ?? [],
      external: s.external as ExternalConfig | undefined,
      service: s,
    }));
  const targets = (config.monitoring.targets ?? [])
    .filter((t) => t.enabled !== false)
    .map((t) => ({ name: t.name, checks: t.health_checks, dependsOn: t.depends_on ?? [], external: t.external }));
  return [...svcs, ...targets];
}

const sideOf = (c: HealthCheck): CheckSide => (c.type === 'backup' ? 'backup' : c.type === 'tls' ? 'certificate' : 'internal');

/** Makes the specs of services, targets and external URLs (resourceSpecs adds the resources). */
export function buildSpecs(config: AutopilotConfig, registry: PluginRegistry, logger: Logger): MonitorSpec[] {
  const m = config.monitoring;
  const interval = durationSeconds(m.interval);
  const running = new RunningCache(config, registry, logger.child('running'));
  const specs: MonitorSpec[] = [];
  const keys = new Set<string>();
  const add = (s: Omit<MonitorSpec, 'key'>): void => {
    let key = `${s.subject}/${s.label}`;
    for (let n = 2; keys.has(key); n++) key = `${s.subject}/${s.label} #${n}`;
    keys.add(key);
    specs.push({ ...s, key });
  };
  const timing = (c: { interval?: number | string; timeout?: number; failure_threshold?: number; recovery_threshold?: number }) => ({
    intervalS: c.interval !== undefined ? durationSeconds(c.interval) : interval,
    timeoutMs: Math.round((c.timeout ?? m.timeout) * 1000),
    failureThreshold: c.failure_threshold ?? m.failure_threshold,
    recoveryThreshold: c.recovery_threshold ?? m.recovery_threshold,
  });
  for (const e of entries(config)) {
    for (const c of e.checks) {
      if (c.monitor === false) continue;
      const deps = { service: e.service, subject: e.name, running: e.service && c.type === 'running' ? running.for(e.service) : undefined };
      add({
        subject: e.name,
        label: describeCheck(c),
        type: c.type,
        side: sideOf(c),
        ...timing(c),
        dependsOn: e.dependsOn,
        probe: probeFor(c, deps),
      });
    }
    if (e.external)
      add({
        subject: e.name,
        label: `external ${e.external.url}`,
        type: 'external',
        side: 'external',
        ...timing(e.external),
        dependsOn: [],
        probe: externalProbe(e.external),
      });
  }
  return specs;
}

/** The specs of the resource probes (resources.ts): the resources' interval, DOWN at the first critical result. */
export function resourceSpecs(config: AutopilotConfig, resources: ResourceProbe[]): MonitorSpec[] {
  const m = config.monitoring;
  if (!m.resources.enabled) return [];
  const interval = durationSeconds(m.resources.interval);
  return resources.map((r) => ({
    ...r,
    key: `${r.subject}/${r.label}`,
    side: 'resource' as const,
    intervalS: interval,
    timeoutMs: Math.round(m.timeout * 1000),
    failureThreshold: 1,
    recoveryThreshold: 1,
    dependsOn: [],
  }));
}

/** The subjects each subject depends on, directly or through others. */
export function dependencyClosure(specs: MonitorSpec[]): Map<string, string[]> {
  const direct = new Map<string, Set<string>>();
  for (const s of specs) {
    const set = direct.get(s.subject) ?? new Set<string>();
    for (const d of s.dependsOn) set.add(d);
    direct.set(s.subject, set);
  }
  const out = new Map<string, string[]>();
  for (const subject of direct.keys()) {
    const seen = new Set<string>();
    const walk = (n: string): void => {
      for (const d of direct.get(n) ?? [])
        if (!seen.has(d) && d !== subject) {
          seen.add(d);
          walk(d);
        }
    };
    walk(subject);
    out.set(subject, [...seen]);
  }
  return out;
}
