import { buildConfigSchema, coreBackupKeys, entrySchema } from '../../core/config/schema';
import { coreConfigSchema } from '../../core/config/sections';
import { schemaKey } from '../../core/config/validators';
import type { JsonSchema } from '../../core/plugins/contract';

/**
 * The config schema is assembled from one function per section (core/config/sections.ts). The
 * build precompiles it and finds it again by a hash of its JSON (schemaKey), so its JSON, key
 * order included, must come out the same on every call and in the documented order; and since
 * buildConfigSchema adds the plugins' keys to `backup:`, each call must make fresh objects.
 */

const props = (s: JsonSchema): Record<string, JsonSchema> => s.properties as Record<string, JsonSchema>;

describe('config schema sections', () => {
  it('has the sections in their order', () => {
    const schema = buildConfigSchema();
    expect(Object.keys(schema)).toEqual(['type', 'additionalProperties', 'required', 'patternProperties', 'properties']);
    expect(Object.keys(props(schema))).toEqual([
      'version',
      'global',
      'backup',
      'notifications',
      'monitoring',
      'updates',
      'schedules',
      'daemon',
      'metrics',
      'plugins',
      'services',
    ]);
    expect(Object.keys(props(props(schema).global))).toEqual([
      'state_dir',
      'log_dir',
      'log_level',
      'log_format',
      'log_max_size_mb',
      'log_max_files',
      'lock_wait',
      'plugins_dir',
    ]);
    expect(coreBackupKeys()).toEqual([
      'root',
      'require_mount',
      'compression',
      'compression_level',
      'compression_threads',
      'verify',
      'timeout',
      'retention',
      'guests',
      'destinations',
    ]);
    expect(Object.keys(props(props(schema).backup).guests)).toEqual([
      'type',
      'additionalProperties',
      'default',
      'description',
      'properties',
    ]);
    expect(Object.keys(props(props(schema).notifications))).toEqual(['cooldown', 'repeat_interval', 'digest', 'timeout', 'channels']);
    expect(Object.keys(props(props(schema).updates))).toEqual([
      'settle_seconds',
      'check_interval',
      'keep_snapshots',
      'timeout',
      'min_free_mb',
      'lock_wait',
      'parallel',
    ]);
  });

  it('is the same JSON on every call, with or without plugin keys', () => {
    const keys = [{ plugin: 'p', keys: { p_storage: { type: 'object', properties: { token: { type: 'string', 'x-secret': true } } } } }];
    expect(JSON.stringify(buildConfigSchema())).toBe(JSON.stringify(coreConfigSchema()));
    expect(schemaKey(buildConfigSchema(keys))).toBe(schemaKey(buildConfigSchema(keys)));
    expect(schemaKey(entrySchema('service', undefined))).toBe(schemaKey(entrySchema('service', undefined)));
  });

  it("adds the plugins' backup: keys after the core's, in order, without touching the next schema made", () => {
    const withKeys = buildConfigSchema([
      { plugin: 'a', keys: { root: { type: 'integer' }, a_key: { type: 'string' } } },
      { plugin: 'b', keys: { a_key: { type: 'integer' }, b_key: { type: 'string' } } },
    ]);
    const backup = props(props(withKeys).backup);
    expect(Object.keys(backup)).toEqual([...coreBackupKeys(), 'a_key', 'b_key']);
    expect(backup.root).toEqual(props(props(coreConfigSchema()).backup).root);
    expect(backup.a_key).toEqual({ type: 'string' });
    expect(Object.keys(props(props(buildConfigSchema()).backup))).toEqual(coreBackupKeys());
    expect(Object.keys(props(props(coreConfigSchema()).backup))).toEqual(coreBackupKeys());
  });
});
