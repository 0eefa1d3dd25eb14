/**
 * The schema literals of the config file, one function per section: version, global, backup
 * (with its guests and destinations), notifications, updates, plugins, services; monitoring,
 * schedules, daemon and metrics are in ops-sections.ts.
 * Data only: schema.ts assembles the whole (buildConfigSchema, with the plugins' backup: keys);
 * the keys common to every service and channel are in entries.ts.
 *
 * The build precompiles the config schema (scripts/precompile.js) and finds it again by a hash
 * of its JSON (validators.ts schemaKey): a change here, even to the order of keys, is a new
 * schema, compiled at each start until the next build. Each section is a function so that
 * every call makes fresh objects: buildConfigSchema adds the plugins' keys to `backup:`.
 */
import type { JsonSchema } from '../plugins/contract';
import { COMMON_SERVICE_PROPERTIES, COMMON_CHANNEL_PROPERTIES, NAME_PATTERN, keepSchema } from './entries';
import { daemonSection, metricsSection, monitoringSection, schedulesSection } from './ops-sections';
import { expandSecrets } from './secrets-schema';

const STORAGE_PATTERN = '^[a-zA-Z][a-zA-Z0-9._-]*$';

/** The schema of the config file with the core's keys only (buildConfigSchema adds the plugins'). */
export function coreConfigSchema(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['services'],
    // x-* keys are free, for YAML anchors shared by several services (as in compose files)
    patternProperties: { '^x-': {} },
    properties: {
      version: versionSection(),
      global: globalSection(),
      backup: backupSection(),
      notifications: notificationsSection(),
      monitoring: monitoringSection(),
      updates: updatesSection(),
      schedules: expandSecrets(schedulesSection()),
      daemon: expandSecrets(daemonSection()),
      metrics: metricsSection(),
      plugins: pluginsSection(),
      services: servicesSection(),
    },
  };
}

/** `version:` the format of the file (migrate.ts). */
function versionSection(): JsonSchema {
  return {
    type: 'integer',
    minimum: 1,
    default: 1,
    description: 'the format of this file; an older one is migrated in memory (with a warning), a newer one is refused',
  };
}

/** `global:` state and log folders, logging, locks, plugins.d. */
function globalSection(): JsonSchema {
  return {
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
  };
}

/** `backup:` (hypervisor plugins add their own keys: buildConfigSchema). */
function backupSection(): JsonSchema {
  return {
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
      require_mount: {
        type: 'boolean',
        default: false,
        description: 'refuse to write when root is not a mounted file system of its own (an unmounted backup disk)',
      },
      compression: { enum: ['zstd', 'gzip'], default: 'zstd' },
      compression_level: { type: 'integer', minimum: 1, maximum: 19 },
      compression_threads: { type: 'integer', minimum: 0, maximum: 64, default: 1 },
      verify: { type: 'boolean', default: true },
      timeout: { type: 'integer', minimum: 1, default: 21600 },
      retention: { ...keepSchema, default: { keep_last: 7 } },
      guests: guestsSection(),
      destinations: destinationsSection(),
    },
  };
}

/** `backup.guests`: native backups of hypervisor guests. */
function guestsSection(): JsonSchema {
  return {
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
        description: "the hypervisor storage guests go to when neither the service nor a hypervisor plugin's backup: keys choose another",
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
  };
}

/** `backup.destinations`: further folders each archive is copied to. */
function destinationsSection(): JsonSchema {
  return {
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
        require_mount: {
          type: 'boolean',
          default: false,
          description: 'refuse to copy when path is not a mounted file system of its own (an unmounted disk or share)',
        },
      },
    },
  };
}

/** `notifications:` the engine's timing; channels are checked by type (entrySchema). */
function notificationsSection(): JsonSchema {
  return {
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
  };
}

/** `updates:` defaults of the update engine. */
function updatesSection(): JsonSchema {
  return {
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
  };
}

/** `plugins:` each plugin's options, checked against its own schema (validate.ts). */
function pluginsSection(): JsonSchema {
  return {
    type: 'object',
    default: {},
    additionalProperties: { type: 'object' },
    description: 'options for each plugin, under its name, checked against the plugin options schema',
  };
}

/** `services:` only what finds each entry's type; the entry is checked against its type's schema (entrySchema). */
function servicesSection(): JsonSchema {
  return {
    type: 'array',
    // each entry is checked against its type's entry schema (common keys + the plugin's): here only what finds that type
    items: {
      type: 'object',
      required: ['name', 'type'],
      properties: { name: COMMON_SERVICE_PROPERTIES.name, type: COMMON_SERVICE_PROPERTIES.type },
    },
  };
}
