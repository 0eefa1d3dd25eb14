/**
 * Hypervisor nodes as resource checks: one check per node (subject `node:<name>`), whose
 * detail gives its CPU, memory, root disk and every storage it sees. The plugin is asked
 * through its nodeResources (plugin API 1.6) once for all of them: the first node check of a
 * pass asks, the others share that answer (in flight, then for a few seconds), so a pass costs
 * one plugin call per hypervisor however many nodes and storages it has.
 *
 * The nodes are learnt when the probes are made (one call); a node that joins later is
 * watched from the next reload. When the plugin cannot answer then, one check stands for the
 * whole hypervisor (subject `hypervisor:<plugin>`) and fails until it answers.
 */
import { deadlineSignal } from '../../lib/async';
import { describeError } from '../../lib/errors';
import { formatBytes } from '../../lib/format';
import type { Logger } from '../../lib/log';
import type { AutopilotConfig, ResourcesConfig } from '../config/types';
import type { NodeResources } from '../plugins/contract';
import type { GuestProvider } from '../plugins/guests';
import type { PluginRegistry } from '../plugins/registry';
import { ProbeFailure, runProbe, type Outcome } from './probes/run';
import type { ResourceProbe } from './resources';
import type { Probe } from './types';

/** How long one answer serves every node check of a pass. */
export const NODE_ANSWER_TTL_MS = 5000;

/** One hypervisor's nodeResources answer, shared by its node checks. */
export class NodeSource {
  private last: { settledAt: number | null; answer: Promise<NodeResources[]> } | null = null;

  constructor(
    private readonly provider: GuestProvider,
    private readonly logger: Logger,
    private readonly ttlMs = NODE_ANSWER_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  get name(): string {
    return this.provider.name;
  }

  /** The answer in flight or younger than the TTL, else a new call (under its own time limit). */
  get(signal: AbortSignal, timeoutMs: number): Promise<NodeResources[]> {
    const l = this.last;
    if (l && (l.settledAt === null || this.now() - l.settledAt < this.ttlMs)) return l.answer;
    const d = deadlineSignal(timeoutMs, signal);
    const op = { signal: d.signal, logger: this.logger, dryRun: true };
    const entry: { settledAt: number | null; answer: Promise<NodeResources[]> } = { settledAt: null, answer: Promise.resolve([]) };
    entry.answer = this.provider
      .call('nodeResources', d.signal, (h) => (h.nodeResources as NonNullable<typeof h.nodeResources>)(op), this.logger)
      .finally(() => {
        d.clear();
        entry.settledAt = this.now();
      });
    entry.answer.catch(() => {}); // each caller sees the failure; none is left unhandled
    this.last = entry;
    return entry.answer;
  }
}

const share = (used: number | null, total: number | null): number | null => (used !== null && total ? (used / total) * 100 : null);
const percentText = (v: number): string => `${Math.round(v)} %`;

/** A node's figures judged against the resource thresholds: offline, or a disk at critical, fails. */
export function judgeNode(n: NodeResources, r: ResourcesConfig): Outcome {
  if (!n.online) return { ok: false, detail: 'offline' };
  if (n.error) return { ok: false, detail: `online, but it did not answer: ${n.error}` };
  const parts: string[] = [];
  const warnings: string[] = [];
  const critical: string[] = [];
  if (n.cpu !== null) parts.push(`CPU ${percentText(n.cpu * 100)}`);
  const mem = share(n.memUsed, n.memTotal);
  if (mem !== null) {
    parts.push(`memory ${percentText(mem)} (${formatBytes(n.memUsed)} of ${formatBytes(n.memTotal)})`);
    if (mem >= r.memory_warn_percent) warnings.push(`memory ${percentText(mem)} used`);
  }
  const disks: { what: string; used: number }[] = [];
  const root = share(n.rootUsed, n.rootTotal);
  if (root !== null) disks.push({ what: 'root', used: root });
  const storages: string[] = [];
  for (const s of n.storages) {
    if (!s.active) {
      storages.push(`${s.storage} inactive`);
      warnings.push(`storage ${s.storage} inactive`);
      continue;
    }
    const used = share(s.used, s.total);
    if (used === null) continue;
    storages.push(`${s.storage} ${percentText(used)}`);
    disks.push({ what: `storage ${s.storage}`, used });
  }
  if (root !== null) parts.push(`root ${percentText(root)} (${formatBytes(n.rootUsed)} of ${formatBytes(n.rootTotal)})`);
  if (storages.length) parts.push(`storages: ${storages.join(', ')}`);
  for (const d of disks) {
    if (d.used >= r.disk_critical_percent)
      critical.push(`${d.what} ${percentText(d.used)} used (critical at ${r.disk_critical_percent} %)`);
    else if (d.used >= r.disk_warn_percent) warnings.push(`${d.what} ${percentText(d.used)} used`);
  }
  const value = disks.length ? Math.round(Math.max(...disks.map((d) => d.used)) * 100) / 100 : null;
  const detail = parts.join('; ') || 'online';
  if (critical.length) return { ok: false, detail: `${critical.join('; ')}; ${detail}`, value };
  return { detail, value, warning: warnings.length ? warnings.join('; ') : null };
}

export function nodeProbe(source: NodeSource, node: string, r: ResourcesConfig): Probe {
  return (env) =>
    runProbe(env, async (signal) => {
      let all: NodeResources[];
      try {
        all = await source.get(signal, env.timeoutMs);
      } catch (e) {
        throw new ProbeFailure(`the ${source.name} plugin could not tell: ${describeError(e)}`);
      }
      const n = all.find((x) => x.node === node);
      if (!n) throw new ProbeFailure(`${node} is no longer among the nodes ${source.name} reports`);
      return judgeNode(n, r);
    });
}

/** The check that stands for a hypervisor whose nodes could not be learnt. */
function wholeProbe(source: NodeSource, r: ResourcesConfig): Probe {
  return (env) =>
    runProbe(env, async (signal) => {
      let all: NodeResources[];
      try {
        all = await source.get(signal, env.timeoutMs);
      } catch (e) {
        throw new ProbeFailure(`the ${source.name} plugin could not list its nodes: ${describeError(e)}`);
      }
      const bad = all.map((n) => ({ n, j: judgeNode(n, r) })).filter((x) => x.j.ok === false);
      const names = all.map((n) => n.node).join(', ');
      if (bad.length) throw new ProbeFailure(bad.map((x) => `${x.n.node}: ${x.j.detail}`).join('; '));
      return { detail: `nodes ${names} answer`, warning: 'each node gets its own check at the next reload' };
    });
}

/** Whether the config uses a hypervisor: its plugin has options there, or an enabled service is its guest. */
function inUse(config: AutopilotConfig, registry: PluginRegistry, p: GuestProvider): boolean {
  if (Object.hasOwn(config.plugins ?? {}, p.name)) return true;
  return config.services.some((s) => s.enabled !== false && registry.guestProvider(s.type) === p);
}

export async function nodeProbes(
  config: AutopilotConfig,
  registry: PluginRegistry,
  logger: Logger,
  signal: AbortSignal,
): Promise<ResourceProbe[]> {
  const r = config.monitoring.resources;
  const out: ResourceProbe[] = [];
  for (const p of registry.hypervisors()) {
    if (!p.can('nodeResources') || !inUse(config, registry, p)) continue;
    const source = new NodeSource(p, logger.child(`plugin:${p.name}`));
    try {
      const nodes = await source.get(signal, config.monitoring.timeout * 1000);
      for (const n of nodes) out.push({ subject: `node:${n.node}`, label: 'resources', type: 'node', probe: nodeProbe(source, n.node, r) });
    } catch (e) {
      logger.warn(
        `monitor: the ${p.name} plugin could not list its nodes (${describeError(e)}): one check stands for them all until the next reload`,
      );
      out.push({ subject: `hypervisor:${p.name}`, label: 'nodes', type: 'node', probe: wholeProbe(source, r) });
    }
  }
  return out;
}
