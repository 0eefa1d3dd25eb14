/**
 * What the config stage takes from the discovered plugins (created or not): the schemas that
 * extend the config (service and channel keys, hypervisor keys of `backup:`), and each
 * plugin's options schema, so that `plugins.<name>` is validated, and its secrets resolved,
 * with the rest of the config in one pass. Nothing here creates a plugin.
 */
import type { HypervisorPluginDefinition, JsonSchema, PluginDefinition } from '../plugins/contract';
import { coreBackupKeys, type BackupKeys, type SchemaPlugin } from './schema';
import type { Validator } from './validators';

/** A discovered plugin, as core/plugins/host.ts discoverPlugins() returns it. */
export interface DiscoveredPlugin {
  def: PluginDefinition;
  record: { file: string; source: string };
  /** the validator of its options (the host compiles those of plugins.d plugins at discovery) */
  options?: { schema: JsonSchema; validate: Validator };
}

export interface OptionsPlugin {
  name: string;
  schema: JsonSchema;
  validate: Validator;
}

export interface ConfigPlugins {
  /** service types: service plugins, and hypervisor guest types no service plugin shadows */
  service: SchemaPlugin[];
  channel: SchemaPlugin[];
  /** plugins with an options schema */
  options: OptionsPlugin[];
  /** keys hypervisor plugins add to `backup:` (see buildConfigSchema) */
  backup: BackupKeys[];
  /** every discovered plugin's name (options for any other name are a warning) */
  names: string[];
  /** backupSchema keys that were not admitted, and why (warnings) */
  problems: string[];
}

const KEY = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The `backup:` keys of a hypervisor plugin that may join the config schema: plain names, not
 * one of ours, not one an earlier plugin took, each a self-contained schema object (it becomes
 * part of the one config schema, where $ref cannot resolve).
 */
function admitBackupKeys(
  def: HypervisorPluginDefinition,
  file: string,
  taken: Map<string, string>,
  problems: string[],
): Record<string, JsonSchema> {
  const declared = (def as { backupSchema?: unknown }).backupSchema;
  if (declared === undefined) return {};
  const bad = (why: string): Record<string, JsonSchema> => {
    problems.push(`plugin ${def.name} (${file}): backupSchema ${why}; its backup: keys are not accepted`);
    return {};
  };
  if (!declared || typeof declared !== 'object' || Array.isArray(declared)) return bad('must map key names to JSON schema objects');
  const out: Record<string, JsonSchema> = {};
  for (const [key, schema] of Object.entries(declared as Record<string, unknown>)) {
    if (!KEY.test(key)) return bad(`key '${key}' is not a plain name (lower-case letters, digits, '_')`);
    if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return bad(`.${key} must be a JSON schema object`);
    if (/"\$(ref|id|defs)"|"definitions"/.test(JSON.stringify(schema)))
      return bad(`.${key} must be self-contained: $ref, $id, $defs and definitions cannot resolve in the config schema`);
  }
  for (const [key, schema] of Object.entries(declared as Record<string, JsonSchema>)) {
    const owner = taken.get(key);
    if (owner !== undefined) {
      problems.push(
        `plugin ${def.name} (${file}): backupSchema key '${key}' is ignored: backup.${key} belongs to ${owner === '' ? 'homelab-autopilot itself' : `plugin ${owner}`}`,
      );
      continue;
    }
    taken.set(key, def.name);
    out[key] = schema;
  }
  return out;
}

export function configPlugins(definitions: readonly DiscoveredPlugin[]): ConfigPlugins {
  const services: SchemaPlugin[] = definitions
    .filter((d) => d.def.kind === 'service')
    .map((d) => ({ name: d.def.name, serviceSchema: (d.def as { serviceSchema?: JsonSchema }).serviceSchema }));
  // a hypervisor's guest types are service types too (a service plugin of the same name wins)
  const guests = definitions
    .filter((d) => d.def.kind === 'hypervisor')
    .flatMap((d) =>
      Object.entries((d.def as HypervisorPluginDefinition).guestTypes ?? {}).map(([name, serviceSchema]) => ({ name, serviceSchema })),
    )
    .filter((g) => !services.some((s) => s.name === g.name));
  const problems: string[] = [];
  const taken = new Map<string, string>(coreBackupKeys().map((k) => [k, '']));
  const backup: BackupKeys[] = [];
  for (const d of definitions) {
    if (d.def.kind !== 'hypervisor') continue;
    const keys = admitBackupKeys(d.def, d.record.file, taken, problems);
    if (Object.keys(keys).length) backup.push({ plugin: d.def.name, keys });
  }
  return {
    service: [...services, ...guests],
    channel: definitions
      .filter((d) => d.def.kind === 'notification')
      .map((d) => ({ name: d.def.name, channelSchema: (d.def as { channelSchema?: JsonSchema }).channelSchema })),
    options: definitions.flatMap((d) => (d.options ? [{ name: d.def.name, schema: d.options.schema, validate: d.options.validate }] : [])),
    backup,
    names: definitions.map((d) => d.def.name),
    problems,
  };
}
