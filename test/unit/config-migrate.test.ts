import * as path from 'node:path';
import { readRawConfig, validateConfig } from '../../core/config/load';
import { CONFIG_VERSION, MIGRATIONS, migrateConfig, type Migration } from '../../core/config/migrate';
import { configPlugins } from '../../core/config/plugins';
import { AutopilotError } from '../../lib/errors';
import { cleanupTmp, tmpDir, write } from '../helpers/cli';

const savedCache = process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
beforeAll(() => {
  process.env.HOMELAB_AUTOPILOT_CACHE_DIR = ''; // the config schema is compiled here (no build): keep nothing
});
afterAll(() => {
  if (savedCache === undefined) delete process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
  else process.env.HOMELAB_AUTOPILOT_CACHE_DIR = savedCache;
  cleanupTmp();
});

/**
 * The config's `version:` and its migrations (zigbee2mqtt's settingsMigration): a table of
 * version N -> N+1 steps applied in memory before validation. The real table is empty at
 * version 1; the mechanism is tested with a table of its own.
 */

// a pretend version 2, which renamed backup.archive_dir to backup.root
const RENAME: Migration = {
  from: 1,
  summary: 'backup.archive_dir is now backup.root',
  migrate(_data, ctx) {
    if (ctx.move(['backup', 'archive_dir'], ['backup', 'root'])) ctx.note('rename backup.archive_dir to backup.root');
  },
};
// and a version 3 that changed nothing the file has (its summary is the note)
const NOTHING: Migration = { from: 2, summary: 'monitoring keys reserved', migrate: () => undefined };

function file(text: string): string {
  return write(path.join(tmpDir(), 'ha.yaml'), text);
}

const noPlugins = configPlugins([]);

describe('config version and migrations', () => {
  it('is at version 1 with nothing to migrate', () => {
    expect(CONFIG_VERSION).toBe(1);
    expect(MIGRATIONS).toEqual([]);
  });

  it('a file without version: is version 1, and version: 1 is accepted, defaulted and kept', async () => {
    const f = file('backup:\n  root: ./a\nservices: []\n');
    const raw = readRawConfig({ file: f, via: 'flag' }, {});
    expect(raw.fileVersion).toBe(1);
    expect(raw.warnings).toEqual([]);
    const loaded = await validateConfig(raw, noPlugins);
    expect(loaded.config.version).toBe(1);
    const f2 = file('version: 1\nservices: []\n');
    expect((await validateConfig(readRawConfig({ file: f2, via: 'flag' }, {}), noPlugins)).warnings).toEqual([]);
  });

  it('migrates an older file in memory, with a warning that says how to update it', async () => {
    const f = file('version: 1\nbackup:\n  archive_dir: ./archives\nservices: []\n');
    const raw = readRawConfig({ file: f, via: 'flag' }, {}, { migrations: [RENAME, NOTHING], current: 3 });
    expect(raw.fileVersion).toBe(1);
    expect(raw.data).toEqual({ version: 3, backup: { root: './archives' }, services: [] });
    expect(raw.warnings).toHaveLength(1);
    expect(raw.warnings[0]).toBe(
      `${f}:1:10: version: 1: this file is in config format version 1; homelab-autopilot now reads version 3 and migrated it in memory. ` +
        "To update the file (and silence this warning): rename backup.archive_dir to backup.root; monitoring keys reserved; then set 'version: 3' at the top",
    );
    // the migrated data validates (the real schema takes any version it is given once migrated)
    const loaded = await validateConfig(raw, noPlugins);
    expect(loaded.config.backup.root).toBe(path.join(path.dirname(f), 'archives'));
    expect(loaded.warnings).toContain(raw.warnings[0]);
  });

  it('a file without version: is migrated from 1, and the warning names the file', () => {
    const f = file('backup:\n  archive_dir: ./archives\nservices: []\n');
    const raw = readRawConfig({ file: f, via: 'flag' }, {}, { migrations: [RENAME], current: 2 });
    expect(raw.warnings[0]).toMatch(
      new RegExp(`^${f}: \\(no version: key, so version 1\\): .*rename backup.archive_dir to backup.root; then set 'version: 2'`),
    );
  });

  it('an error in a moved value is reported where the file has it', async () => {
    const f = file('version: 1\nbackup:\n  compression: zstd\n  archive_dir: 42\nservices: []\n');
    const raw = readRawConfig({ file: f, via: 'flag' }, {}, { migrations: [RENAME], current: 2 });
    await expect(validateConfig(raw, noPlugins)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      details: [`${f}:4:16: backup.root: must be string (got number 42)`],
    });
  });

  it('an unknown key below a moved mapping is located at its own line', async () => {
    const move: Migration = { from: 1, summary: 'x', migrate: (_d, ctx) => void ctx.move(['old_global'], ['global']) };
    const f = file('version: 1\nold_global:\n  log_level: info\n  log_levl: debug\nservices: []\n');
    const raw = readRawConfig({ file: f, via: 'flag' }, {}, { migrations: [move], current: 2 });
    await expect(validateConfig(raw, noPlugins)).rejects.toMatchObject({
      details: [expect.stringContaining(`${f}:4:3: global.log_levl: unknown key 'log_levl' (did you mean 'log_level'?)`)],
    });
  });

  it('a file newer than this homelab-autopilot is refused, naming the line and what to do', () => {
    const f = file('services: []\nversion: 3\n');
    let err: AutopilotError | undefined;
    try {
      readRawConfig({ file: f, via: 'flag' }, {});
    } catch (e) {
      err = e as AutopilotError;
    }
    expect(err).toBeInstanceOf(AutopilotError);
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.exitCode).toBe(2);
    expect(err?.details).toEqual([
      `${f}:2:10: version: this file is in config format version 3, but this homelab-autopilot reads versions up to 1`,
    ]);
    expect(err?.hint).toMatch(/^upgrade homelab-autopilot/);
  });

  it("a version that is not a whole number is the schema's to report", async () => {
    const f = file('version: "2"\nservices: []\n');
    const raw = readRawConfig({ file: f, via: 'flag' }, {});
    await expect(validateConfig(raw, noPlugins)).rejects.toMatchObject({
      details: [`${f}:1:10: version: must be integer (got string "2")`],
    });
    const f0 = file('version: 0\nservices: []\n');
    await expect(validateConfig(readRawConfig({ file: f0, via: 'flag' }, {}), noPlugins)).rejects.toMatchObject({
      details: [`${f0}:1:10: version: must be >= 1 (got 0)`],
    });
  });

  it('a gap in the table is a bug of ours', () => {
    expect(() => migrateConfig({ version: 1 }, () => ({ file: 'x' }), 'x', { migrations: [NOTHING], current: 3 })).toThrow(
      expect.objectContaining({ code: 'INTERNAL' }),
    );
  });
});
