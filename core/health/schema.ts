/** The JSON schema of `health_checks` (kept apart from the checks, so that loading the config loads no network modules). */
export const HEALTH_CHECKS_SCHEMA = {
  type: 'array',
  description: 'how to tell the service is healthy (update validation; the monitor later)',
  items: {
    type: 'object',
    required: ['type'],
    additionalProperties: false,
    properties: {
      type: { enum: ['http', 'tcp', 'command', 'running'] },
      name: { type: 'string', minLength: 1 },
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
      host: { type: 'string', minLength: 1 },
      port: { type: 'integer', minimum: 1, maximum: 65535 },
      command: { type: ['string', 'array'], items: { type: 'string' }, minLength: 1 },
      expect_exit: { type: 'integer', minimum: 0, maximum: 255 },
      timeout: { type: 'number', exclusiveMinimum: 0, maximum: 300, description: 'seconds (default 5; command: 30)' },
    },
    allOf: [
      { if: { properties: { type: { const: 'http' } } }, then: { required: ['url'] } },
      { if: { properties: { type: { const: 'tcp' } } }, then: { required: ['host', 'port'] } },
      { if: { properties: { type: { const: 'command' } } }, then: { required: ['command'] } },
    ],
  },
};
