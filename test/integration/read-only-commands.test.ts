import * as fs from 'node:fs';
import * as path from 'node:path';
import { basicConfig, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

/**
 * Commands that only read the state database open the config without its secrets and without
 * creating plugins: a `*_command` secret (`pass show …`, which may prompt) must not run, nor
 * a plugin's create() reach its API.
 */
describe('history, backups list and notifications list run no secret command', () => {
  let dir: string;
  let cfg: string;
  const ran = (): string[] => fs.readdirSync(path.join(dir, 'markers')).sort();

  beforeAll(() => {
    dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'markers'));
    write(path.join(dir, 'data/f.txt'), 'hello');
    const secret = (name: string): string => `[sh, -c, 'touch ${dir}/markers/${name}; echo s3cret-${name}']`;
    cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: '  - name: web\n    type: files\n    paths: [./data]' }) +
        `notifications:\n  channels:\n    - name: phone\n      type: ntfy\n      topic: homelab\n      token_command: ${secret('channel')}\n` +
        `plugins:\n  proxmox:\n    host: pve.invalid\n    token_id: root@pam!autopilot\n    token_secret_command: ${secret('plugin')}\n`,
    );
  });

  it('history, backups list and notifications list, with and without --json', async () => {
    for (const args of [['history'], ['backups', 'list'], ['notifications', 'list'], ['history', '--json']]) {
      const r = await runCli([...args, '--config', cfg]);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(ran()).toEqual([]);
    }
    const h = await runCli(['history', '--json', '--config', cfg]);
    expect(json(h)).toEqual([]);
  });

  it('they still refuse a bad config', async () => {
    const bad = write(path.join(dir, 'bad.yaml'), fs.readFileSync(cfg, 'utf8').replace('  log_dir:', '  log_dri:'));
    const r = await runCli(['history', '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.yaml:\d+:3: global\.log_dri: unknown key 'log_dri' \(did you mean 'log_dir'\?\)/);
    expect(ran()).toEqual([]);
  });

  it('while config validate resolves every secret (the markers work)', async () => {
    const r = await runCli(['config', 'validate', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(ran()).toEqual(['channel', 'plugin']);
  });
});
