/**
 * The schema literals of the sections that run the tool over time: `monitoring:` (the
 * monitor engine), `schedules:` (the daemon's jobs and dead-man pings), `daemon:` (its HTTP
 * endpoint) and `metrics:` (the textfile for node_exporter). Data only, as sections.ts.
 */
import type { JsonSchema } from '../plugins/contract';
import { DURATION_SCHEMA, EXTERNAL_SCHEMA, HEALTH_CHECKS_SCHEMA } from '../health/schema';
import { DEPENDS_ON_SCHEMA, NAME_PATTERN } from './entries';

const percent = (def: number, description: string): JsonSchema => ({
  type: 'number',
  exclusiveMinimum: 0,
  maximum: 100,
  default: def,
  description,
});

const CRON_SCHEMA: JsonSchema = {
  type: 'string',
  minLength: 9,
  maxLength: 200,
  pattern: '^[0-9*/,?LW#A-Za-z-]+(\\s+[0-9*/,?LW#A-Za-z-]+){4,5}$',
  description: 'a cron expression: minute hour day month weekday (an optional leading seconds field)',
};

const PING_URL_SCHEMA: JsonSchema = {
  type: 'string',
  pattern: '^https?://',
  'x-secret': true,
  description: 'a dead-man switch pinged by the job (Healthchecks.io style: URL/start, URL, URL/fail; or an Uptime Kuma push URL)',
};

export { EXTERNAL_SCHEMA };

/** `monitoring:` defaults of every check, targets that are not services, resources, maintenance windows. */
export function monitoringSection(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    description: 'the monitor engine: health checks of services and targets, resources, maintenance windows',
    properties: {
      interval: { ...DURATION_SCHEMA, default: 60, description: 'how often a check runs unless it says otherwise' },
      timeout: {
        type: 'number',
        exclusiveMinimum: 0,
        maximum: 300,
        default: 10,
        description: 'seconds a check may take unless it says otherwise',
      },
      failure_threshold: { type: 'integer', minimum: 1, maximum: 100, default: 3, description: 'failures in a row before a check is DOWN' },
      recovery_threshold: {
        type: 'integer',
        minimum: 1,
        maximum: 100,
        default: 1,
        description: 'successes in a row before a DOWN check is UP',
      },
      concurrency: { type: 'integer', minimum: 1, maximum: 1000, default: 50, description: 'checks that run at once' },
      flapping: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'more than `changes` changes between UP and DOWN within `window`: FLAPPING, one alert',
        properties: {
          changes: { type: 'integer', minimum: 2, maximum: 1000, default: 5 },
          window: { ...DURATION_SCHEMA, default: 3600 },
        },
      },
      retention: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          raw: { ...DURATION_SCHEMA, default: '24h', description: 'every result is kept this long, then only hourly aggregates' },
          hourly: { ...DURATION_SCHEMA, default: '30d', description: 'hourly aggregates are kept this long, then only daily ones' },
          daily: { ...DURATION_SCHEMA, default: '400d', description: 'daily aggregates are kept this long' },
        },
      },
      targets: {
        type: 'array',
        default: [],
        description: 'things to watch that are not services (a router, a NAS): a name, health checks and what they depend on',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'health_checks'],
          properties: {
            name: { type: 'string', pattern: NAME_PATTERN },
            description: { type: 'string' },
            enabled: { type: 'boolean', default: true },
            health_checks: HEALTH_CHECKS_SCHEMA,
            depends_on: DEPENDS_ON_SCHEMA,
            external: EXTERNAL_SCHEMA,
          },
        },
      },
      resources: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description:
          'free space of the backup root, every destination and the mounts named here (with days until full), host memory and load, hypervisor nodes',
        properties: {
          enabled: { type: 'boolean', default: true },
          interval: { ...DURATION_SCHEMA, default: 300 },
          mounts: { type: 'array', default: [], items: { type: 'string', minLength: 1, 'x-path': true } },
          disk_warn_percent: percent(85, 'used space that raises a warning'),
          disk_critical_percent: percent(95, 'used space that raises a critical alert'),
          forecast_warn_days: {
            type: 'integer',
            minimum: 0,
            maximum: 3650,
            default: 7,
            description: 'warn when a file system fills within this many days at its current growth (0: never)',
          },
          memory_warn_percent: percent(90, 'used memory that raises a warning'),
          load_warn_per_cpu: {
            type: 'number',
            exclusiveMinimum: 0,
            default: 2,
            description: '15-minute load per CPU that raises a warning',
          },
          nodes: {
            type: 'boolean',
            default: true,
            description: "hypervisor nodes' CPU, memory, root disk and storages (through the hypervisor plugin)",
          },
        },
      },
      maintenance: {
        type: 'array',
        default: [],
        description: 'recurring windows in which checks are MAINTENANCE, not DOWN',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['cron', 'duration'],
          properties: {
            name: { type: 'string', minLength: 1 },
            services: {
              type: 'array',
              items: { type: 'string', pattern: NAME_PATTERN },
              minItems: 1,
              description: 'services or targets (default: all)',
            },
            cron: CRON_SCHEMA,
            duration: DURATION_SCHEMA,
          },
        },
      },
    },
  };
}

/** A job the daemon runs: a cron expression, or the expression with its options. */
function jobSchedule(description: string): JsonSchema {
  return {
    description,
    oneOf: [
      CRON_SCHEMA,
      {
        type: 'object',
        additionalProperties: false,
        properties: {
          cron: CRON_SCHEMA,
          enabled: { type: 'boolean', default: true },
          args: {
            type: 'array',
            items: { type: 'string', minLength: 1, pattern: '^[^\\n]*$' },
            description: 'arguments of the job instead of its default (backup: ["--all"])',
          },
          timeout: { ...DURATION_SCHEMA, description: 'the job is stopped (SIGTERM, then SIGKILL) when it runs longer' },
          catch_up: {
            type: 'boolean',
            description: 'run once at start when a run was missed while the daemon was down (default schedules.catch_up)',
          },
          ping_url: PING_URL_SCHEMA,
        },
      },
    ],
  };
}

/** `schedules:` what the daemon runs and when; `ping_url`s are pinged by cron-started runs too. */
export function schedulesSection(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    description: 'the jobs the daemon runs (node-cron expressions) and their dead-man pings',
    properties: {
      timezone: { type: 'string', minLength: 1, description: 'an IANA time zone for the expressions (default: the system one)' },
      catch_up: { type: 'boolean', default: true, description: 'a run missed while the daemon was down runs once at start' },
      backup: jobSchedule('backup --all'),
      update: jobSchedule('update --all'),
      restore_test: jobSchedule('restore-test --all'),
      monitor: {
        description: 'the monitor in the daemon: true, or its default check interval, or an object with a ping_url pinged after each pass',
        oneOf: [
          { type: 'boolean' },
          DURATION_SCHEMA,
          {
            type: 'object',
            additionalProperties: false,
            properties: {
              enabled: { type: 'boolean', default: true },
              interval: DURATION_SCHEMA,
              ping_url: PING_URL_SCHEMA,
            },
          },
        ],
      },
    },
  };
}

/** `daemon:` its HTTP endpoint (metrics, health, status) and its shutdown. */
export function daemonSection(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      listen: {
        type: 'string',
        minLength: 1,
        pattern: '^[0-9A-Fa-f.:\\[\\]a-z-]+$',
        default: '127.0.0.1',
        description: 'the address of /metrics, /healthz and /status; any address but loopback needs `token`',
      },
      port: { type: 'integer', minimum: 0, maximum: 65535, default: 9798, description: '0: no HTTP endpoint' },
      token: { type: 'string', minLength: 16, 'x-secret': true, description: 'the bearer token the endpoint asks for' },
      shutdown_timeout: {
        type: 'integer',
        minimum: 1,
        maximum: 86400,
        default: 300,
        description: 'seconds running jobs get after SIGTERM before they are signalled (an update then rolls back)',
      },
    },
  };
}

/** `metrics:` the same metrics as the daemon's, written for node_exporter's textfile collector. */
export function metricsSection(): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    properties: {
      textfile: {
        type: 'string',
        minLength: 1,
        pattern: '\\.prom$',
        'x-path': true,
        description: "a .prom file in node_exporter's textfile directory, rewritten atomically after every job",
      },
    },
  };
}
