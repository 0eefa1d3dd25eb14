/**
 * `status`: each configured service with, for hypervisor guests, where it runs, its state,
 * uptime and IPs (asked live, one query per hypervisor), the last backup, update and restore
 * test recorded in state, and the monitor's health: state, since when, uptime over 24 h, 7 and
 * 30 days and p95 response time (core/monitor/health.ts); monitoring targets and `host` too.
 */
import { describeError } from '../lib/errors';
import { namedServices } from './config/select';
import type { Logger } from '../lib/log';
import type { StateManager, VerifyStatus } from '../lib/state';
import type { AutopilotConfig } from './config/types';
import type { ClusterStatus, GuestStatus, ServiceConfig } from './plugins/contract';
import type { PluginRegistry } from './plugins/host';
import type { GuestProvider } from './plugins/guests';
import { unfinishedUpdate, type UnfinishedUpdate } from './update/unfinished';
import { subjectHealth, type SubjectHealth } from './monitor/health';

export interface LastBackup {
  at: string;
  ageSeconds: number;
  location: string;
  size: number;
  /** 'no': not verified */
  verified: VerifyStatus | 'no';
  /** what verification saw or why it failed */
  detail: string | null;
  /** the warnings the backup ended with (for example a hypervisor task that ended with warnings), or null */
  warning: string | null;
}

export interface ServiceStatus {
  service: string;
  type: string;
  /** the hypervisor plugin that runs it, for guests */
  hypervisor: string | null;
  guest: GuestStatus | null;
  /** why the live state could not be read */
  error: string | null;
  lastBackup: LastBackup | null;
  /** an update whose process died before it finished (the service may be half updated) */
  unfinishedUpdate: Pick<UnfinishedUpdate, 'runId' | 'startedAt' | 'step' | 'snapshot' | 'summary'> | null;
  /** what the monitor says (null: no checks, or never monitored) */
  health: SubjectHealth | null;
  lastUpdate: LastRun | null;
  lastRestoreTest: LastRun | null;
}

export interface LastRun {
  runId: number;
  at: string;
  status: string;
  /** an update's own outcome (rolled_back, …) or a restore test's */
  outcome: string | null;
}

export interface StatusReport {
  clusters: { hypervisor: string; status: ClusterStatus | null; error: string | null }[];
  services: ServiceStatus[];
  /** monitoring targets (not services) and `host`, with their health */
  targets: SubjectHealth[];
}

function lastRun(state: StateManager | null, kind: string, service: string): LastRun | null {
  const r = state?.lastRun(kind, service);
  if (!r) return null;
  const summary = r.summary as { status?: string } | null;
  return { runId: r.id, at: r.startedAt, status: r.status, outcome: summary?.status ?? null };
}

/** The newest backup of a service that did not fail verification (or, when all failed, the newest). */
function lastBackup(state: StateManager | null, service: string, now: number): LastBackup | null {
  if (!state) return null;
  const all = state.listArtifacts({ service });
  const a = all.find((x) => x.verifyStatus !== 'failed') ?? all[0];
  if (!a) return null;
  return {
    at: a.createdAt,
    ageSeconds: Math.max(0, Math.round((now - new Date(a.createdAt).getTime()) / 1000)),
    location: a.location,
    size: a.size,
    verified: a.verifyStatus ?? 'no',
    detail: a.verifyDetail,
    warning: a.warning,
  };
}

function unfinished(state: StateManager | null, service: string): ServiceStatus['unfinishedUpdate'] {
  const u = unfinishedUpdate(state, service);
  return u && { runId: u.runId, startedAt: u.startedAt, step: u.step, snapshot: u.snapshot, summary: u.summary };
}

export async function serviceStatus(
  deps: { config: AutopilotConfig; registry: PluginRegistry; state: StateManager | null; logger: Logger; signal: AbortSignal },
  names: string[],
): Promise<StatusReport> {
  const all = deps.config.services;
  const chosen = names.length ? namedServices(all, names) : all.filter((s) => s.enabled !== false);
  const now = Date.now();
  // hypervisor nodes are known from the checks the monitor made of them
  const resourceSubjects = [
    ...new Set((deps.state?.monitor.listChecks() ?? []).map((r) => r.subject).filter((x) => /^(node|hypervisor):/.test(x))),
  ];
  const subjects = [...chosen.map((s) => s.name), ...deps.config.monitoring.targets.map((t) => t.name), 'host', ...resourceSubjects];
  const health = subjectHealth(deps.state, subjects, new Date(now));
  const out: ServiceStatus[] = chosen.map((s) => ({
    service: s.name,
    type: s.type,
    hypervisor: deps.registry.guestProvider(s.type)?.name ?? null,
    guest: null,
    error: null,
    lastBackup: lastBackup(deps.state, s.name, now),
    unfinishedUpdate: unfinished(deps.state, s.name),
    health: health.get(s.name) ?? null,
    lastUpdate: lastRun(deps.state, 'update', s.name),
    lastRestoreTest: lastRun(deps.state, 'restore_test', s.name),
  }));
  const targetNames = names.length ? [] : [...deps.config.monitoring.targets.map((t) => t.name), 'host', ...resourceSubjects];
  const targets = targetNames.map((t) => health.get(t)).filter((h): h is SubjectHealth => Boolean(h));
  const clusters: StatusReport['clusters'] = [];
  const groups = new Map<GuestProvider, ServiceConfig[]>();
  for (const s of chosen) {
    const p = deps.registry.guestProvider(s.type);
    if (p) groups.set(p, [...(groups.get(p) ?? []), s]);
  }
  for (const [provider, svcs] of groups) {
    const op = { signal: deps.signal, logger: deps.logger.child(`plugin:${provider.name}`), dryRun: true };
    if (provider.can('clusterStatus')) {
      try {
        const status = await provider.call('clusterStatus', deps.signal, (h) =>
          (h.clusterStatus as NonNullable<typeof h.clusterStatus>)(op),
        );
        clusters.push({ hypervisor: provider.name, status, error: null });
      } catch (e) {
        clusters.push({ hypervisor: provider.name, status: null, error: describeError(e) });
      }
    }
    const refs = svcs.map((s) => provider.ref(s));
    try {
      const statuses = await provider.call('guestStatuses', deps.signal, (h) =>
        h.guestStatuses ? h.guestStatuses(refs, op, { ips: true }) : Promise.all(refs.map((r) => h.guestStatus(r, op))),
      );
      svcs.forEach((s, i) => {
        const row = out.find((o) => o.service === s.name) as ServiceStatus;
        row.guest = statuses[i] ?? null;
        if (statuses[i]?.state === 'missing') row.error = `guest ${refs[i].id} does not exist in the cluster (or the token may not see it)`;
        else if (statuses[i]?.state === 'unknown')
          row.error = `the state of guest ${refs[i].id} is not known${statuses[i]?.node ? ` (is ${statuses[i]?.node} offline?)` : ''}`;
      });
    } catch (e) {
      for (const s of svcs) (out.find((o) => o.service === s.name) as ServiceStatus).error = describeError(e);
    }
  }
  return { clusters, services: out, targets };
}
