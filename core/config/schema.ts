/**
 * The configuration schema: one JSON Schema for the whole file, extended with each
 * service plugin's own keys, and the ajv set-up that validates it with all errors.
 */
import type { JsonSchema } from '../plugins/contract';
import { HEALTH_CHECKS_SCHEMA } from '../health/schema';

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

/**
 * Rewrites `"x-secret": true` properties so that `<name>_file` and `<name>_command` are
 * accepted in their place (at most one of the three), including where `<name>` is required.
 */
export function expandSecrets(schema: JsonSchema): JsonSchema {
  if (!schema || typeof schema !== 'object') return schema;
  const out: JsonSchema = { ...schema };
  for (const key of ['items', 'additionalProperties', 'then', 'else', 'if', 'not']) {
    if (out[key] && typeof out[key] === 'object' && !Array.isArray(out[key])) out[key] = expandSecrets(out[key] as JsonSchema);
  }
  for (const key of ['allOf', 'anyOf', 'oneOf']) {
    if (Array.isArray(out[key])) out[key] = (out[key] as JsonSchema[]).map(expandSecrets);
  }
  if (out.properties && typeof out.properties === 'object') {
    const props: Record<string, JsonSchema> = {};
    const secretNames: string[] = [];
    for (const [name, sub] of Object.entries(out.properties as Record<string, JsonSchema>)) {
      props[name] = expandSecrets(sub);
      if (sub && sub['x-secret'] === true) {
        secretNames.push(name);
        props[`${name}_file`] = {
          type: 'string',
          minLength: 1,
          'x-path': true,
          'x-secret-source': 'file',
          description: `a file holding ${name} (read at start; should not be readable by group or others)`,
        };
        props[`${name}_command`] = {
          type: ['string', 'array'],
          items: { type: 'string' },
          minLength: 1,
          'x-secret-source': 'command',
          description: `a command that prints ${name} (run without a shell)`,
        };
      }
    }
    out.properties = props;
    if (secretNames.length) {
      const required = Array.isArray(out.required) ? (out.required as string[]) : [];
      const allOf = Array.isArray(out.allOf) ? [...(out.allOf as JsonSchema[])] : [];
      for (const name of secretNames) {
        const variants = [name, `${name}_file`, `${name}_command`];
        // at most one way of giving it
        allOf.push({
          not: {
            anyOf: [
              { required: [variants[0], variants[1]] },
              { required: [variants[0], variants[2]] },
              { required: [variants[1], variants[2]] },
            ],
          },
          'x-doc': `one-of:${variants.join(',')}`,
        });
        if (required.includes(name))
          allOf.push({ anyOf: variants.map((v) => ({ required: [v] })), 'x-doc': `required:${variants.join(',')}` });
      }
      out.required = required.filter((r) => !secretNames.includes(r));
      if ((out.required as string[]).length === 0) delete out.required;
      out.allOf = allOf;
    }
  }
  return out;
}

const keepSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly'].map((k) => [
      k,
      { type: 'integer', minimum: 0 },
    ]),
  ),
};

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
const STORAGE_PATTERN = '^[a-zA-Z][a-zA-Z0-9._-]*$';

/** Keys every service may set, whatever its type. */
export const COMMON_SERVICE_PROPERTIES: Record<string, JsonSchema> = {
  name: { type: 'string', pattern: NAME_PATTERN },
  type: { type: 'string', minLength: 1 },
  enabled: { type: 'boolean', default: true },
  backup: { type: 'boolean', default: true },
  description: { type: 'string' },
  retention: keepSchema,
  timeout: { type: 'integer', minimum: 1, description: 'seconds the backup of this service may take' },
  health_checks: HEALTH_CHECKS_SCHEMA,
  update: {
    type: 'object',
    additionalProperties: false,
    description: 'how this service is updated (the update command)',
    properties: {
      enabled: { type: 'boolean', default: true, description: 'false: left out of update --all, refused when named' },
      settle_seconds: {
        type: 'integer',
        minimum: 0,
        maximum: 3600,
        description: 'how long health checks are retried after the update (default updates.settle_seconds)',
      },
      check_interval: { type: 'integer', minimum: 1, maximum: 300 },
      keep_snapshots: { type: 'integer', minimum: 1, maximum: 100 },
      timeout: { type: 'integer', minimum: 1, maximum: 86400, description: 'seconds the update step may take' },
      min_free_mb: { type: 'integer', minimum: 0 },
      command: {
        description: 'guests: the commands run inside the guest, in order (default: apt-get update, then a non-interactive dist-upgrade)',
        type: 'array',
        minItems: 1,
        items: { type: ['string', 'array'], items: { type: 'string' }, minLength: 1, minItems: 1 },
      },
    },
  },
};

export const EVENT_TYPES = [
  'backup_success',
  'backup_failed',
  'update_success',
  'update_failed',
  'rollback_executed',
  'service_down',
  'service_recovered',
  'external_access_failed',
  'disk_space_warning',
  'restore_test_passed',
  'restore_test_failed',
  'failover_executed',
] as const;

/** Keys every notification channel may set, whatever its type. */
export const COMMON_CHANNEL_PROPERTIES: Record<string, JsonSchema> = {
  name: { type: 'string', pattern: NAME_PATTERN },
  type: { type: 'string', minLength: 1 },
  enabled: { type: 'boolean', default: true },
  events: {
    type: 'array',
    items: { enum: [...EVENT_TYPES] },
    uniqueItems: true,
    description: 'the event types this channel gets (default: all of at least min_severity)',
  },
  min_severity: { enum: ['info', 'warning', 'critical'], default: 'warning' },
  title_template: { type: 'string', minLength: 1 },
  text_template: { type: 'string', minLength: 1 },
  timeout: { type: 'integer', minimum: 1, maximum: 600, description: 'seconds this channel may take, retries included' },
};

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

function coreConfigSchema(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['services'],
    // x-* keys are free, for YAML anchors shared by several services (as in compose files)
    patternProperties: { '^x-': {} },
    properties: {
      version: {
        type: 'integer',
        minimum: 1,
        default: 1,
        description: 'the format of this file; an older one is migrated in memory (with a warning), a newer one is refused',
      },
      global: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          state_dir: { type: 'string', minLength: 1, default: '/var/lib/homelab-autopilot', 'x-path': true },
          log_dir: { type: 'string', minLength: 1, default: '/var/log/homelab-autopilot', 'x-path': true },
          log_level: { enum: ['error', 'warn', 'info', 'debug'], default: 'info' },
          log_format: { enum: ['human', 'json'], default: 'human' },
          log_max_size_mb: { type: 'integer', minimum: 1, default: 10 },
          log_max_files: { type: 'integer', minimum: 1, default: 5 },
          lock_wait: { type: 'integer', minimum: 0, default: 0, description: 'seconds a run waits for another run of the same job' },
          plugins_dir: { type: 'string', minLength: 1, 'x-path': true },
        },
      },
      backup: {
        type: 'object',
        additionalProperties: false,
        default: {},
        allOf: [
          {
            if: { properties: { compression: { const: 'gzip' } }, required: ['compression'] },
            then: { properties: { compression_level: { maximum: 9 } } },
          },
        ],
        properties: {
          root: { type: 'string', minLength: 1, default: '/var/backups/homelab-autopilot', 'x-path': true },
          compression: { enum: ['zstd', 'gzip'], default: 'zstd' },
          compression_level: { type: 'integer', minimum: 1, maximum: 19 },
          compression_threads: { type: 'integer', minimum: 0, maximum: 64, default: 1 },
          verify: { type: 'boolean', default: true },
          timeout: { type: 'integer', minimum: 1, default: 21600 },
          retention: { ...keepSchema, default: { keep_last: 7 } },
          guests: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description:
              "native backups of hypervisor guests, made by the hypervisor (a hypervisor plugin's own backup: keys may choose another storage)",
            properties: {
              storage: {
                type: 'string',
                pattern: STORAGE_PATTERN,
                default: 'local',
                description:
                  "the hypervisor storage guests go to when neither the service nor a hypervisor plugin's backup: keys choose another",
              },
              path: {
                type: 'string',
                minLength: 1,
                'x-path': true,
                description: 'where this host sees that storage (e.g. /var/lib/vz on the node itself), for the decompress test',
              },
              mode: { enum: ['snapshot', 'suspend', 'stop'], default: 'snapshot' },
              compress: { enum: ['zstd', 'gzip', 'lzo', 'none'], default: 'zstd' },
              parallel_nodes: {
                type: 'integer',
                minimum: 0,
                default: 0,
                description: 'nodes backed up at once (one guest backup per node at a time); 0: all',
              },
              notes_template: { type: 'string', maxLength: 1024, pattern: '^[^\\n]*$', default: '{{guestname}} (homelab-autopilot)' },
              protected: { type: 'boolean', default: false },
            },
          },
          destinations: {
            type: 'array',
            default: [],
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'path'],
              properties: {
                name: { type: 'string', pattern: NAME_PATTERN },
                path: { type: 'string', minLength: 1, 'x-path': true },
                retention: keepSchema,
                enabled: { type: 'boolean', default: true },
              },
            },
          },
        },
      },
      notifications: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          cooldown: {
            type: 'integer',
            minimum: 0,
            default: 3600,
            description: 'seconds before the same event about the same subject is sent again',
          },
          repeat_interval: {
            type: 'integer',
            minimum: 0,
            default: 86400,
            description: 'seconds before a failure that persists is sent again',
          },
          digest: { type: 'boolean', default: true, description: 'backup --all sends one message per run instead of one per service' },
          timeout: { type: 'integer', minimum: 1, maximum: 600, default: 30, description: 'seconds a channel may take, retries included' },
          channels: {
            type: 'array',
            default: [],
            items: {
              type: 'object',
              required: ['name', 'type'],
              properties: { name: COMMON_CHANNEL_PROPERTIES.name, type: COMMON_CHANNEL_PROPERTIES.type },
            },
          },
        },
      },
      monitoring: {
        type: 'object',
        additionalProperties: false,
        properties: {},
        description: 'reserved: health checks arrive with the monitor engine',
      },
      updates: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'defaults of the update engine',
        properties: {
          settle_seconds: {
            type: 'integer',
            minimum: 0,
            maximum: 3600,
            default: 60,
            description: 'how long health checks are retried after an update before it counts as failed',
          },
          check_interval: {
            type: 'integer',
            minimum: 1,
            maximum: 300,
            default: 5,
            description: 'seconds between two rounds of health checks',
          },
          keep_snapshots: {
            type: 'integer',
            minimum: 1,
            maximum: 100,
            default: 3,
            description: 'autopilot snapshots kept per service after a good update',
          },
          timeout: {
            type: 'integer',
            minimum: 1,
            maximum: 86400,
            default: 1800,
            description: 'seconds the update step of a service may take',
          },
          min_free_mb: { type: 'integer', minimum: 0, default: 1024, description: 'free space needed for the snapshot' },
          lock_wait: {
            type: 'integer',
            minimum: 0,
            default: 0,
            description: 'seconds to wait when another update of the same service runs',
          },
          parallel: {
            type: 'integer',
            minimum: 1,
            maximum: 16,
            default: 1,
            description: 'services update --all updates at once (1: one after the other)',
          },
        },
      },
      plugins: {
        type: 'object',
        default: {},
        additionalProperties: { type: 'object' },
        description: 'options for each plugin, under its name, checked against the plugin options schema',
      },
      services: {
        type: 'array',
        // each entry is checked against its type's entry schema (common keys + the plugin's): here only what finds that type
        items: {
          type: 'object',
          required: ['name', 'type'],
          properties: { name: COMMON_SERVICE_PROPERTIES.name, type: COMMON_SERVICE_PROPERTIES.type },
        },
      },
    },
  };
}
