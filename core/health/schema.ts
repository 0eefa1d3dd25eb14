/**
 * The JSON schema of `health_checks` (kept apart from the checks, so that loading the config
 * loads no network modules). The same checks validate an update and feed the monitor; the
 * monitor's timing keys (interval, failure_threshold, recovery_threshold) are ignored by the
 * update engine, which retries for its own settle_seconds.
 */

/** A duration: whole seconds, or a number with a unit (`90s`, `30m`, `26h`, `7d`). */
export const DURATION_SCHEMA = {
  oneOf: [
    { type: 'integer', minimum: 1 },
    { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?\\s*(s|m|h|d|w)$' },
  ],
  description: 'seconds, or a number with a unit: 90s, 30m, 26h, 7d, 2w',
};

export const CHECK_TYPES = ['http', 'tcp', 'icmp', 'dns', 'tls', 'command', 'running', 'backup'] as const;

export const HEALTH_CHECKS_SCHEMA = {
  type: 'array',
  description: 'how to tell the service is healthy (update validation, and the monitor)',
  items: {
    type: 'object',
    required: ['type'],
    additionalProperties: false,
    properties: {
      type: { enum: [...CHECK_TYPES] },
      name: { type: 'string', minLength: 1, maxLength: 128, description: 'a label for tables and alerts (default: made from the check)' },
      url: { type: 'string', pattern: '^https?://' },
      expect_status: {
        oneOf: [
          { type: 'integer', minimum: 100, maximum: 599 },
          { type: 'array', items: { type: 'integer', minimum: 100, maximum: 599 }, minItems: 1 },
        ],
      },
      body_contains: { type: 'string' },
      body_matches: { type: 'string', minLength: 1, description: 'a JavaScript regular expression' },
      insecure: { type: 'boolean', description: 'accept any TLS certificate (a self-signed one)' },
      ca_file: { type: 'string', minLength: 1, 'x-path': true },
      max_response_ms: { type: 'integer', minimum: 1, description: 'http: an answer slower than this fails' },
      host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9_.:\\[\\]-]+$' },
      port: { type: 'integer', minimum: 1, maximum: 65535 },
      query: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9_.-]+$', description: 'dns: the name to resolve' },
      record_type: { enum: ['A', 'AAAA'], default: 'A', description: 'dns: the record asked for' },
      server: {
        type: 'string',
        minLength: 1,
        pattern: '^[0-9A-Fa-f.:\\[\\]]+$',
        description: 'dns: the server asked (an address, with :port when not 53); default: the system resolver',
      },
      expect: {
        oneOf: [
          { type: 'string', minLength: 1 },
          { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
        ],
        description: 'dns: an address (or several, any of which) the answer must contain',
      },
      warn_days: {
        type: 'integer',
        minimum: 0,
        maximum: 365,
        default: 14,
        description: 'tls: warn this many days before the certificate expires',
      },
      max_age: { ...DURATION_SCHEMA, description: 'backup: the newest verified backup may be this old (e.g. 26h)' },
      command: { type: ['string', 'array'], items: { type: 'string' }, minLength: 1 },
      expect_exit: { type: 'integer', minimum: 0, maximum: 255 },
      timeout: { type: 'number', exclusiveMinimum: 0, maximum: 300, description: 'seconds (default 5; command: 30)' },
      interval: { ...DURATION_SCHEMA, description: 'monitor: how often (default monitoring.interval)' },
      failure_threshold: {
        type: 'integer',
        minimum: 1,
        maximum: 100,
        description: 'monitor: failures in a row before DOWN (default monitoring.failure_threshold)',
      },
      recovery_threshold: { type: 'integer', minimum: 1, maximum: 100, description: 'monitor: successes in a row before UP again' },
      monitor: { type: 'boolean', default: true, description: 'false: used to validate updates only, never by the monitor' },
    },
    allOf: [
      { if: { properties: { type: { const: 'http' } } }, then: { required: ['url'] } },
      { if: { properties: { type: { const: 'tcp' } } }, then: { required: ['host', 'port'] } },
      { if: { properties: { type: { const: 'icmp' } } }, then: { required: ['host'] } },
      { if: { properties: { type: { const: 'dns' } } }, then: { required: ['query'] } },
      { if: { properties: { type: { const: 'tls' } } }, then: { anyOf: [{ required: ['url'] }, { required: ['host'] }] } },
      { if: { properties: { type: { const: 'command' } } }, then: { required: ['command'] } },
      { if: { properties: { type: { const: 'backup' } } }, then: { required: ['max_age'] } },
    ],
  },
};

/** `external:` of a service: its public URL as the outside sees it (DNS, TLS, status), apart from its own checks. */
export const EXTERNAL_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  description: 'the public URL of the service, checked as the outside sees it (DNS, TLS, status)',
  properties: {
    url: { type: 'string', pattern: '^https?://' },
    expect_status: HEALTH_CHECKS_SCHEMA.items.properties.expect_status,
    body_contains: { type: 'string' },
    resolver: {
      type: 'string',
      minLength: 1,
      pattern: '^[0-9A-Fa-f.:\\[\\]]+$',
      description: 'a public DNS server to resolve the name with (default: the system resolver)',
    },
    timeout: { type: 'number', exclusiveMinimum: 0, maximum: 300 },
    interval: DURATION_SCHEMA,
    warn_days: { type: 'integer', minimum: 0, maximum: 365, default: 14 },
  },
};
