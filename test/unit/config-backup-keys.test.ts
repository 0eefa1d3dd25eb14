import * as fs from 'node:fs';
import * as path from 'node:path';
import { readRawConfig, validateConfig, type LoadedConfig } from '../../core/config/load';
import { configPlugins, type DiscoveredPlugin } from '../../core/config/plugins';
import { buildConfigSchema } from '../../core/config/schema';
import type { HypervisorPluginDefinition, JsonSchema } from '../../core/plugins/contract';
import proxmox from '../../plugins/hypervisors/proxmox/index';
import { cleanupTmp, ROOT, tmpDir, write } from '../helpers/cli';

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
 * Keys of the `backup:` section that belong to a hypervisor plugin (its backupSchema): core
 * names none of them, the config admits those of the discovered plugins, each checked against
 * its plugin's schema with file:line:col errors, defaults applied, x-path and x-secret honoured.
 */

const hypervisor = (name: string, backupSchema: unknown, file = `/plugins/${name}`): DiscoveredPlugin => ({
  def: {
    name,
    kind: 'hypervisor',
    version: '1.0.0',
    apiVersion: '^1.4.0',
    create: () => ({}) as never,
    backupSchema,
  } as HypervisorPluginDefinition,
  record: { file, source: 'plugins.d' },
});
const builtin = (def: HypervisorPluginDefinition): DiscoveredPlugin => ({ def, record: { file: '/built-in/proxmox', source: 'built-in' } });

async function load(
  text: string,
  plugins: DiscoveredPlugin[],
  files: Record<string, string> = {},
): Promise<LoadedConfig & { dir: string; f: string }> {
  const dir = tmpDir();
  for (const [name, content] of Object.entries(files)) write(path.join(dir, name), content, 0o600);
  const f = write(path.join(dir, 'ha.yaml'), text);
  const loaded = await validateConfig(readRawConfig({ file: f, via: 'flag' }, {}), configPlugins(plugins));
  return Object.assign(loaded, { dir, f });
}

async function errors(text: string, plugins: DiscoveredPlugin[]): Promise<string[]> {
  const dir = tmpDir();
  const f = write(path.join(dir, 'ha.yaml'), text);
  try {
    await validateConfig(readRawConfig({ file: f, via: 'flag' }, {}), configPlugins(plugins));
  } catch (e) {
    return ((e as { details: string[] }).details ?? []).map((l) => l.split(dir + path.sep).join(''));
  }
  throw new Error('the config was accepted');
}

describe("hypervisor plugins' backup: keys", () => {
  it('core/config names no hypervisor', () => {
    const dir = path.join(ROOT, 'core', 'config');
    for (const f of fs.readdirSync(dir)) {
      if (f.endsWith('.ts')) expect(`${f}: ${fs.readFileSync(path.join(dir, f), 'utf8')}`).not.toMatch(/proxmox/i);
    }
    const backup = (buildConfigSchema().properties as Record<string, JsonSchema>).backup.properties as Record<string, JsonSchema>;
    expect(Object.keys(backup)).not.toContain('proxmox_backup_server');
  });

  it("the proxmox plugin's keys work as they did: defaults applied, x-path resolved", async () => {
    const loaded = await load(
      'backup:\n  root: ./a\n  proxmox_backup_server:\n    storage: pbs\n  direct_storage:\n    storage: nas\n    path: ./nas\nservices: []\n',
      [builtin(proxmox)],
    );
    expect(loaded.config.backup.proxmox_backup_server).toEqual({ enabled: true, storage: 'pbs' });
    expect(loaded.config.backup.direct_storage).toEqual({ enabled: true, storage: 'nas', path: path.join(loaded.dir, 'nas') });
  });

  it('are checked against their schema, with lines; an unknown key still gets its did-you-mean among them', async () => {
    const lines = await errors(
      'backup:\n  proxmox_backup_server:\n    enabled: yes\n  direct_storag:\n    storage: nas\n  direct_storage:\n    storage: 9nas\nservices: []\n',
      [builtin(proxmox)],
    );
    expect(lines).toEqual(
      expect.arrayContaining([
        "ha.yaml:3:5: backup.proxmox_backup_server: missing required key 'storage'",
        'ha.yaml:3:14: backup.proxmox_backup_server.enabled: must be boolean (got string "yes")',
        expect.stringMatching(
          /^ha\.yaml:4:3: backup\.direct_storag: unknown key 'direct_storag' \(did you mean 'direct_storage'\?\); allowed here: root, .*, destinations, proxmox_backup_server, direct_storage$/,
        ),
        expect.stringMatching(/^ha\.yaml:7:14: backup\.direct_storage\.storage: must match pattern/),
      ]),
    );
  });

  it('without the plugin, its keys are unknown keys', async () => {
    expect(await errors('backup:\n  direct_storage:\n    storage: nas\nservices: []\n', [])).toEqual([
      expect.stringMatching(/^ha\.yaml:2:3: backup\.direct_storage: unknown key 'direct_storage'; allowed here: root, /),
    ]);
  });

  it('x-secret keys take *_file and *_command, resolved with every other secret', async () => {
    const vault = hypervisor('vaulty', {
      vault: {
        type: 'object',
        additionalProperties: false,
        properties: { token: { type: 'string', 'x-secret': true }, retries: { type: 'integer', default: 2 } },
      },
    });
    const loaded = await load('backup:\n  vault:\n    token_file: ./token\nservices: []\n', [vault], { token: 's3cret\n' });
    expect(loaded.config.backup.vault).toEqual({ token: 's3cret', retries: 2 });
    expect((loaded.masked.backup.vault as Record<string, unknown>).token).toBe('********');
  });

  it("a plugin never takes one of core's keys nor another plugin's; a malformed backupSchema is set aside with a warning", () => {
    const c = configPlugins([
      builtin(proxmox),
      hypervisor('greedy', { root: { type: 'string' }, direct_storage: { type: 'object' }, own_key: { type: 'object' } }),
      hypervisor('refs', { k: { $ref: '#/definitions/x' } }),
      hypervisor('list', [{ type: 'object' }]),
    ]);
    expect(c.backup.map((b) => [b.plugin, Object.keys(b.keys)])).toEqual([
      ['proxmox', ['proxmox_backup_server', 'direct_storage']],
      ['greedy', ['own_key']],
    ]);
    expect(c.problems).toEqual([
      "plugin greedy (/plugins/greedy): backupSchema key 'root' is ignored: backup.root belongs to homelab-autopilot itself",
      "plugin greedy (/plugins/greedy): backupSchema key 'direct_storage' is ignored: backup.direct_storage belongs to plugin proxmox",
      'plugin refs (/plugins/refs): backupSchema .k must be self-contained: $ref, $id, $defs and definitions cannot resolve in the config schema; its backup: keys are not accepted',
      'plugin list (/plugins/list): backupSchema must map key names to JSON schema objects; its backup: keys are not accepted',
    ]);
  });

  it('a plugins.d backupSchema that is no valid JSON schema is set aside, not fatal', async () => {
    const loaded = await load('services: []\n', [hypervisor('broken', { odd: { type: 'integr' } })]);
    expect(loaded.warnings).toEqual([expect.stringMatching(/^plugin broken: backupSchema is not a valid JSON schema/)]);
  });

  it('the schema is the same for the same plugins (the build precompiles it by its hash)', () => {
    const a = buildConfigSchema(configPlugins([builtin(proxmox)]).backup);
    const b = buildConfigSchema(configPlugins([builtin(proxmox)]).backup);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});
