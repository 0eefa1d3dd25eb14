/**
 * Proxmox VE operations over PveClient: cluster awareness, tasks (UPIDs), guests, snapshots,
 * vzdump backups, storage content, restores. Every operation that names a guest first looks
 * up the node it runs on now in /cluster/resources (the `node` of the config is never trusted).
 * The quirks handled here are those of ../shared/pve-api-notes.md (sections 4 and 5).
 */
import type { PluginLogger } from '../../../core/plugins/contract';
import { PveClient, PveError, sleep, type RequestOptions } from './client';

export type GuestKind = 'lxc' | 'qemu';

export interface Upid {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
}

const UPID_RE =
  /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

export function parseUpid(upid: string): Upid | null {
  const m = UPID_RE.exec(upid);
  if (!m) return null;
  return {
    upid,
    node: m[1],
    pid: parseInt(m[3], 16),
    pstart: parseInt(m[4], 16),
    starttime: parseInt(m[5], 16),
    type: m[6],
    id: m[7],
    user: m[8],
  };
}

/** exitstatus `OK` and `WARNINGS: n` are success; anything else (an error text, `unexpected status`) is failure. */
export function taskSucceeded(exitstatus: string | undefined): boolean {
  return exitstatus === 'OK' || /^WARNINGS: \d+$/.test(exitstatus ?? '');
}

/** A number PVE may send as a string (vmid, nextid). */
export function toInt(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
  return n;
}

export interface TaskOutcome {
  upid: string;
  node: string;
  exitstatus: string;
  ok: boolean;
  /** `WARN:` lines of the log */
  warnings: string[];
  /** `ERROR:` lines (and the final TASK ERROR line) */
  errors: string[];
  log: string[];
  durationMs: number;
}

export interface WaitOptions extends RequestOptions {
  /** epoch ms after which the task is stopped and the wait fails */
  deadline?: number;
  /** the longest pause between two status polls (ms) */
  pollMaxMs?: number;
  /** told after each poll of a task that still runs */
  onPoll?(elapsedMs: number, task: Upid): void;
}

/** A failed task: the message carries the task's own ERROR lines. */
export class TaskError extends PveError {
  constructor(
    message: string,
    readonly outcome: TaskOutcome,
  ) {
    super(message, null);
    this.name = 'TaskError';
  }
}

export interface ClusterResource {
  id: string;
  type: string;
  node?: string;
  vmid?: number | string;
  status?: string;
  name?: string;
  uptime?: number;
  lock?: string;
  template?: number;
  storage?: string;
  plugintype?: string;
  maxcpu?: number;
  cpu?: number;
  maxmem?: number;
  mem?: number;
  maxdisk?: number;
  disk?: number;
  tags?: string;
  hastate?: string;
}

export interface GuestLocation {
  vmid: number;
  kind: GuestKind;
  node: string;
  status: string;
  name?: string;
  uptime?: number;
  lock?: string;
  template: boolean;
  resource: ClusterResource;
}

export interface NodeInfo {
  node: string;
  online: boolean;
  local?: boolean;
}

export interface ClusterInfo {
  /** null for a single node without a cluster */
  name: string | null;
  quorate: boolean;
  nodes: NodeInfo[];
}

export interface StorageBackup {
  volid: string;
  storage: string;
  vmid: number;
  ctime: number;
  size: number;
  format: string;
  subtype?: string;
  notes?: string;
  protected: boolean;
  verification: 'ok' | 'failed' | null;
}

export interface VzdumpOptions {
  storage: string;
  mode: string;
  /** '0' for none */
  compress: string;
  notesTemplate?: string;
  protected?: boolean;
}

export interface VzdumpResult {
  upid: string;
  node: string;
  volid: string;
  /** bytes, from the storage listing (or the log's `archive file size` when the listing lacks it) */
  size: number;
  backup: StorageBackup | null;
  outcome: TaskOutcome;
}

/** Snapshot names PVE accepts: a letter, then letters, digits, '-' or '_' (2-40 in all), not reserved. */
export function checkSnapshotName(name: string, kind: GuestKind): void {
  if (!/^[a-z][a-z0-9_-]+$/i.test(name) || name.length > 40) {
    throw new PveError(
      `'${name}' is not a valid snapshot name: it must start with a letter and have 2 to 40 letters, digits, '-' or '_'`,
      400,
    );
  }
  const reserved = ['current', ...(kind === 'lxc' ? ['vzdump'] : ['pending'])];
  if (reserved.includes(name.toLowerCase())) throw new PveError(`'${name}' is a reserved snapshot name`, 400);
}

const SIZE_UNITS: Record<string, number> = { KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

export class ProxmoxApi {
  constructor(
    readonly client: PveClient,
    private readonly logger: PluginLogger,
  ) {}

  // ---- cluster ----------------------------------------------------------------------------

  async resources(type: 'vm' | 'storage' | 'node' | undefined, ro?: RequestOptions): Promise<ClusterResource[]> {
    return (await this.client.get<ClusterResource[]>('/cluster/resources', type ? { type } : undefined, ro)) ?? [];
  }

  /** Where each guest runs now; a guest missing from the result does not exist (or the token cannot see it). */
  async locate(ro?: RequestOptions): Promise<Map<number, GuestLocation>> {
    const out = new Map<number, GuestLocation>();
    for (const r of await this.resources('vm', ro)) {
      const vmid = toInt(r.vmid);
      if (!Number.isInteger(vmid) || !r.node || (r.type !== 'lxc' && r.type !== 'qemu')) continue;
      out.set(vmid, {
        vmid,
        kind: r.type,
        node: r.node,
        status: r.status ?? 'unknown',
        name: r.name,
        uptime: r.uptime,
        lock: r.lock,
        template: toInt(r.template) === 1,
        resource: r,
      });
    }
    return out;
  }

  async guest(vmid: number, ro?: RequestOptions): Promise<GuestLocation> {
    const g = (await this.locate(ro)).get(vmid);
    if (!g)
      throw new PveError(
        `guest ${vmid} does not exist in the cluster (or the API token may not see it: it needs VM.Audit on /vms/${vmid})`,
        404,
        'check the vmid of the service',
      );
    return g;
  }

  async cluster(ro?: RequestOptions): Promise<ClusterInfo> {
    const items = (await this.client.get<Record<string, unknown>[]>('/cluster/status', undefined, ro)) ?? [];
    const c = items.find((i) => i.type === 'cluster');
    const nodes = items
      .filter((i) => i.type === 'node')
      .map((n) => ({ node: String(n.name), online: toInt(n.online) === 1, local: toInt(n.local) === 1 }));
    // a single node without a cluster has no cluster entry: it is its own quorum
    return { name: c ? String(c.name) : null, quorate: c ? toInt(c.quorate) === 1 : nodes.length > 0, nodes };
  }

  async nextId(ro?: RequestOptions): Promise<number> {
    const v = toInt(await this.client.get<unknown>('/cluster/nextid', undefined, ro));
    if (!Number.isInteger(v)) throw new PveError('Proxmox answered /cluster/nextid with no number', null);
    return v;
  }

  async nodeStatus(node: string, ro?: RequestOptions): Promise<Record<string, unknown>> {
    return this.client.get<Record<string, unknown>>(`/nodes/${encodeURIComponent(node)}/status`, undefined, ro);
  }

  /** GET /nodes: every node of the cluster with its status (online, offline, unknown). */
  async nodes(ro?: RequestOptions): Promise<{ node: string; status: string }[]> {
    const items = (await this.client.get<Record<string, unknown>[]>('/nodes', undefined, ro)) ?? [];
    return items.map((n) => ({ node: String(n.node), status: typeof n.status === 'string' ? n.status : 'unknown' }));
  }

  /** GET /nodes/{node}/storage: the storages the node sees, with their sizes (bytes) when it can reach them. */
  async nodeStorages(node: string, ro?: RequestOptions): Promise<Record<string, unknown>[]> {
    return (await this.client.get<Record<string, unknown>[]>(`/nodes/${encodeURIComponent(node)}/storage`, undefined, ro)) ?? [];
  }

  // ---- tasks -------------------------------------------------------------------------------

  /** The whole task log, paged (the API's default is only 50 lines). */
  async taskLog(upid: string, ro?: RequestOptions): Promise<string[]> {
    const u = parseUpid(upid);
    if (!u) throw new PveError(`not a task id: ${upid}`, null);
    const lines: string[] = [];
    const limit = 1000;
    for (let start = 0; ;) {
      const res = await this.client.get<{ n: number; t: string }[]>(
        `/nodes/${u.node}/tasks/${encodeURIComponent(upid)}/log`,
        { start, limit },
        ro,
      );
      const page = res ?? [];
      for (const l of page) lines.push(l.t);
      start += page.length;
      if (page.length < limit) break;
    }
    // the API's way of saying the log is empty
    if (lines.length === 1 && lines[0] === 'no content') return [];
    return lines;
  }

  /**
   * Waits for a task on the node its UPID names, polling with a backoff proportional to the
   * time it has run (so a short task is seen ending quickly, a long one costs few requests).
   * A timeout or a cancel stops the task.
   */
  async waitTask(upid: string, wo: WaitOptions = {}): Promise<TaskOutcome> {
    const u = parseUpid(upid);
    if (!u) throw new PveError(`Proxmox returned no task id but ${JSON.stringify(upid)}`, null);
    const started = Date.now();
    const path = `/nodes/${u.node}/tasks/${encodeURIComponent(upid)}/status`;
    const pollMax = wo.pollMaxMs ?? 5000;
    let missing = 0;
    try {
      for (;;) {
        if (wo.deadline && Date.now() > wo.deadline)
          throw Object.assign(new PveError(`task ${u.type} ${u.id} did not finish in time`, null), { code: 'TASK_TIMEOUT' });
        let st: { status: string; exitstatus?: string };
        try {
          st = await this.client.get<{ status: string; exitstatus?: string }>(path, undefined, wo);
        } catch (e) {
          // a task may not be visible for a moment after it was created (bpg does the same)
          if (e instanceof PveError && e.status === 400 && missing++ < 5) {
            await sleep(200, wo.signal);
            continue;
          }
          throw e;
        }
        if (st.status === 'stopped') {
          const log = await this.taskLog(upid, wo);
          const exitstatus = st.exitstatus ?? 'unexpected status';
          const ok = taskSucceeded(exitstatus);
          const warnings = log.filter((l) => /^WARN: /.test(l)).map((l) => l.slice(6));
          // 'WARNINGS: n' with no WARN: line we recognise is still a task that ended with warnings
          if (ok && exitstatus !== 'OK' && !warnings.length)
            warnings.push(`the task ended with ${exitstatus} (see the task log of ${upid})`);
          return {
            upid,
            node: u.node,
            exitstatus,
            ok,
            warnings,
            errors: log.filter((l) => /^(ERROR: |TASK ERROR: )/.test(l) || /(^|\s)ERROR: /.test(l)),
            log,
            durationMs: Date.now() - started,
          };
        }
        const elapsed = Date.now() - started;
        wo.onPoll?.(elapsed, u);
        let pause = Math.min(pollMax, Math.max(200, elapsed * 0.08));
        if (wo.deadline) pause = Math.max(0, Math.min(pause, wo.deadline - Date.now()));
        await sleep(pause, wo.signal);
      }
    } catch (e) {
      if (wo.signal?.aborted || (e as { code?: string }).code === 'TASK_TIMEOUT') {
        // stop the task: PVE ends it with "received interrupt"
        try {
          await this.client.delete(`/nodes/${u.node}/tasks/${encodeURIComponent(upid)}`, undefined, { timeoutMs: 10_000 });
          this.logger.warn(`stopped task ${upid}`);
        } catch (stopErr) {
          this.logger.warn(`could not stop task ${upid}: ${(stopErr as Error).message}`);
        }
      }
      throw e;
    }
  }

  /** Waits and throws a TaskError with the task's ERROR lines when it failed. */
  async runTask(upid: unknown, what: string, wo: WaitOptions = {}): Promise<TaskOutcome> {
    if (typeof upid !== 'string' || !upid.startsWith('UPID:'))
      throw new PveError(`${what}: Proxmox started no task (it answered ${JSON.stringify(upid)})`, null);
    const out = await this.waitTask(upid, wo);
    if (!out.ok) {
      const lines = out.errors.filter((l) => !/^TASK ERROR: /.test(l));
      const detail = lines.length ? `: ${lines.join(' | ')}` : '';
      throw new TaskError(`${what} failed (${out.exitstatus})${detail}`, out);
    }
    if (out.warnings.length) for (const w of out.warnings) this.logger.warn(`${what}: ${w}`);
    return out;
  }

  // ---- guests ------------------------------------------------------------------------------

  private guestPath(g: GuestLocation): string {
    return `/nodes/${encodeURIComponent(g.node)}/${g.kind}/${g.vmid}`;
  }

  async status(vmid: number, ro?: RequestOptions): Promise<Record<string, unknown> & { location: GuestLocation }> {
    const g = await this.guest(vmid, ro);
    const cur = await this.client.get<Record<string, unknown>>(`${this.guestPath(g)}/status/current`, undefined, ro);
    return { ...cur, location: g };
  }

  async config(vmid: number, ro?: RequestOptions): Promise<Record<string, unknown>> {
    const g = await this.guest(vmid, ro);
    return this.client.get<Record<string, unknown>>(`${this.guestPath(g)}/config`, undefined, ro);
  }

  /** start | stop | shutdown | reboot; PVE's refusal ("CT 100 already running") comes back as an error. */
  async power(
    vmid: number,
    action: 'start' | 'stop' | 'shutdown' | 'reboot',
    wo: WaitOptions & { timeoutSeconds?: number; forceStop?: boolean } = {},
  ): Promise<TaskOutcome> {
    const g = await this.guest(vmid, wo);
    const params: Record<string, unknown> = {};
    if (action === 'shutdown') {
      if (wo.timeoutSeconds !== undefined) params.timeout = wo.timeoutSeconds;
      if (wo.forceStop !== undefined) params.forceStop = wo.forceStop;
    }
    const upid = await this.client.post<string>(`${this.guestPath(g)}/status/${action}`, params, wo);
    return this.runTask(upid, `${action} of ${g.kind === 'lxc' ? 'CT' : 'VM'} ${vmid}`, wo);
  }

  async snapshots(vmid: number, ro?: RequestOptions): Promise<{ name: string; description: string; snaptime: number; parent?: string }[]> {
    const g = await this.guest(vmid, ro);
    const list =
      (await this.client.get<{ name: string; description?: string; snaptime?: number; parent?: string }[]>(
        `${this.guestPath(g)}/snapshot`,
        undefined,
        ro,
      )) ?? [];
    return list
      .filter((s) => s.name !== 'current')
      .map((s) => ({ name: s.name, description: s.description ?? '', snaptime: toInt(s.snaptime) || 0, parent: s.parent }))
      .sort((a, b) => a.snaptime - b.snaptime);
  }

  async snapshot(vmid: number, name: string, description: string | undefined, wo: WaitOptions = {}): Promise<TaskOutcome> {
    const g = await this.guest(vmid, wo);
    checkSnapshotName(name, g.kind);
    const upid = await this.client.post<string>(`${this.guestPath(g)}/snapshot`, { snapname: name, description }, wo);
    return this.runTask(upid, `snapshot ${name} of ${vmid}`, wo);
  }

  async deleteSnapshot(vmid: number, name: string, wo: WaitOptions = {}): Promise<TaskOutcome> {
    const g = await this.guest(vmid, wo);
    const upid = await this.client.delete<string>(`${this.guestPath(g)}/snapshot/${encodeURIComponent(name)}`, undefined, wo);
    return this.runTask(upid, `deleting snapshot ${name} of ${vmid}`, wo);
  }

  /** Rolls back (PVE stops a running guest first); `start` starts it again afterwards. */
  async rollback(vmid: number, name: string, start: boolean, wo: WaitOptions = {}): Promise<TaskOutcome> {
    const g = await this.guest(vmid, wo);
    const upid = await this.client.post<string>(
      `${this.guestPath(g)}/snapshot/${encodeURIComponent(name)}/rollback`,
      start ? { start: true } : {},
      wo,
    );
    return this.runTask(upid, `rollback of ${vmid} to ${name}`, wo);
  }

  /** IPs: the interfaces of a running guest; the net config otherwise (static addresses only). */
  async ips(vmid: number, ro?: RequestOptions): Promise<string[]> {
    const g = await this.guest(vmid, ro);
    const strip = (a: string): string => a.replace(/\/\d+$/, '');
    const usable = (a: string): boolean => !/^(127\.|::1$|fe80:)/i.test(a);
    if (g.status === 'running') {
      try {
        if (g.kind === 'lxc') {
          const ifs = await this.client.get<
            { name: string; inet?: string; inet6?: string; 'ip-addresses'?: { 'ip-address': string }[] }[] | null
          >(`${this.guestPath(g)}/interfaces`, undefined, ro);
          if (ifs) {
            const out = ifs
              .filter((i) => i.name !== 'lo')
              .flatMap(
                (i) =>
                  i['ip-addresses']?.map((a) => a['ip-address']) ?? [i.inet, i.inet6].filter((x): x is string => Boolean(x)).map(strip),
              );
            return [...new Set(out.filter(usable))];
          }
        } else {
          const r = await this.client.get<{ result?: { name: string; 'ip-addresses'?: { 'ip-address': string }[] }[] }>(
            `${this.guestPath(g)}/agent/network-get-interfaces`,
            undefined,
            ro,
          );
          const out = (r?.result ?? [])
            .filter((i) => i.name !== 'lo')
            .flatMap((i) => (i['ip-addresses'] ?? []).map((a) => a['ip-address']));
          return [...new Set(out.filter(usable))];
        }
      } catch (e) {
        // no guest agent, or an older PVE: fall back to the config
        this.logger.debug(`interfaces of ${vmid}: ${(e as Error).message}`);
      }
    }
    const cfg = await this.client.get<Record<string, unknown>>(`${this.guestPath(g)}/config`, undefined, ro);
    const out: string[] = [];
    for (const [k, v] of Object.entries(cfg ?? {})) {
      if (!/^net\d+$/.test(k) && !/^ipconfig\d+$/.test(k)) continue;
      for (const part of String(v).split(',')) {
        const eq = part.indexOf('=');
        const key = part.slice(0, eq);
        const val = part.slice(eq + 1);
        if ((key === 'ip' || key === 'ip6') && /[.:]/.test(val) && val !== 'dhcp' && val !== 'auto' && val !== 'manual')
          out.push(strip(val));
      }
    }
    return out.filter(usable);
  }

  // ---- backups -----------------------------------------------------------------------------

  async storageBackups(node: string, storage: string, vmid: number | undefined, ro?: RequestOptions): Promise<StorageBackup[]> {
    const list =
      (await this.client.get<Record<string, unknown>[]>(
        `/nodes/${encodeURIComponent(node)}/storage/${encodeURIComponent(storage)}/content`,
        { content: 'backup', ...(vmid ? { vmid } : {}) },
        ro,
      )) ?? [];
    return list
      .map((i) => {
        const ver = i.verification as { state?: string } | undefined;
        return {
          volid: String(i.volid),
          storage,
          vmid: toInt(i.vmid),
          ctime: toInt(i.ctime) || 0,
          size: toInt(i.size) || 0,
          format: typeof i.format === 'string' ? i.format : '',
          subtype: typeof i.subtype === 'string' ? i.subtype : undefined,
          notes: typeof i.notes === 'string' ? i.notes : undefined,
          protected: toInt(i.protected) === 1,
          verification: ver?.state === 'ok' ? ('ok' as const) : ver?.state === 'failed' ? ('failed' as const) : null,
        };
      })
      .filter((b) => vmid === undefined || b.vmid === vmid)
      .sort((a, b) => a.ctime - b.ctime || a.volid.localeCompare(b.volid));
  }

  /**
   * One vzdump of one guest, on the node where it runs now. PVE answers "OK" without a task
   * when the guest is on another node (it moved between our look-up and the call): we look it
   * up again and retry there, twice at most.
   */
  async vzdump(vmid: number, o: VzdumpOptions, wo: WaitOptions = {}, located?: GuestLocation): Promise<VzdumpResult> {
    let g = located ?? (await this.guest(vmid, wo));
    let upid: unknown;
    for (let tries = 0; ; tries++) {
      const params: Record<string, unknown> = { vmid: String(vmid), storage: o.storage, mode: o.mode, compress: o.compress, remove: false };
      if (o.notesTemplate) params['notes-template'] = o.notesTemplate;
      if (o.protected) params.protected = true;
      upid = await this.client.post<unknown>(`/nodes/${encodeURIComponent(g.node)}/vzdump`, params, wo);
      if (typeof upid === 'string' && upid.startsWith('UPID:')) break;
      if (tries >= 2)
        throw new PveError(
          `vzdump of ${vmid} started no task on ${g.node} (PVE answered ${JSON.stringify(upid)}): the guest keeps moving`,
          null,
        );
      const was = g.node;
      g = await this.guest(vmid, wo);
      this.logger.info(`guest ${vmid} is no longer on ${was} but on ${g.node}: backing it up there`);
    }
    const outcome = await this.runTask(upid, `vzdump of ${g.kind === 'lxc' ? 'CT' : 'VM'} ${vmid} on ${g.node}`, wo);
    // the archive: from the log line (exact), confirmed by the storage listing
    let target: string | null = null;
    let logSize = 0;
    for (const line of outcome.log) {
      const m = /creating (?:.+ )?archive '([^']+)'/.exec(line);
      if (m) target = m[1];
      const s = /archive file size: ([\d.]+)(KB|MB|GB|TB)/.exec(line);
      if (s) logSize = Math.round(Number(s[1]) * SIZE_UNITS[s[2]]);
    }
    let volid: string | null = null;
    if (target) volid = target.startsWith('/') ? `${o.storage}:backup/${target.split('/').pop()}` : `${o.storage}:backup/${target}`;
    // the storage listing gives the exact size and PBS's verification state; a PBS listing is a live
    // call to PBS that can be slow or fail: then the volid from the log stands, without them
    let list: StorageBackup[] = [];
    try {
      list = await this.storageBackups(outcome.node, o.storage, vmid, { ...wo, timeoutMs: 120_000 });
    } catch (e) {
      if (!volid) throw e;
      outcome.warnings.push(`the backup is ${volid}, but listing ${o.storage} failed (${(e as Error).message}): its size is not known`);
    }
    let backup = volid ? (list.find((b) => b.volid === volid) ?? null) : null;
    if (!volid) {
      // no archive line in the log (another PVE version?): the newest backup made since this task began, never an older one
      const since = (parseUpid(outcome.upid)?.starttime ?? 0) - 5;
      backup = list.filter((b) => b.ctime >= since).pop() ?? null;
      volid = backup?.volid ?? null;
    }
    if (!volid)
      throw new PveError(
        `vzdump of ${vmid} reported success, but no backup of it made by that task is on ${o.storage}`,
        null,
        'check the task log on the node',
      );
    return { upid: outcome.upid, node: outcome.node, volid, size: backup?.size ?? logSize, backup, outcome };
  }

  async deleteVolume(node: string, storage: string, volid: string, wo: WaitOptions = {}): Promise<void> {
    const res = await this.client.delete<unknown>(
      `/nodes/${encodeURIComponent(node)}/storage/${encodeURIComponent(storage)}/content/${encodeURIComponent(volid)}`,
      undefined,
      wo,
    );
    if (typeof res === 'string' && res.startsWith('UPID:')) await this.runTask(res, `deleting ${volid}`, wo);
  }

  /** Restores a backup to a vmid on a node and storage (a new guest unless force). */
  async restore(
    kind: GuestKind,
    volid: string,
    o: { vmid: number; node: string; storage: string; force?: boolean; unique?: boolean; start?: boolean },
    wo: WaitOptions = {},
  ): Promise<TaskOutcome> {
    const params: Record<string, unknown> =
      kind === 'lxc'
        ? { vmid: o.vmid, ostemplate: volid, restore: true, storage: o.storage }
        : { vmid: o.vmid, archive: volid, storage: o.storage };
    if (o.force) params.force = true;
    if (o.unique) params.unique = true;
    if (o.start) params.start = true;
    const upid = await this.client.post<string>(`/nodes/${encodeURIComponent(o.node)}/${kind}`, params, wo);
    return this.runTask(upid, `restore of ${volid} to ${o.vmid} on ${o.node}`, wo);
  }

  /** Creates a container from a template (ostemplate = e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst). */
  async createContainer(
    o: {
      vmid: number;
      node: string;
      ostemplate: string;
      storage: string;
      hostname?: string;
      memory?: number;
      cores?: number;
      net0?: string;
      password?: string;
      sshPublicKeys?: string;
      unprivileged?: boolean;
      start?: boolean;
    },
    wo: WaitOptions = {},
  ): Promise<TaskOutcome> {
    const params: Record<string, unknown> = {
      vmid: o.vmid,
      ostemplate: o.ostemplate,
      storage: o.storage,
      hostname: o.hostname,
      memory: o.memory,
      cores: o.cores,
      net0: o.net0,
      password: o.password,
      'ssh-public-keys': o.sshPublicKeys,
      unprivileged: o.unprivileged,
      start: o.start,
    };
    const upid = await this.client.post<string>(`/nodes/${encodeURIComponent(o.node)}/lxc`, params, wo);
    return this.runTask(upid, `creating CT ${o.vmid} on ${o.node}`, wo);
  }
}
