import * as fs from 'node:fs';
import * as path from 'node:path';
import { openApp, type AppNeeds } from '../../core/app';
import { AutopilotError } from '../../lib/errors';
import { silentLogger } from '../../lib/log';
import { cleanupTmp, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

/**
 * openApp opens only what a command needs: `history`, `backups list` and `notifications list`
 * open it with `{ plugins: false, secrets: false }`, and must then run no `*_command` secret
 * (it may prompt for a passphrase) and create no plugin. Plugin options are validated and
 * their secrets resolved by the config stage, in the same pass as every other secret.
 */

// a plugins.d service plugin with a secret among its service keys and among its options; create() leaves a marker
const PLUGIN = `module.exports = {
  name: 'secretive', kind: 'service', version: '1.0.0', apiVersion: '^1.0.0',
  serviceSchema: { properties: { password: { type: 'string', 'x-secret': true } } },
  optionsSchema: { properties: { token: { type: 'string', 'x-secret': true }, level: { type: 'integer', default: 3 } }, additionalProperties: false },
  create(ctx) {
    require('node:fs').writeFileSync(require('node:path').join(ctx.configDir, 'created.json'), JSON.stringify(ctx.options));
    return { backupSources() { return { paths: [] }; } };
  },
};
`;

interface Setup {
  dir: string;
  config: string;
  marker: (name: string) => string;
}

function setup(tokenCommand = "[sh, -c, 'touch ran-option; echo tok']", extraOptions = ''): Setup {
  const dir = tmpDir();
  write(path.join(dir, 'plugins.d', 'secretive.js'), PLUGIN);
  fs.mkdirSync(path.join(dir, 'builtin'));
  const config = write(
    path.join(dir, 'ha.yaml'),
    [
      'global:',
      '  state_dir: ./state',
      '  log_dir: ./logs',
      'backup:',
      '  root: ./archives',
      'plugins:',
      '  secretive:',
      `    token_command: ${tokenCommand}`,
      ...(extraOptions ? [`    ${extraOptions}`] : []),
      'services:',
      '  - name: db',
      '    type: secretive',
      "    password_command: [sh, -c, 'touch ran-service; echo pw']",
      '',
    ].join('\n'),
  );
  return { dir, config, marker: (name) => path.join(dir, name) };
}

function open(s: Setup, needs?: AppNeeds, state: 'ro' | 'none' = 'ro'): ReturnType<typeof openApp> {
  return openApp({
    configPath: s.config,
    cwd: s.dir,
    env: {},
    signal: new AbortController().signal,
    state,
    needs,
    makeLogger: () => silentLogger,
    builtinRoot: path.join(s.dir, 'builtin'),
    systemFile: path.join(s.dir, 'no-system.yaml'),
  });
}

describe('openApp needs', () => {
  const saved = process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
  beforeAll(() => {
    process.env.HOMELAB_AUTOPILOT_CACHE_DIR = ''; // the plugins.d schemas are compiled here: keep nothing
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
    else process.env.HOMELAB_AUTOPILOT_CACHE_DIR = saved;
  });

  it('as history opens it: no secret command runs and no plugin is created, but the config is validated', async () => {
    const s = setup();
    const app = await open(s, { plugins: false, secrets: false });
    try {
      expect(fs.existsSync(s.marker('ran-service'))).toBe(false);
      expect(fs.existsSync(s.marker('ran-option'))).toBe(false);
      expect(fs.existsSync(s.marker('created.json'))).toBe(false);
      expect(app.needs).toEqual({ plugins: false, secrets: false });
      expect(app.registry.loaded).toEqual([]);
      expect(app.unresolvedServices).toEqual([]);
      // validated (defaults applied, paths resolved), secrets left as written
      expect(app.loaded.config.global.state_dir).toBe(path.join(s.dir, 'state'));
      expect(app.loaded.secretsResolved).toBe(false);
      expect(app.loaded.config.services[0].password_command).toEqual(['sh', '-c', 'touch ran-service; echo pw']);
      expect(app.loaded.config.services[0].password).toBeUndefined();
      expect(app.loaded.pluginOptions.secretive).toMatchObject({ level: 3 });
      // an engine over no plugins would fail every service as "not installed": asking for one is a bug
      expect(() => app.backupEngine()).toThrow(AutopilotError);
      expect(() => app.notifier()).toThrow(/needs plugins/);
    } finally {
      await app.close();
    }
  });

  it('still reports a bad config', async () => {
    const s = setup();
    fs.appendFileSync(s.config, 'monitoring:\n  intervall: 5\n');
    await expect(open(s, { plugins: false, secrets: false })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      details: [expect.stringMatching(/ha\.yaml:\d+:3: monitoring\.intervall: unknown key 'intervall'/)],
    });
    expect(fs.existsSync(s.marker('ran-service'))).toBe(false);
  });

  it('by default resolves every secret once, in the config stage, and creates the plugins with resolved options', async () => {
    const s = setup();
    const app = await open(s, undefined, 'none');
    try {
      expect(fs.existsSync(s.marker('ran-service'))).toBe(true);
      expect(fs.existsSync(s.marker('ran-option'))).toBe(true);
      expect(app.registry.installed('service')).toEqual(['secretive']);
      expect(app.loaded.config.services[0].password).toBe('pw');
      // the plugin got its options validated (default applied) and its secret resolved
      expect(JSON.parse(fs.readFileSync(s.marker('created.json'), 'utf8'))).toEqual({ token: 'tok', level: 3 });
      // and config show masks it where the file has it
      expect(app.loaded.masked.plugins.secretive.token).toBe('********');
    } finally {
      await app.close();
    }
  });

  it('a plugin whose options are bad fails alone, with the line, as before', async () => {
    const s = setup("[sh, -c, 'echo tok']", 'level: high');
    const app = await open(s, undefined, 'none');
    const rec = app.registry.failures.find((f) => f.name === 'secretive');
    expect(rec?.reason).toMatch(/^bad options: .*ha\.yaml:9:12: plugins\.secretive\.level: must be integer \(got string "high"\)/);
    expect(fs.existsSync(s.marker('created.json'))).toBe(false);
    expect(app.unresolvedServices.map((u) => u.service)).toEqual(['db']);
  });

  it('a plugin whose option secret fails fails alone, naming the line; the rest of the config is fine', async () => {
    const s = setup("[sh, -c, 'echo vault is sealed >&2; exit 3']");
    const app = await open(s, undefined, 'none');
    const rec = app.registry.failures.find((f) => f.name === 'secretive');
    expect(rec?.reason).toMatch(
      /^a secret of its options could not be resolved: .*ha\.yaml:8:20: plugins\.secretive\.token_command: the command sh exited with 3: vault is sealed/,
    );
    expect(app.loaded.config.services[0].password).toBe('pw');
  });

  it('plugins cannot be had without their secrets', async () => {
    const s = setup();
    await expect(open(s, { plugins: true, secrets: false })).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
