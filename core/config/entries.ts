/**
 * What every service and every notification channel may set, whatever its type (a plugin's
 * entry schema adds its own keys: entrySchema in schema.ts), and the schema pieces the config
 * sections share with them (retention, names). Data only. These objects are shared, not
 * copied, by the schemas that use them: never change them in place.
 */
import type { JsonSchema } from '../plugins/contract';
import { EXTERNAL_SCHEMA, HEALTH_CHECKS_SCHEMA } from '../health/schema';

/** The keep_* rules of a retention. */
export const keepSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(
    ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly'].map((k) => [
      k,
      { type: 'integer', minimum: 0 },
    ]),
  ),
};

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';

/** `depends_on:` of a service or a monitoring target. */
export const DEPENDS_ON_SCHEMA: JsonSchema = {
  type: 'array',
  items: { type: 'string', pattern: NAME_PATTERN },
  uniqueItems: true,
  description: 'services or monitoring targets this one needs: while one is DOWN, this one raises no alert of its own',
};

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
  depends_on: DEPENDS_ON_SCHEMA,
  external: EXTERNAL_SCHEMA,
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
  'external_access_restored',
  'resource_threshold',
  'resource_recovered',
  'backup_stale',
  'backup_fresh',
  'certificate_expiring',
  'certificate_renewed',
  'config_reload_failed',
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
