/**
 * nodeResources (plugin API 1.6): every node of the cluster from GET /nodes, and for each
 * online one, at once, GET /nodes/{node}/status (cpu, memory, rootfs) and
 * GET /nodes/{node}/storage (used, total, active of each storage it sees). A node that is
 * listed online but does not answer keeps its place with `error` (a proxied request to a dead
 * node answers 595 after up to 30 s: api notes §14).
 */
import type { NodeResources, NodeStorage } from '../../../core/plugins/contract';
import type { ProxmoxApi } from './api';

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});
const flag = (v: unknown): boolean => v === true || v === 1 || v === '1';

function storagesOf(items: Record<string, unknown>[]): NodeStorage[] {
  return items
    .filter((s) => s.enabled === undefined || flag(s.enabled))
    .map((s) => ({ storage: String(s.storage), used: num(s.used) ?? 0, total: num(s.total) ?? 0, active: flag(s.active) }))
    .sort((a, b) => a.storage.localeCompare(b.storage));
}

async function oneNode(api: ProxmoxApi, node: string, signal: AbortSignal): Promise<NodeResources> {
  const [status, storages] = await Promise.all([api.nodeStatus(node, { signal }), api.nodeStorages(node, { signal })]);
  const mem = obj(status.memory);
  const root = obj(status.rootfs);
  return {
    node,
    online: true,
    cpu: num(status.cpu),
    memUsed: num(mem.used),
    memTotal: num(mem.total),
    rootUsed: num(root.used),
    rootTotal: num(root.total),
    storages: storagesOf(storages),
  };
}

export async function nodeResources(api: ProxmoxApi, signal: AbortSignal): Promise<NodeResources[]> {
  const nodes = await api.nodes({ signal });
  const unknown = (node: string, online: boolean, error?: string): NodeResources => ({
    node,
    online,
    cpu: null,
    memUsed: null,
    memTotal: null,
    rootUsed: null,
    rootTotal: null,
    storages: [],
    ...(error ? { error } : {}),
  });
  const out = await Promise.all(
    nodes.map(async (n) => {
      if (n.status !== 'online') return unknown(n.node, false);
      try {
        return await oneNode(api, n.node, signal);
      } catch (e) {
        if (signal.aborted) throw e;
        return unknown(n.node, true, (e as Error).message);
      }
    }),
  );
  return out.sort((a, b) => a.node.localeCompare(b.node));
}
