/**
 * Built-in hypervisor plugin `proxmox`: Proxmox VE over its REST API. Services of type `lxc`
 * and `vm` are its guests; it reports their state and backs them up with vzdump, to a PBS
 * storage or a file storage, on whichever node each guest runs now. Written against the
 * public plugin contract only, as a plugins.d author would.
 */
import type {
  GuestBackupInfo,
  GuestBackupPlan,
  GuestBackupResult,
  GuestBackupTarget,
  GuestRef,
  GuestStatus,
  HypervisorPlugin,
  HypervisorPluginDefinition,
  JsonSchema,
  OperationContext,
} from '../../../core/plugins/contract';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { PveError as PveErrorType } from './client';
import type { GuestLocation, ProxmoxApi, StorageBackup } from './api';

// the client (node:https, node:tls) is loaded when the plugin is first used, not at every start
// eslint-disable-next-line @typescript-eslint/no-require-imports
const client = (): typeof import('./client') => require('./client') as typeof import('./client');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const apiModule = (): typeof import('./api') => require('./api') as typeof import('./api');
const pveError = (message: string, hint?: string): PveErrorType => new (client().PveError)(message, null, hint);
const toInt = (v: unknown): number => apiModule().toInt(v);

const guestSchema = (kind: 'container' | 'VM'): JsonSchema => ({
  properties: {
    vmid: { type: 'integer', minimum: 100, maximum: 999999999, description: `the ${kind}'s VMID` },
    node: {
      type: 'string',
      pattern: '^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$',
      description: 'the node it usually runs on (informational: the node is always looked up in the cluster)',
    },
    storage: {
      type: 'string',
      pattern: '^[a-zA-Z][a-zA-Z0-9._-]*$',
      description: 'back up to this PVE storage instead of the one backup: decides',
    },
    mode: { enum: ['snapshot', 'suspend', 'stop'], description: 'vzdump mode (default backup.guests.mode)' },
    compress: {
      enum: ['zstd', 'gzip', 'lzo', 'none'],
      description: 'vzdump compression for file storages (default backup.guests.compress)',
    },
    notes_template: {
      type: 'string',
      maxLength: 1024,
      pattern: '^[^\\n]*$',
      description: 'notes of the backup: {{cluster}}, {{guestname}}, {{node}}, {{vmid}}',
    },
    protected: { type: 'boolean', description: 'mark each backup protected (never pruned)' },
  },
  required: ['vmid'],
});

const plugin: HypervisorPluginDefinition = {
  name: 'proxmox',
  kind: 'hypervisor',
  version: '1.0.0',
  apiVersion: '^1.2.0',
  description: 'Proxmox VE over the REST API: guest state, vzdump backups to PBS or a storage, cluster-aware',
  guestTypes: { lxc: guestSchema('container'), vm: guestSchema('VM') },
  // keys of the config's backup: section (where guests go); the user-facing config is as before 1.4
  backupSchema: {
    proxmox_backup_server: {
      type: 'object',
      additionalProperties: false,
      required: ['storage'],
      description: 'guests (lxc, vm) go to this PBS storage of the PVE cluster when enabled',
      properties: {
        enabled: { type: 'boolean', default: true },
        storage: {
          type: 'string',
          pattern: '^[a-zA-Z][a-zA-Z0-9._-]*$',
          description: 'the PVE storage id of type pbs (Datacenter > Storage)',
        },
      },
    },
    direct_storage: {
      type: 'object',
      additionalProperties: false,
      required: ['storage'],
      description: 'guests go to this PVE file storage (NFS, CIFS, dir) when enabled and no PBS is',
      properties: {
        enabled: { type: 'boolean', default: true },
        storage: { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9._-]*$', description: 'the PVE storage id (with backup content)' },
        path: {
          type: 'string',
          minLength: 1,
          'x-path': true,
          description: 'where this host sees the storage (its dump/ folder beneath) for the decompress test, e.g. /mnt/pve/<storage>',
        },
      },
    },
  },
  optionsSchema: {
    additionalProperties: false,
    properties: {
      host: {
        type: 'string',
        minLength: 1,
        pattern: '^[^/:\\s]+$|^\\[[0-9a-fA-F:]+\\]$',
        description: 'a PVE node of the cluster (name or address; any node sees the whole cluster)',
      },
      port: { type: 'integer', minimum: 1, maximum: 65535, default: 8006 },
      token_id: {
        type: 'string',
        pattern: '^[^\\s!@]+@[^\\s!@]+![A-Za-z][A-Za-z0-9.\\-_]+$',
        description: 'API token id: user@realm!name (recommended)',
      },
      token_secret: { type: 'string', minLength: 1, 'x-secret': true, description: 'the API token secret (a UUID)' },
      username: { type: 'string', pattern: '^[^\\s@]+@[^\\s@]+$', description: 'user@realm, for ticket login when no token is used' },
      password: { type: 'string', minLength: 1, 'x-secret': true },
      fingerprint: {
        type: 'string',
        pattern: '^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$',
        description: "SHA-256 fingerprint of the node's certificate (pvenode cert info): trusts a self-signed certificate safely",
      },
      ca_file: {
        type: 'string',
        minLength: 1,
        'x-path': true,
        description: 'a CA certificate (PEM) to verify the node with, e.g. /etc/pve/pve-root-ca.pem',
      },
      insecure: { type: 'boolean', default: false, description: 'turn TLS verification off (warned about on every run)' },
      timeout: { type: 'integer', minimum: 1, maximum: 600, default: 30, description: 'seconds per API request' },
      retries: {
        type: 'integer',
        minimum: 0,
        maximum: 10,
        default: 3,
        description: 'retries of a read that failed on the network, with 5xx or 595-599',
      },
      task_poll_max: {
        type: 'number',
        minimum: 0.2,
        maximum: 60,
        default: 5,
        description: 'the longest pause between two polls of a running task (seconds)',
      },
      breaker_threshold: { type: 'integer', minimum: 1, default: 3, description: 'failures in a row after which a node is failed fast' },
      breaker_cooldown: { type: 'integer', minimum: 1, default: 30, description: 'seconds a node is failed fast' },
      guest_exec: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'how commands run inside guests (updates)',
        properties: {
          via: {
            enum: ['auto', 'pct', 'ssh'],
            default: 'auto',
            description: "auto: pct exec / qm guest exec when the guest runs on this very node, else ssh to the guest's address",
          },
          pct: { type: 'string', minLength: 1, default: '/usr/sbin/pct' },
          qm: { type: 'string', minLength: 1, default: '/usr/sbin/qm' },
          ssh: { type: 'string', minLength: 1, default: 'ssh' },
          ssh_user: { type: 'string', pattern: '^[a-z_][a-z0-9_-]*$', default: 'root' },
          ssh_key: { type: 'string', minLength: 1, 'x-path': true },
        },
      },
    },
    allOf: [
      { not: { required: ['token_id', 'username'] }, 'x-doc': 'token_id or username, not both' },
      {
        if: { required: ['token_id'] },
        then: { anyOf: [{ required: ['token_secret'] }, { required: ['token_secret_file'] }, { required: ['token_secret_command'] }] },
      },
      {
        if: { required: ['username'] },
        then: { anyOf: [{ required: ['password'] }, { required: ['password_file'] }, { required: ['password_command'] }] },
      },
    ],
  },
  create(ctx) {
    const o = ctx.options as {
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
      guest_exec: { via: 'auto' | 'pct' | 'ssh'; pct: string; qm: string; ssh: string; ssh_user: string; ssh_key?: string };
    };
    if (o.host && o.insecure && !o.fingerprint) {
      ctx.logger.warn(
        `TLS verification of ${o.host} is turned off (plugins.proxmox.insecure): anyone on the network path can read the API token; set fingerprint instead (pvenode cert info)`,
      );
    }
    let api: ProxmoxApi | null = null;
    const getApi = (): ProxmoxApi => {
      if (!o.host)
        throw pveError(
          'the Proxmox connection is not configured',
          'set plugins.proxmox.host, and token_id with token_secret (or username with password)',
        );
      if (!o.token_id && !o.username)
        throw pveError(
          'no Proxmox credentials are configured',
          'set plugins.proxmox.token_id and token_secret (recommended), or username and password',
        );
      api ??= new (apiModule().ProxmoxApi)(
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
          logger: ctx.logger,
        }),
        ctx.logger,
      );
      return api;
    };
    const vmidOf = (g: GuestRef): number => {
      const v = toInt(g.config?.vmid ?? g.id);
      if (!Number.isInteger(v) || v < 100)
        throw pveError(
          `service '${g.service}' has no valid vmid (got ${JSON.stringify(g.config?.vmid ?? g.id)})`,
          'set vmid: to the guest id shown in the Proxmox UI',
        );
      return v;
    };
    const mmss = (ms: number): string => `${Math.floor(ms / 60000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}s`;
    const wait = (op: OperationContext) => ({
      signal: op.signal,
      deadline: op.deadline,
      pollMaxMs: o.task_poll_max * 1000,
      onPoll: (ms: number, t: { type: string; id: string; node: string }) =>
        op.progress?.(`${t.type} ${t.id} on ${t.node}: running for ${mmss(ms)}`),
    });
    const statusOf = (vmid: number, loc: GuestLocation | undefined): GuestStatus =>
      loc
        ? {
            id: String(vmid),
            state:
              loc.status === 'running' ? 'running' : loc.status === 'stopped' ? 'stopped' : loc.status === 'paused' ? 'paused' : 'unknown',
            node: loc.node,
            name: loc.name,
            uptimeSeconds: loc.uptime,
            lock: loc.lock || undefined,
            details: {
              kind: loc.kind,
              template: loc.template,
              cpu: loc.resource.cpu,
              mem: loc.resource.mem,
              maxmem: loc.resource.maxmem,
              disk: loc.resource.disk,
              maxdisk: loc.resource.maxdisk,
              hastate: loc.resource.hastate,
            },
          }
        : { id: String(vmid), state: 'missing' };
    const info = (b: StorageBackup): GuestBackupInfo => ({
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
    });
    const kindMatches = (g: GuestRef, loc: GuestLocation): void => {
      const want = g.type === 'vm' ? 'qemu' : g.type === 'lxc' ? 'lxc' : loc.kind;
      if (want !== loc.kind)
        throw pveError(
          `service '${g.service}' is of type ${g.type}, but guest ${loc.vmid} is a ${loc.kind === 'lxc' ? 'container (lxc)' : 'VM (vm)'}`,
          'fix the type or the vmid of the service',
        );
    };

    const instance: HypervisorPlugin & { api(): ProxmoxApi } = {
      api: getApi,
      async guestStatus(guest, op) {
        const [s] = await this.guestStatuses!([guest], op);
        return s;
      },
      async guestStatuses(guests, op, opts = {}) {
        const a = getApi();
        const where = await a.locate({ signal: op.signal });
        const out: GuestStatus[] = [];
        for (const g of guests) {
          const vmid = vmidOf(g);
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
      },
      async clusterStatus(op) {
        const c = await getApi().cluster({ signal: op.signal });
        return { name: c.name, quorate: c.quorate, nodes: c.nodes.map((n) => ({ node: n.node, online: n.online })) };
      },
      async planBackup(guest, target, op): Promise<GuestBackupPlan> {
        const a = getApi();
        const vmid = vmidOf(guest);
        const loc = await a.guest(vmid, { signal: op.signal });
        kindMatches(guest, loc);
        const notes: string[] = [];
        const mode = loc.status === 'stopped' ? 'stop' : target.mode;
        if (mode !== target.mode) notes.push(`the guest is stopped: vzdump uses stop mode`);
        if (loc.lock) notes.push(`the guest is locked (${loc.lock}) now`);
        if (target.kind === 'pbs') notes.push('PBS storage: compression and pruning are PBS’s');
        return {
          guest: String(vmid),
          node: loc.node,
          state: statusOf(vmid, loc).state,
          storage: target.storage,
          mode,
          compress: target.kind === 'pbs' ? 'pbs' : target.compress,
          notes,
        };
      },
      async backupGuest(guest, target, op): Promise<GuestBackupResult> {
        const a = getApi();
        const vmid = vmidOf(guest);
        const loc = await a.guest(vmid, { signal: op.signal });
        kindMatches(guest, loc);
        const r = await a.vzdump(
          vmid,
          {
            storage: target.storage,
            mode: target.mode,
            compress: target.kind === 'pbs' || target.compress === 'none' ? '0' : target.compress,
            notesTemplate: target.notesTemplate,
            protected: target.protected,
          },
          wait(op),
          loc,
        );
        const b: StorageBackup = r.backup ?? {
          volid: r.volid,
          storage: target.storage,
          vmid,
          ctime: Math.floor(Date.now() / 1000),
          size: r.size,
          format: target.kind === 'pbs' ? 'pbs-unknown' : '',
          protected: Boolean(target.protected),
          verification: null,
        };
        const modeLine = r.outcome.log.find((l) => /backup mode: /.test(l));
        return {
          ...info(b),
          node: r.node,
          mode: modeLine ? modeLine.replace(/.*backup mode: /, '').trim() : target.mode,
          warnings: r.outcome.warnings,
          task: r.upid,
        };
      },
      async listSnapshots(guest, op) {
        const list = await getApi().snapshots(vmidOf(guest), { signal: op.signal });
        return list.map((x) => ({ id: x.name, time: new Date(x.snaptime * 1000).toISOString(), description: x.description }));
      },
      async createSnapshot(guest, name, description, op) {
        const a = getApi();
        const vmid = vmidOf(guest);
        const running = (await a.guest(vmid, { signal: op.signal })).status === 'running';
        await a.snapshot(vmid, name, description, wait(op));
        return { id: name, time: new Date().toISOString(), description, data: { running } };
      },
      async rollbackSnapshot(guest, snap, op) {
        const a = getApi();
        const vmid = vmidOf(guest);
        // PVE stops a running guest to roll it back; start it again if it ran when the snapshot was taken
        const wasRunning =
          typeof snap.data?.running === 'boolean' ? snap.data.running : (await a.guest(vmid, { signal: op.signal })).status === 'running';
        await a.rollback(vmid, snap.id, wasRunning, wait(op));
      },
      async deleteSnapshot(guest, snap, op) {
        await getApi().deleteSnapshot(vmidOf(guest), snap.id, wait(op));
      },
      async precheckGuest(guest, op) {
        const a = getApi();
        const vmid = vmidOf(guest);
        const loc = await a.guest(vmid, { signal: op.signal });
        const problems: string[] = [];
        if (loc.lock) problems.push(`${loc.kind === 'lxc' ? 'CT' : 'VM'} ${vmid} is locked (${loc.lock})`);
        if (loc.template) problems.push(`${vmid} is a template`);
        const need = op.minFreeBytes ?? 0;
        if (need > 0) {
          const cfg = await a.config(vmid, { signal: op.signal });
          const disk = String(cfg.rootfs ?? cfg.scsi0 ?? cfg.virtio0 ?? cfg.sata0 ?? cfg.ide0 ?? '');
          const storage = /^([a-zA-Z][a-zA-Z0-9._-]*):/.exec(disk)?.[1];
          if (storage) {
            const st = await a.client.get<{ avail?: number }>(
              `/nodes/${encodeURIComponent(loc.node)}/storage/${encodeURIComponent(storage)}/status`,
              undefined,
              { signal: op.signal },
            );
            if (typeof st?.avail === 'number' && st.avail < need)
              problems.push(
                `storage ${storage} on ${loc.node} has ${Math.round(st.avail / 1048576)} MiB free, the snapshot needs ${Math.round(need / 1048576)} MiB (update.min_free_mb)`,
              );
          }
        }
        return problems;
      },
      async execInGuest(guest, argv, op) {
        const a = getApi();
        const vmid = vmidOf(guest);
        const loc = await a.guest(vmid, { signal: op.signal });
        const g = o.guest_exec;
        const local = loc.node === hostname().split('.')[0];
        const via = g.via === 'auto' ? (local ? 'pct' : 'ssh') : g.via;
        const timeoutMs = op.timeoutMs ?? 1800_000;
        if (via === 'pct') {
          if (loc.kind === 'lxc') return ctx.exec(g.pct, ['exec', String(vmid), '--', ...argv], { signal: op.signal, timeoutMs });
          // qm guest exec: through the QEMU guest agent; it prints JSON with the exit code and output
          const r = await ctx.exec(g.qm, ['guest', 'exec', String(vmid), '--timeout', String(Math.ceil(timeoutMs / 1000)), '--', ...argv], {
            signal: op.signal,
            timeoutMs: timeoutMs + 10_000,
          });
          if (r.code !== 0) return r;
          try {
            const j = JSON.parse(r.stdout) as { exitcode?: number; 'out-data'?: string; 'err-data'?: string };
            return { code: j.exitcode ?? null, signal: null, stdout: j['out-data'] ?? '', stderr: j['err-data'] ?? '' };
          } catch {
            return r;
          }
        }
        // an address the guest reported (its agent is inside the guest): only a plain IP is used
        const ips = (await a.ips(vmid, { signal: op.signal })).filter((ip) => isIP(ip) !== 0);
        const host = ips.find((ip) => isIP(ip) === 4) ?? ips[0];
        if (!host)
          throw pveError(
            `no address of ${vmid} is known to reach it over ssh`,
            'give it a static IP in its network config, or run homelab-autopilot on its node (guest_exec.via: pct)',
          );
        const quote = (x: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`);
        const args = [
          '-o',
          'BatchMode=yes',
          '-o',
          'ConnectTimeout=10',
          ...(g.ssh_key ? ['-i', g.ssh_key] : []),
          `${g.ssh_user}@${host}`,
          '--',
          argv.map(quote).join(' '),
        ];
        return ctx.exec(g.ssh, args, { signal: op.signal, timeoutMs });
      },
      async listBackups(guest, storage, op) {
        const a = getApi();
        const vmid = vmidOf(guest);
        const loc = await a.guest(vmid, { signal: op.signal });
        return (await a.storageBackups(loc.node, storage, vmid, { signal: op.signal })).map(info);
      },
      async deleteBackup(guest, backup, op) {
        const a = getApi();
        const vmid = vmidOf(guest);
        // any online node can delete from a shared or PBS storage; the guest's node for a local one
        const loc = await a.guest(vmid, { signal: op.signal });
        await a.deleteVolume(loc.node, backup.storage, backup.id, wait(op));
      },
    };
    return instance;
  },
};

export default plugin;
