/**
 * Built-in hypervisor plugin `proxmox`: Proxmox VE over its REST API. Services of type `lxc`
 * and `vm` are its guests; it reports their state and backs them up with vzdump, to a PBS
 * storage or a file storage, on whichever node each guest runs now. Written against the
 * public plugin contract only, as a plugins.d author would.
 */
import type { HypervisorPluginDefinition, JsonSchema } from '../../../core/plugins/contract';
import { ProxmoxHypervisor, type ProxmoxOptions } from './hypervisor';

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
  apiVersion: '^1.4.0',
  description: 'Proxmox VE over the REST API: guest state, vzdump backups to PBS or a storage, cluster-aware',
  guestTypes: { lxc: guestSchema('container'), vm: guestSchema('VM') },
  idKey: 'vmid',
  // recorded as pve:<storage>, as before plugin API 1.4
  destinationPrefix: 'pve',
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
          ssh_known_hosts: {
            type: 'string',
            minLength: 1,
            'x-path': true,
            description: "the guests' host keys (a known_hosts file), checked strictly; default: ssh's own files of the user running it",
          },
        },
      },
    },
    allOf: [
      { not: { required: ['token_id', 'username'] }, 'x-doc': 'token_id or username, not both' },
      {
        if: { required: ['token_id'] },
        then: {
          anyOf: [{ required: ['token_secret'] }, { required: ['token_secret_file'] }, { required: ['token_secret_command'] }],
          'x-doc': 'required:token_secret,token_secret_file,token_secret_command',
        },
      },
      {
        if: { required: ['username'] },
        then: {
          anyOf: [{ required: ['password'] }, { required: ['password_file'] }, { required: ['password_command'] }],
          'x-doc': 'required:password,password_file,password_command',
        },
      },
    ],
  },
  create(ctx) {
    return new ProxmoxHypervisor(ctx, ctx.options as unknown as ProxmoxOptions);
  },
};

export default plugin;
