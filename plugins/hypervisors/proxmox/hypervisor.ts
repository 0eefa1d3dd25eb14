/**
 * The instance of the proxmox plugin: the hypervisor contract over the typed API (./api.ts),
 * which speaks to the cluster through the client (./client.ts). Each guest is looked up in
 * the cluster before every operation, since guests move between nodes.
 */
import type {
  ExecResult,
  GuestBackupInfo,
  GuestBackupPlan,
  GuestBackupResult,
  GuestBackupTarget,
  GuestRef,
  GuestStatus,
  HypervisorPlugin,
  NodeResources,
  OperationContext,
  PluginContext,
  SnapshotInfo,
} from '../../../core/plugins/contract';
import * as path from 'node:path';
import type { GuestLocation, ProxmoxApi, StorageBackup } from './api';
import type { PveError as PveErrorType } from './client';
import { execInGuest, type GuestExecOptions } from './guest-exec';
import { resolveTarget } from './target';

// the client (node:https, node:tls) is loaded when the plugin is first used, not at every start
const client = (): typeof import('./client') => require('./client') as typeof import('./client'); // eslint-disable-line @typescript-eslint/no-require-imports -- lazy: start-up cost
const apiModule = (): typeof import('./api') => require('./api') as typeof import('./api'); // eslint-disable-line @typescript-eslint/no-require-imports -- lazy: start-up cost
const nodesModule = (): typeof import('./nodes') => require('./nodes') as typeof import('./nodes'); // eslint-disable-line @typescript-eslint/no-require-imports -- lazy: start-up cost
const pveError = (message: string, hint?: string): PveErrorType => new (client().PveError)(message, null, hint);

export interface ProxmoxOptions {
  host?: string;
  port: number;
  token_id?: string;
  token_secret?: string;
  username?: string;
  password?: string;
  fingerprint?: string;
  ca_file?: string;
  insecure: boolean;
  timeout: number;
  retries: number;
  task_poll_max: number;
  breaker_threshold: number;
  breaker_cooldown: number;
  guest_exec: GuestExecOptions;
}

const mmss = (ms: number): string => `${Math.floor(ms / 60000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}s`;

function statusOf(vmid: number, loc: GuestLocation | undefined): GuestStatus {
  if (!loc) return { id: String(vmid), state: 'missing' };
  const { cpu, mem, maxmem, disk, maxdisk, hastate } = loc.resource;
  return {
    id: String(vmid),
    state: loc.status === 'running' ? 'running' : loc.status === 'stopped' ? 'stopped' : loc.status === 'paused' ? 'paused' : 'unknown',
    node: loc.node,
    name: loc.name,
    uptimeSeconds: loc.uptime,
    lock: loc.lock || undefined,
    details: { kind: loc.kind, template: loc.template, cpu, mem, maxmem, disk, maxdisk, hastate },
  };
}

function info(b: StorageBackup): GuestBackupInfo {
  return {
    id: b.volid,
    storage: b.storage,
    time: new Date(b.ctime * 1000).toISOString(),
    size: b.size,
    format: b.format,
    protected: b.protected,
    notes: b.notes,
    verification: b.verification,
    // a file storage's archive: <storage path>/dump/<file>
    file: b.format.startsWith('pbs-') ? undefined : b.volid.replace(/^[^:]+:backup\//, ''),
  };
}

export class ProxmoxHypervisor implements HypervisorPlugin {
  private connection: ProxmoxApi | null = null;

  constructor(
    private readonly ctx: PluginContext,
    private readonly o: ProxmoxOptions,
  ) {
    if (o.host && o.insecure && !o.fingerprint) {
      ctx.logger.warn(
        `TLS verification of ${o.host} is turned off (plugins.proxmox.insecure): anyone on the network path can read the API token; set fingerprint instead (pvenode cert info)`,
      );
    }
  }

  /** The API, connected on first use. */
  api(): ProxmoxApi {
    const o = this.o;
    if (!o.host)
      throw pveError(
        'the Proxmox connection is not configured',
        'set plugins.proxmox.host, and token_id with token_secret (or username with password)',
      );
    if (!o.token_id && !o.username) {
      throw pveError(
        'no Proxmox credentials are configured',
        'set plugins.proxmox.token_id and token_secret (recommended), or username and password',
      );
    }
    this.connection ??= new (apiModule().ProxmoxApi)(
      new (client().PveClient)({
        host: o.host.replace(/^\[|\]$/g, ''),
        port: o.port,
        tokenId: o.token_id,
        tokenSecret: o.token_secret,
        username: o.username,
        password: o.password,
        fingerprint: o.fingerprint,
        caFile: o.ca_file,
        insecure: o.insecure,
        timeoutMs: o.timeout * 1000,
        retries: o.retries,
        breakerThreshold: o.breaker_threshold,
        breakerCooldownMs: o.breaker_cooldown * 1000,
        logger: this.ctx.logger,
      }),
      this.ctx.logger,
    );
    return this.connection;
  }

  dispose(): void {
    this.connection?.client.close();
    this.connection = null;
  }

  private vmid(g: GuestRef): number {
    const v = apiModule().toInt(g.config?.vmid ?? g.id);
    if (!Number.isInteger(v) || v < 100) {
      throw pveError(
        `service '${g.service}' has no valid vmid (got ${JSON.stringify(g.config?.vmid ?? g.id)})`,
        'set vmid: to the guest id shown in the Proxmox UI',
      );
    }
    return v;
  }

  /** The guest in the cluster now, checked to be of the service's type. */
  private async locate(g: GuestRef, op: OperationContext): Promise<{ vmid: number; loc: GuestLocation }> {
    const vmid = this.vmid(g);
    const loc = await this.api().guest(vmid, { signal: op.signal });
    const want = g.type === 'vm' ? 'qemu' : g.type === 'lxc' ? 'lxc' : loc.kind;
    if (want !== loc.kind) {
      throw pveError(
        `service '${g.service}' is of type ${g.type}, but guest ${loc.vmid} is a ${loc.kind === 'lxc' ? 'container (lxc)' : 'VM (vm)'}`,
        'fix the type or the vmid of the service',
      );
    }
    return { vmid, loc };
  }

  /** How a task is waited for: the operation's signal and deadline, progress on a terminal. */
  private wait(op: OperationContext) {
    return {
      signal: op.signal,
      deadline: op.deadline,
      pollMaxMs: this.o.task_poll_max * 1000,
      onPoll: (ms: number, t: { type: string; id: string; node: string }) =>
        op.progress?.(`${t.type} ${t.id} on ${t.node}: running for ${mmss(ms)}`),
    };
  }

  describeGuest(g: GuestRef): string {
    return `${g.type === 'vm' ? 'VM' : 'CT'} ${g.id}`;
  }

  manualRollback(g: GuestRef, snap: SnapshotInfo): string {
    const tool = g.type === 'vm' ? 'qm' : 'pct';
    return `on the node of ${this.describeGuest(g)}: ${tool} rollback ${g.id} ${snap.id} && ${tool} start ${g.id}`;
  }

  resolveBackupTarget(g: GuestRef, backup: Record<string, unknown>): GuestBackupTarget {
    return resolveTarget(g, backup);
  }

  async guestStatus(guest: GuestRef, op: OperationContext): Promise<GuestStatus> {
    const [s] = await this.guestStatuses([guest], op);
    return s;
  }

  async guestStatuses(guests: GuestRef[], op: OperationContext, opts: { ips?: boolean } = {}): Promise<GuestStatus[]> {
    const a = this.api();
    const where = await a.locate({ signal: op.signal });
    const out: GuestStatus[] = [];
    for (const g of guests) {
      const vmid = this.vmid(g);
      const s = statusOf(vmid, where.get(vmid));
      if (opts.ips !== false && (s.state === 'running' || s.state === 'stopped')) {
        try {
          s.ips = await a.ips(vmid, { signal: op.signal });
        } catch (e) {
          op.logger.debug(`IPs of ${vmid}: ${(e as Error).message}`);
        }
      }
      out.push(s);
    }
    return out;
  }

  async clusterStatus(op: OperationContext) {
    const c = await this.api().cluster({ signal: op.signal });
    return { name: c.name, quorate: c.quorate, nodes: c.nodes.map((n) => ({ node: n.node, online: n.online })) };
  }

  /** Every node's CPU, memory, root file system and storages (plugin API 1.6): ./nodes.ts. */
  async nodeResources(op: OperationContext): Promise<NodeResources[]> {
    return nodesModule().nodeResources(this.api(), op.signal);
  }

  async planBackup(guest: GuestRef, target: GuestBackupTarget, op: OperationContext): Promise<GuestBackupPlan> {
    const { vmid, loc } = await this.locate(guest, op);
    const notes: string[] = [];
    const mode = loc.status === 'stopped' ? 'stop' : target.mode;
    if (mode !== target.mode) notes.push(`the guest is stopped: vzdump uses stop mode`);
    if (loc.lock) notes.push(`the guest is locked (${loc.lock}) now`);
    if (target.kind === 'pbs') notes.push('PBS storage: compression and pruning are PBS’s');
    const compress = target.kind === 'pbs' ? 'pbs' : target.compress;
    return {
      guest: String(vmid),
      node: loc.node,
      state: statusOf(vmid, loc).state,
      storage: target.storage,
      mode,
      compress,
      notes,
      method: 'vzdump',
    };
  }

  async backupGuest(guest: GuestRef, target: GuestBackupTarget, op: OperationContext): Promise<GuestBackupResult> {
    const { vmid, loc } = await this.locate(guest, op);
    const pbs = target.kind === 'pbs';
    const options = {
      storage: target.storage,
      // a stopped guest is backed up in stop mode (what vzdump does anyway, and what planBackup shows)
      mode: loc.status === 'stopped' ? 'stop' : target.mode,
      compress: pbs || target.compress === 'none' ? '0' : target.compress,
      notesTemplate: target.notesTemplate,
      protected: target.protected,
    };
    const r = await this.api().vzdump(vmid, options, this.wait(op), loc);
    const b: StorageBackup = r.backup ?? {
      volid: r.volid,
      storage: target.storage,
      vmid,
      ctime: Math.floor(Date.now() / 1000),
      size: r.size,
      format: pbs ? 'pbs-unknown' : '',
      protected: Boolean(target.protected),
      verification: null,
    };
    const modeLine = r.outcome.log.find((l) => /backup mode: /.test(l));
    const listed = info(b);
    return {
      ...listed,
      node: r.node,
      mode: modeLine ? modeLine.replace(/.*backup mode: /, '').trim() : target.mode,
      warnings: r.outcome.warnings,
      task: r.upid,
      method: 'vzdump',
      // a file storage seen from this host: <path>/dump/<file>
      localFile: target.path && listed.file ? path.join(target.path, 'dump', path.basename(listed.file)) : undefined,
      verificationNote: pbs ? 'on PBS; PBS verifies it in its verify jobs' : undefined,
    };
  }

  async listSnapshots(guest: GuestRef, op: OperationContext): Promise<SnapshotInfo[]> {
    const list = await this.api().snapshots(this.vmid(guest), { signal: op.signal });
    return list.map((x) => ({ id: x.name, time: new Date(x.snaptime * 1000).toISOString(), description: x.description }));
  }

  async createSnapshot(guest: GuestRef, name: string, description: string, op: OperationContext): Promise<SnapshotInfo> {
    const a = this.api();
    const vmid = this.vmid(guest);
    const running = (await a.guest(vmid, { signal: op.signal })).status === 'running';
    await a.snapshot(vmid, name, description, this.wait(op));
    return { id: name, time: new Date().toISOString(), description, data: { running } };
  }

  async rollbackSnapshot(guest: GuestRef, snap: SnapshotInfo, op: OperationContext): Promise<void> {
    const a = this.api();
    const vmid = this.vmid(guest);
    // PVE stops a running guest to roll it back; start it again if it ran when the snapshot was taken
    const wasRunning =
      typeof snap.data?.running === 'boolean' ? snap.data.running : (await a.guest(vmid, { signal: op.signal })).status === 'running';
    await a.rollback(vmid, snap.id, wasRunning, this.wait(op));
  }

  async deleteSnapshot(guest: GuestRef, snap: SnapshotInfo, op: OperationContext): Promise<void> {
    await this.api().deleteSnapshot(this.vmid(guest), snap.id, this.wait(op));
  }

  async precheckGuest(guest: GuestRef, op: OperationContext & { minFreeBytes?: number }): Promise<string[]> {
    const a = this.api();
    const vmid = this.vmid(guest);
    const loc = await a.guest(vmid, { signal: op.signal });
    const problems: string[] = [];
    if (loc.lock) problems.push(`${loc.kind === 'lxc' ? 'CT' : 'VM'} ${vmid} is locked (${loc.lock})`);
    if (loc.template) problems.push(`${vmid} is a template`);
    const need = op.minFreeBytes ?? 0;
    if (need <= 0) return problems;
    const cfg = await a.config(vmid, { signal: op.signal });
    const first = [cfg.rootfs, cfg.scsi0, cfg.virtio0, cfg.sata0, cfg.ide0].find((d) => typeof d === 'string');
    const disk = typeof first === 'string' ? first : '';
    const storage = /^([a-zA-Z][a-zA-Z0-9._-]*):/.exec(disk)?.[1];
    if (!storage) return problems;
    const at = `/nodes/${encodeURIComponent(loc.node)}/storage/${encodeURIComponent(storage)}/status`;
    const st = await a.client.get<{ avail?: number }>(at, undefined, { signal: op.signal });
    if (typeof st?.avail === 'number' && st.avail < need) {
      const mib = (n: number): number => Math.round(n / 1048576);
      problems.push(
        `storage ${storage} on ${loc.node} has ${mib(st.avail)} MiB free, the snapshot needs ${mib(need)} MiB (update.min_free_mb)`,
      );
    }
    return problems;
  }

  async execInGuest(guest: GuestRef, argv: string[], op: OperationContext & { timeoutMs?: number }): Promise<ExecResult> {
    const a = this.api();
    const vmid = this.vmid(guest);
    let loc: GuestLocation;
    try {
      loc = await a.guest(vmid, { signal: op.signal });
    } catch (e) {
      // the guest could not even be looked up: nothing was started in it
      throw Object.assign(e as Error, { changed: false });
    }
    return execInGuest(this.ctx, a, this.o.guest_exec, { vmid, label: this.describeGuest(guest), loc }, argv, op);
  }

  async listBackups(guest: GuestRef, storage: string, op: OperationContext): Promise<GuestBackupInfo[]> {
    const a = this.api();
    const vmid = this.vmid(guest);
    const loc = await a.guest(vmid, { signal: op.signal });
    return (await a.storageBackups(loc.node, storage, vmid, { signal: op.signal })).map(info);
  }

  async deleteBackup(guest: GuestRef, backup: { id: string; storage: string }, op: OperationContext): Promise<void> {
    const a = this.api();
    // any online node can delete from a shared or PBS storage; the guest's node for a local one
    const loc = await a.guest(this.vmid(guest), { signal: op.signal });
    await a.deleteVolume(loc.node, backup.storage, backup.id, this.wait(op));
  }
}
