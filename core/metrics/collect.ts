/**
 * The metrics, in Prometheus' text format, made from state on every call (pull: nothing is
 * kept between scrapes): the monitor's checks, the last run of each job, the newest backup of
 * each service, free space of the backup root and destinations, notifications. Each table is
 * read with one query. A fresh prom-client Registry per call: never the global one, and no
 * process metrics unless asked (the daemon asks; the textfile has none, node_exporter has its own).
 */
import * as fs from 'node:fs/promises';
import type { Counter, Gauge, Registry } from 'prom-client';
import { mask } from '../../lib/mask';
import type { JobSummary, StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import { hostVersion } from '../paths';
import { watchedPaths } from '../monitor/watched';
import { type MetricDefs, METRIC_DEFS, PREFIX } from './defs';

export interface MetricsDeps {
  config: Pick<AutopilotConfig, 'backup' | 'monitoring'>;
  /** null: no state yet (only build info and free space) */
  state: StateManager | null;
}

export interface MetricsOptions {
  /** add the process metrics of this process (CPU, memory, event loop): the daemon's /metrics */
  processMetrics?: boolean;
  /** how long one file system may take to answer statfs (default 2 s: a hung network mount must not hang a scrape) */
  statfsTimeoutMs?: number;
}

export interface MetricsBody {
  contentType: string;
  body: string;
}

type PromClient = typeof import('prom-client');

// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when metrics are made, not at every start
const promClient = (): PromClient => require('prom-client') as PromClient;

const STATES = ['UP', 'DOWN', 'PENDING', 'MAINTENANCE', 'FLAPPING'] as const;
const JOB_STATUSES = ['success', 'failed', 'interrupted'] as const;

const seconds = (iso: string | null): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t / 1000;
};

type Metrics = { [K in keyof MetricDefs]: MetricDefs[K]['kind'] extends 'counter' ? Counter<string> : Gauge<string> };

function makeMetrics(client: PromClient, registry: Registry): Metrics {
  const out: Record<string, Gauge<string> | Counter<string>> = {};
  for (const [key, def] of Object.entries(METRIC_DEFS)) {
    const opts = { name: PREFIX + def.name, help: def.help, labelNames: [...def.labels], registers: [registry] };
    out[key] = def.kind === 'counter' ? new client.Counter(opts) : new client.Gauge(opts);
  }
  return out as Metrics;
}

function addChecks(m: Metrics, state: StateManager): void {
  for (const c of state.monitor.listChecks()) {
    const labels = { subject: c.subject, check: mask(c.label), type: c.type };
    if (c.state === 'UP') m.checkUp.set(labels, 1);
    else if (c.state === 'DOWN' || c.state === 'FLAPPING') m.checkUp.set(labels, 0);
    for (const s of STATES) m.checkState.set({ ...labels, state: s }, c.state === s ? 1 : 0);
    if (c.lastMs !== null) m.checkResponse.set(labels, c.lastMs / 1000);
    if (c.lastValue !== null && Number.isFinite(c.lastValue)) m.checkValue.set(labels, c.lastValue);
    const okAt = seconds(c.lastOkAt);
    if (okAt !== null) m.checkLastOk.set(labels, okAt);
  }
}

/** The monitor's last pass (kept in kv, not as a run: a pass a minute would fill the runs table). */
function monitorJob(state: StateManager): JobSummary | null {
  const p = state.get<{ startedAt: string; endedAt?: string; durationMs: number } | null>('monitor.lastPass', null);
  if (!p) return null;
  const ended = p.endedAt ?? new Date(Date.parse(p.startedAt) + p.durationMs).toISOString();
  return { kind: 'monitor', lastStatus: 'success', lastStartedAt: p.startedAt, lastEndedAt: ended, lastSuccessAt: ended, running: 0 };
}

function addJobs(m: Metrics, state: StateManager): void {
  const jobs = state.summary.jobs();
  const mon = jobs.some((j) => j.kind === 'monitor') ? null : monitorJob(state);
  for (const j of mon ? [...jobs, mon] : jobs) {
    const kind = { kind: j.kind };
    const success = seconds(j.lastSuccessAt);
    if (success !== null) m.jobLastSuccess.set(kind, success);
    const started = seconds(j.lastStartedAt);
    const ended = seconds(j.lastEndedAt);
    if (ended !== null) m.jobLastRun.set(kind, ended);
    if (started !== null && ended !== null) m.jobLastDuration.set(kind, Math.max(0, ended - started));
    for (const s of JOB_STATUSES) m.jobLastStatus.set({ kind: j.kind, status: s }, j.lastStatus === s ? 1 : 0);
    m.jobRunning.set(kind, j.running);
  }
}

function addBackups(m: Metrics, state: StateManager): void {
  for (const b of state.summary.newestBackups()) {
    const labels = { service: b.service };
    m.backupSize.set(labels, b.size);
    const at = seconds(b.createdAt);
    if (at !== null) m.backupTime.set(labels, at);
  }
}

function addNotifications(m: Metrics, state: StateManager): void {
  for (const n of state.summary.notificationCounts()) m.notifications.inc({ channel: n.channel, status: n.status }, n.count);
}

export { watchedPaths };

async function statfsWithin(dir: string, ms: number): Promise<{ size: number; avail: number; used: number } | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    const s = await Promise.race([fs.statfs(dir), late]);
    if (!s || !s.blocks) return null;
    return { size: s.blocks * s.bsize, avail: s.bavail * s.bsize, used: (s.blocks - s.bfree) * s.bsize };
  } catch {
    return null; // not there (yet), or not readable: no series rather than a wrong one
  } finally {
    clearTimeout(timer);
  }
}

async function addFilesystems(m: Metrics, deps: MetricsDeps, timeoutMs: number): Promise<void> {
  const paths = watchedPaths(deps.config);
  const stats = await Promise.all(paths.map((p) => statfsWithin(p, timeoutMs)));
  paths.forEach((p, i) => {
    const s = stats[i];
    if (!s) return;
    // as df counts it: used of what a user can have (root's reserved blocks left out)
    const ratio = s.used + s.avail > 0 ? s.used / (s.used + s.avail) : 0;
    m.fsUsedRatio.set({ path: p }, ratio);
    m.fsAvail.set({ path: p }, s.avail);
    m.fsSize.set({ path: p }, s.size);
  });
}

let processRegistry: Registry | null = null;

/** One registry per process for the process metrics: their collectors live as long as the process. */
function processMetricsRegistry(client: PromClient): Registry {
  if (!processRegistry) {
    processRegistry = new client.Registry();
    // the usual names (process_cpu_seconds_total, nodejs_heap_size_used_bytes...), which dashboards know
    client.collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Every metric, made now from state and the file systems. Never uses prom-client's global registry. */
export async function collectMetrics(deps: MetricsDeps, opts: MetricsOptions = {}): Promise<MetricsBody> {
  const client = promClient();
  const registry = new client.Registry();
  const m = makeMetrics(client, registry);
  m.buildInfo.set({ version: hostVersion() }, 1);
  if (deps.state) {
    addChecks(m, deps.state);
    addJobs(m, deps.state);
    addBackups(m, deps.state);
    addNotifications(m, deps.state);
  }
  await addFilesystems(m, deps, opts.statfsTimeoutMs ?? 2000);
  const out = opts.processMetrics ? client.Registry.merge([registry, processMetricsRegistry(client)]) : registry;
  return { contentType: registry.contentType, body: await out.metrics() };
}
