/**
 * Built-in service plugin `host`: the configuration of a Proxmox VE host (or any Linux
 * host), enough to rebuild it after a reinstall. Written against the public contract only.
 */
import type { ServiceConfig, ServicePluginDefinition } from '../../../core/plugins/contract';

/** What a Proxmox host needs to come back: cluster config, network, names. */
export const DEFAULT_HOST_PATHS = ['/etc/pve/', '/var/lib/pve-cluster/config.db', '/etc/network/interfaces', '/etc/hosts', '/etc/hostname'];

interface HostService extends ServiceConfig {
  backup_paths?: string[];
  include_defaults?: boolean;
  exclude?: string[];
}

const plugin: ServicePluginDefinition = {
  name: 'host',
  kind: 'service',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  description: 'Archives the host configuration (/etc/pve, the cluster database, network, hostname) plus backup_paths',
  serviceSchema: {
    properties: {
      backup_paths: {
        type: 'array',
        default: [],
        items: { type: 'string', minLength: 1, 'x-path': true },
        description: 'more paths to archive; each must exist',
      },
      include_defaults: {
        type: 'boolean',
        default: true,
        description: `also archive ${DEFAULT_HOST_PATHS.join(', ')} (those that exist on this host)`,
      },
      exclude: { type: 'array', default: [], items: { type: 'string', minLength: 1 }, description: 'GNU tar --exclude patterns' },
    },
  },
  create() {
    return {
      backupSources(service) {
        const s = service as HostService;
        const defaults =
          s.include_defaults === false ? [] : DEFAULT_HOST_PATHS.map((p) => ({ path: p.replace(/\/$/, ''), required: false }));
        const extra = (s.backup_paths ?? []).map((p) => ({ path: p.replace(/(.)\/$/, '$1'), required: true }));
        return { paths: [...defaults, ...extra], exclude: s.exclude ?? [] };
      },
    };
  },
};

export default plugin;
