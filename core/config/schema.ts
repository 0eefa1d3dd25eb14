/**
 * The configuration schema: one JSON Schema for the whole file (its sections in sections.ts),
 * extended with the hypervisor plugins' backup: keys; the schema of each service and channel
 * entry (the common keys of entries.ts plus its plugin's own); the `x-secret` expansion into
 * `<name>_file` / `<name>_command`; and the walk that collects the secrets and paths of
 * validated data. Validators are made from these schemas in validators.ts.
 */
import type { JsonSchema } from '../plugins/contract';
import { COMMON_CHANNEL_PROPERTIES, COMMON_SERVICE_PROPERTIES } from './entries';
import { coreConfigSchema } from './sections';
import { expandSecrets } from './secrets-schema';

export { expandSecrets };

export { COMMON_CHANNEL_PROPERTIES, COMMON_SERVICE_PROPERTIES, EVENT_TYPES } from './entries';

/** Secrets and paths found in validated data, from the x-secret / x-secret-source / x-path annotations. */
export interface Collected {
  secretSources: { parent: Record<string, unknown>; key: string; base: string; via: 'file' | 'command'; pointer: string }[];
  secretValues: { parent: Record<string, unknown>; key: string; pointer: string }[];
  paths: { parent: Record<string, unknown> | unknown[]; key: string | number; pointer: string }[];
}

const esc = (k: string | number): string => String(k).replace(/~/g, '~0').replace(/\//g, '~1');

/** Whether data satisfies a condition of the simple forms our `if`s use (const, enum, required under properties). */
function conditionHolds(cond: JsonSchema, data: unknown): boolean {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return false;
  const obj = data as Record<string, unknown>;
  for (const r of (cond.required as string[] | undefined) ?? []) if (!(r in obj)) return false;
  for (const [k, sub] of Object.entries((cond.properties as Record<string, JsonSchema> | undefined) ?? {})) {
    if (!(k in obj)) continue;
    if ('const' in sub && obj[k] !== sub.const) return false;
    if (Array.isArray(sub.enum) && !sub.enum.includes(obj[k])) return false;
  }
  return true;
}

/** Whether a schema alternative is for values of this kind (object, array, string...): which oneOf branch a value took. */
function kindMatches(sub: JsonSchema, value: unknown): boolean {
  const t = sub.type;
  if (t === undefined) return Boolean(sub.properties) === (value !== null && typeof value === 'object' && !Array.isArray(value));
  const kind = Array.isArray(value)
    ? 'array'
    : value === null
      ? 'null'
      : typeof value === 'number'
        ? Number.isInteger(value)
          ? 'integer'
          : 'number'
        : typeof value;
  const types = Array.isArray(t) ? (t as string[]) : [t as string];
  return types.includes(kind) || (kind === 'integer' && types.includes('number'));
}

/**
 * Walks validated data alongside its schema and collects the annotated values: paths to
 * resolve, secret sources to read or run, and secret values to mask.
 */
export function collect(schema: JsonSchema, data: unknown, pointerPrefix = ''): Collected {
  const out: Collected = { secretSources: [], secretValues: [], paths: [] };
  const walk = (s: JsonSchema | undefined, value: unknown, pointer: string, parent: unknown, key: string | number | null): void => {
    if (!s || typeof s !== 'object') return;
    if (key !== null && parent && typeof value === 'string') {
      if (s['x-path'] === true) out.paths.push({ parent: parent as Record<string, unknown>, key, pointer });
      if (s['x-secret'] === true) out.secretValues.push({ parent: parent as Record<string, unknown>, key: String(key), pointer });
    }
    if (key !== null && parent && s['x-secret-source'] && (typeof value === 'string' || Array.isArray(value))) {
      const via = s['x-secret-source'] as 'file' | 'command';
      const k = String(key);
      out.secretSources.push({
        parent: parent as Record<string, unknown>,
        key: k,
        base: k.slice(0, k.length - (via === 'file' ? 5 : 8)),
        via,
        pointer,
      });
    }
    if (Array.isArray(value)) {
      if (s.items && typeof s.items === 'object' && !Array.isArray(s.items))
        value.forEach((v, i) => walk(s.items as JsonSchema, v, `${pointer}/${i}`, value, i));
    } else if (value && typeof value === 'object') {
      const props = (s.properties as Record<string, JsonSchema> | undefined) ?? {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const sub =
          props[k] ??
          (s.additionalProperties && typeof s.additionalProperties === 'object' ? (s.additionalProperties as JsonSchema) : undefined);
        walk(sub, v, `${pointer}/${esc(k)}`, value, k);
      }
    }
    // a oneOf/anyOf (a schedule given as a cron string or as an object): the alternatives of the value's own kind
    for (const sub of [...((s.oneOf as JsonSchema[] | undefined) ?? []), ...((s.anyOf as JsonSchema[] | undefined) ?? [])])
      if (kindMatches(sub, value)) walk(sub, value, pointer, parent, key);
    for (const sub of (s.allOf as JsonSchema[] | undefined) ?? []) {
      if (sub.if)
        walk((conditionHolds(sub.if as JsonSchema, value) ? sub.then : sub.else) as JsonSchema | undefined, value, pointer, parent, key);
      else walk(sub, value, pointer, parent, key);
    }
  };
  walk(schema, data, pointerPrefix, null, null);
  // the same value may be reached through a common and a plugin schema: keep one of each
  const uniq = <T extends { pointer: string }>(xs: T[]): T[] => [...new Map(xs.map((x) => [x.pointer, x])).values()];
  return { secretSources: uniq(out.secretSources), secretValues: uniq(out.secretValues), paths: uniq(out.paths) };
}

export interface SchemaPlugin {
  name: string;
  serviceSchema?: JsonSchema;
  channelSchema?: JsonSchema;
}

/**
 * The schema of one entry of a given type: the common keys plus the plugin's own, nothing
 * else. Each service and channel is checked against its type's entry schema on its own, so
 * that start-up loads only the validators of the types in use, and a plugins.d plugin never
 * makes the whole config schema change.
 */
export function entrySchema(kind: 'service' | 'channel', own: JsonSchema | undefined): JsonSchema {
  const { properties, required, ...rest } = (own ?? {}) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
    [k: string]: unknown;
  };
  return expandSecrets({
    ...rest,
    type: 'object',
    properties: { ...(kind === 'service' ? COMMON_SERVICE_PROPERTIES : COMMON_CHANNEL_PROPERTIES), ...(properties ?? {}) },
    required: ['name', 'type', ...(required ?? [])],
    additionalProperties: false,
  });
}

/** Keys a hypervisor plugin adds to the `backup:` section (HypervisorPluginDefinition.backupSchema), as admitted by configPlugins(). */
export interface BackupKeys {
  plugin: string;
  keys: Record<string, JsonSchema>;
}

/**
 * The schema of the config itself; services and channels are checked here for their common
 * keys only (see entrySchema). The `backup:` section also takes the keys hypervisor plugins
 * declare (each checked against its plugin's schema, in the same pass, so that an unknown
 * key still gets its did-you-mean among them). The build precompiles this schema as made
 * with the built-in plugins (scripts/precompile.js), so it must be made the same way at run
 * time: in discovery order, keys in the plugin's order.
 */
export function buildConfigSchema(backupKeys: BackupKeys[] = []): JsonSchema {
  const schema = coreConfigSchema();
  const backup = (schema.properties as Record<string, JsonSchema>).backup.properties as Record<string, JsonSchema>;
  // a plugin never replaces a key of ours, nor one an earlier plugin declared (configPlugins() warns about both)
  for (const b of backupKeys)
    for (const [key, s] of Object.entries(b.keys)) if (!Object.hasOwn(backup, key)) backup[key] = expandSecrets(s);
  return schema;
}

/** The keys of `backup:` that belong to homelab-autopilot itself. */
export function coreBackupKeys(): string[] {
  return Object.keys((coreConfigSchema().properties as Record<string, JsonSchema>).backup.properties as Record<string, JsonSchema>);
}
