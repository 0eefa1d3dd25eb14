import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

/**
 * The corpus of bad configs: each folder under test/fixtures/configs holds a
 * homelab-autopilot.yaml (and sometimes services.d/) and an expect.json naming the exit
 * code and the error lines (file:line:col: path: message) that must be reported.
 */
const CORPUS = path.join(__dirname, '..', 'fixtures', 'configs');
const cases = fs.readdirSync(CORPUS).filter((d) => fs.existsSync(path.join(CORPUS, d, 'expect.json')));

interface Expect {
  exit: number;
  errors: string[];
  absent?: string[];
  /** the errors appear in this order (one list, sorted by file and line) */
  ordered?: boolean;
}

/** Each expected line is there, and with `ordered`, each after the one before it. */
function expectLines(text: string, lines: string[], ordered: boolean): void {
  let from = 0;
  for (const line of lines) {
    expect(text).toContain(line);
    if (!ordered) continue;
    const at = text.indexOf(line, from);
    expect({ line, inOrder: at >= from }).toEqual({ line, inOrder: true });
    from = at + line.length;
  }
}

describe('bad configs are reported with file, line, column and a clear message', () => {
  it('has a corpus to check', () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
  });

  for (const name of cases) {
    it(`${name}: config validate exits non-zero and names every problem`, async () => {
      const dir = path.join(CORPUS, name);
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expect.json'), 'utf8')) as Expect;
      const r = await runCli(['config', 'validate', '--config', path.join(dir, 'homelab-autopilot.yaml')], { cwd: dir });
      const stderr = r.stderr.split(dir + path.sep).join('');
      expect(r.code).toBe(expected.exit);
      expectLines(stderr, expected.errors, Boolean(expected.ordered));
      expect(stderr).not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/); // never a stack trace
      for (const secret of expected.absent ?? []) expect(r.stdout + r.stderr).not.toContain(secret);

      // the same errors as JSON, on stdout
      const j = await runCli(['config', 'validate', '--json', '--config', path.join(dir, 'homelab-autopilot.yaml')], { cwd: dir });
      expect(j.code).toBe(expected.exit);
      const body = JSON.parse(j.stdout) as { error: { code: string; message: string; details: string[] } };
      const all = [body.error.message, ...body.error.details]
        .join('\n')
        .split(dir + path.sep)
        .join('');
      expectLines(all, expected.errors, Boolean(expected.ordered));
      expect(body.error.code).toBe('CONFIG_INVALID');
    });
  }

  it('backup refuses to run on a bad config, with the same errors and exit code 2', async () => {
    const dir = path.join(CORPUS, 'unknown-keys');
    const r = await runCli(['backup', '--all', '--config', path.join(dir, 'homelab-autopilot.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("global.log_levl: unknown key 'log_levl' (did you mean 'log_level'?)");
  });

  it('a config file that does not exist is named', async () => {
    const r = await runCli(['config', 'validate', '--config', '/nonexistent/ha.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('config file /nonexistent/ha.yaml (from --config) does not exist');
  });

  it('config validate warns about a paths entry that does not exist (valid all the same)', async () => {
    const dir = tmpDir();
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      `global:\n  state_dir: ${dir}/state\nbackup:\n  root: ${dir}/backups\nservices:\n  - name: web\n    type: files\n    paths: [/etc/hostname, ./not-there]\n  - name: host\n    type: host\n    include_defaults: false\n    backup_paths: [${dir}/gone]\n  - name: off\n    type: files\n    enabled: false\n    paths: [./also-not-there]\n`,
    );
    const r = await runCli(['config', 'validate', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `ha.yaml:8:28: services[0].paths[1]: ${dir}/not-there does not exist (a backup of 'web' fails until it does)`,
    );
    expect(r.stderr).toContain(
      `ha.yaml:12:20: services[1].backup_paths[0]: ${dir}/gone does not exist (a backup of 'host' fails until it does)`,
    );
    expect(r.stderr).not.toContain('also-not-there');
    const j = json<{ valid: boolean; warnings: string[] }>(await runCli(['config', 'validate', '--json', '--config', cfg]));
    expect(j.valid).toBe(true);
    expect(j.warnings.filter((w) => w.includes('does not exist'))).toHaveLength(2);
  });

  describe('a Proxmox plugin that cannot load is named, with its own errors', () => {
    const proxmoxConfig = (dir: string, fingerprint: string): string =>
      write(
        path.join(dir, 'ha.yaml'),
        `global:\n  state_dir: ${dir}/state\n  log_dir: ${dir}/logs\nplugins:\n  proxmox:\n    host: 127.0.0.1\n    token_id: root@pam!autopilot\n    token_secret_file: ./pve-token\n    fingerprint: "${fingerprint}"\nbackup:\n  root: ${dir}/backups\nservices:\n  - name: web\n    type: lxc\n    vmid: 100\n`,
      );
    const GOOD_FP = Array.from({ length: 32 }, () => 'AB').join(':');

    it('a world-readable token_secret_file is warned about as a core secret is, also when the options are refused', async () => {
      const dir = tmpDir();
      write(path.join(dir, 'pve-token'), 'b2d3c0de-5a5e-4c1a-9d1e-000000000001\n', 0o644);
      const warning = `ha.yaml:8:24: plugins.proxmox.token_secret_file: secret file ${dir}/pve-token is readable or writable by group or others (mode 644): run chmod 600 ${dir}/pve-token`;
      const good = await runCli(['config', 'validate', '--json', '--config', proxmoxConfig(dir, GOOD_FP)]);
      expect(good.code).toBe(0);
      expect(json<{ warnings: string[] }>(good).warnings.join('\n')).toContain(warning);
      const bad = await runCli(['config', 'validate', '--config', proxmoxConfig(dir, 'AB:CD')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(warning);
      expect(bad.stderr).toContain('ha.yaml:9:18: plugins.proxmox.fingerprint: must match pattern');
    });

    it('a backup of its guest names the plugin and the key, file and line at fault', async () => {
      const dir = tmpDir();
      write(path.join(dir, 'pve-token'), 'b2d3c0de-5a5e-4c1a-9d1e-000000000001\n', 0o600);
      const r = await runCli(['backup', 'web', '--json', '--config', proxmoxConfig(dir, 'AB:CD')]);
      expect(r.code).toBe(1);
      const web = json<{ services: { service: string; error: string; hint: string }[] }>(r).services[0];
      expect(web.error).toMatch(
        /^service 'web' needs the hypervisor plugin 'proxmox' \(for type 'lxc'\), which failed to load: bad options: .*ha\.yaml:9:18: plugins\.proxmox\.fingerprint: must match pattern/,
      );
      expect(web.hint).toContain('fix plugins.proxmox in the config');
      expect(r.stdout + r.stderr).not.toContain('is not installed');
    });
  });
});
