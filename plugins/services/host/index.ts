/**
 * Built-in service plugin `host`: the configuration of a Proxmox VE host (or any Linux
 * host), enough to rebuild it after a reinstall. Written against the public contract only.
 */
import * as fs from 'node:fs';
import type { PluginContext, ServiceConfig, ServicePluginDefinition } from '../../../core/plugins/contract';

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
  version: '1.1.0',
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
    // without the defaults, there would be nothing to archive
    if: { properties: { include_defaults: { const: false } }, required: ['include_defaults'] },
    then: { properties: { backup_paths: { minItems: 1 } }, required: ['backup_paths'] },
  },
  create(ctx: PluginContext) {
    return {
      backupSources(service, op) {
        const s = service as HostService;
        const extra = (s.backup_paths ?? []).map((p) => ({ path: p.replace(/(.)\/$/, '$1'), required: true }));
        const defaults = s.include_defaults === false ? [] : DEFAULT_HOST_PATHS.map((p) => p.replace(/\/$/, ''));
        // a dry run shows every default, present or not
        if (op.dryRun) return { paths: [...defaults.map((p) => ({ path: p, required: false })), ...extra], exclude: s.exclude ?? [] };
        // the defaults this host lacks (a host without Proxmox has no /etc/pve) are said once, not every night:
        // again only when that list changes
        const missing = defaults.filter((p) => !fs.existsSync(p));
        const key = `missing-defaults.${s.name}`;
        if (missing.length && ctx.store.get<string[]>(key)?.join('\n') !== missing.join('\n')) {
          const message = `${missing.join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist on this host: skipped (said once; set include_defaults: false and list backup_paths to choose the files yourself)`;
          if (op.warn) op.warn(message);
          else op.logger.warn(message);
        } else if (missing.length) op.logger.debug(`skipped, as before: ${missing.join(', ')}`);
        if (missing.length) ctx.store.set(key, missing);
        else if (ctx.store.exists(key)) ctx.store.delete(key);
        const present = defaults.filter((p) => !missing.includes(p)).map((p) => ({ path: p, required: false }));
        return { paths: [...present, ...extra], exclude: s.exclude ?? [] };
      },
    };
  },
};

export default plugin;
