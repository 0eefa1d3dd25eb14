/** The caddy and nginx-proxy-manager service plugins, through the built CLI. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';

afterAll(cleanupTmp);

const members = (archive: string): string[] =>
  execFileSync('sh', ['-c', `zstd -dc '${archive}' | tar -t`], { encoding: 'utf8' })
    .trim()
    .split('\n');

/** A fake caddy: `validate` fails on a Caddyfile containing BROKEN; `reload` is recorded. */
function fakeCaddy(dir: string): { bin: string; reloads(): number } {
  const bin = path.join(dir, 'caddy');
  const log = path.join(dir, 'caddy-calls');
  write(
    bin,
    `#!/bin/sh
echo "$@" >> '${log}'
case "$1" in
  version) echo v2.8.4; exit 0 ;;
  validate) if grep -q BROKEN "$3"; then echo "Error: adapting config using caddyfile: $3:2: unrecognized directive: BROKEN" >&2; exit 1; fi; echo "Valid configuration"; exit 0 ;;
  reload) exit 0 ;;
esac
exit 2
`,
  );
  fs.chmodSync(bin, 0o755);
  return {
    bin,
    reloads: () =>
      fs.existsSync(log)
        ? fs
            .readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l.startsWith('reload')).length
        : 0,
  };
}

describe('caddy', () => {
  it('backs up the Caddyfile folder and the data, warning when the config does not validate', async () => {
    const dir = tmpDir();
    const caddy = fakeCaddy(dir);
    write(path.join(dir, 'etc/caddy/Caddyfile'), 'example.org {\n  import sites/*\n}\n');
    write(path.join(dir, 'etc/caddy/sites/app'), 'reverse_proxy 127.0.0.1:8080\n');
    write(path.join(dir, 'data/caddy/certificates/example.org.crt'), 'CERT');
    const cfg = path.join(dir, 'c.yaml');
    write(
      cfg,
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nbackup:\n  root: ./backups\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./etc/caddy/Caddyfile\n    data_dir: ./data/caddy\n    caddy: ${caddy.bin}\n`,
    );
    const ok = json(await runCli(['backup', 'proxy', '--json', '--config', cfg]));
    expect(ok.ok).toBe(true);
    const m = members(ok.services[0].archive.path);
    expect(m).toEqual(
      expect.arrayContaining([
        path.join(dir, 'etc/caddy/Caddyfile').slice(1),
        path.join(dir, 'etc/caddy/sites/app').slice(1),
        path.join(dir, 'data/caddy/certificates/example.org.crt').slice(1),
      ]),
    );
    fs.appendFileSync(path.join(dir, 'etc/caddy/Caddyfile'), 'BROKEN\n');
    const r = await runCli(['backup', 'proxy', '--config', cfg]); // no wait: a second archive within the same second is named proxy_<time>-2
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /Caddyfile does not validate \(archived all the same\): Error: adapting config using caddyfile: .*unrecognized directive: BROKEN/,
    );
  });

  it('an update whose config no longer validates is rolled back: config and data restored, caddy reloaded', async () => {
    const dir = tmpDir();
    const caddy = fakeCaddy(dir);
    write(path.join(dir, 'etc/caddy/Caddyfile'), 'example.org {\n  respond "hi"\n}\n');
    write(path.join(dir, 'data/caddy/state.json'), '{"v":1}');
    const upgrade = path.join(dir, 'upgrade.sh');
    // an "upgrade" that migrates the data and leaves a config the new version rejects
    write(
      upgrade,
      `#!/bin/sh\necho '{"v":2}' > '${path.join(dir, 'data/caddy/state.json')}'\necho BROKEN >> '${path.join(dir, 'etc/caddy/Caddyfile')}'\n`,
    );
    fs.chmodSync(upgrade, 0o755);
    const cfg = path.join(dir, 'c.yaml');
    write(
      cfg,
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nupdates:\n  settle_seconds: 1\n  check_interval: 1\n  min_free_mb: 0\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./etc/caddy/Caddyfile\n    data_dir: ./data/caddy\n    caddy: ${caddy.bin}\n    update:\n      command: [[${upgrade}]]\n    health_checks:\n      - type: command\n        command: [${caddy.bin}, validate, --config, ${path.join(dir, 'etc/caddy/Caddyfile')}]\n`,
    );
    const plan = await runCli(['update', 'proxy', '--dry-run', '--config', cfg]);
    expect(plan.stdout).toMatch(/3\. update +.*upgrade\.sh; then .*caddy validate --config .*Caddyfile; then .*caddy reload --config/);
    const r = await runCli(['update', 'proxy', '--yes', '--json', '--config', cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0].status).toBe('rolled_back');
    expect(rep.services[0].error).toMatch(/caddy validate: Error: adapting config using caddyfile: .*BROKEN/);
    expect(fs.readFileSync(path.join(dir, 'etc/caddy/Caddyfile'), 'utf8')).not.toContain('BROKEN');
    expect(fs.readFileSync(path.join(dir, 'data/caddy/state.json'), 'utf8')).toBe('{"v":1}');
    expect(caddy.reloads()).toBe(1);
  });
});

describe('nginx-proxy-manager', () => {
  it('archives data, letsencrypt and a consistent copy of its SQLite database, without logs', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'npm/data/logs'), { recursive: true });
    const db = new Database(path.join(dir, 'npm/data/database.sqlite'));
    db.exec("CREATE TABLE proxy_host (id INTEGER PRIMARY KEY, domain TEXT); INSERT INTO proxy_host (domain) VALUES ('cloud.example.org');");
    db.close();
    write(path.join(dir, 'npm/data/nginx/proxy_host/1.conf'), 'server { }\n');
    write(path.join(dir, 'npm/data/logs/proxy-host-1_access.log'), 'GET /\n');
    write(path.join(dir, 'npm/letsencrypt/live/cloud.example.org/fullchain.pem'), 'PEM');
    const cfg = path.join(dir, 'c.yaml');
    write(
      cfg,
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nbackup:\n  root: ./backups\nservices:\n  - name: npm\n    type: nginx-proxy-manager\n    data_dir: ./npm/data\n    letsencrypt_dir: ./npm/letsencrypt\n`,
    );
    const rep = json(await runCli(['backup', 'npm', '--json', '--config', cfg]));
    expect(rep.ok).toBe(true);
    const archive = rep.services[0].archive.path;
    const m = members(archive);
    const copy = path.join(dir, 'state/plugins/nginx-proxy-manager/npm/database.sqlite');
    expect(m).toEqual(
      expect.arrayContaining([
        path.join(dir, 'npm/data/nginx/proxy_host/1.conf').slice(1),
        path.join(dir, 'npm/letsencrypt/live/cloud.example.org/fullchain.pem').slice(1),
        copy.slice(1),
      ]),
    );
    expect(m).not.toContain(path.join(dir, 'npm/data/database.sqlite').slice(1));
    expect(m.some((x) => x.includes('/logs/proxy-host'))).toBe(false);
    // the copy in the archive is a working database
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-npm-'));
    execFileSync('sh', ['-c', `zstd -dc '${archive}' | tar -x -C '${out}' '${copy.slice(1)}'`]);
    const restored = new Database(path.join(out, copy), { readonly: true });
    expect(restored.prepare('SELECT domain FROM proxy_host').get()).toEqual({ domain: 'cloud.example.org' });
    restored.close();
    fs.rmSync(out, { recursive: true, force: true });
  });
});
