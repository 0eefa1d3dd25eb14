/** The caddy and nginx-proxy-manager service plugins, through the built CLI. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { cleanupTmp, json, ROOT, runCli, tmpDir, write } from '../helpers/cli';
import { Recorder } from '../helpers/recorder';

const recorders: Recorder[] = [];
afterAll(async () => {
  for (const r of recorders) await r.stop();
  cleanupTmp();
});

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
    const rec = await new Recorder().start();
    recorders.push(rec);
    const cfg = path.join(dir, 'c.yaml');
    write(
      cfg,
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nbackup:\n  root: ./backups\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./etc/caddy/Caddyfile\n    data_dir: ./data/caddy\n    caddy: ${caddy.bin}\n` +
        `notifications:\n  channels:\n    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      events: [backup_success, backup_failed]\n`,
    );
    const ok = json(await runCli(['backup', 'proxy', '--json', '--config', cfg]));
    expect(ok.ok).toBe(true);
    expect(ok.services[0].warnings).toEqual([]);
    const m = members(ok.services[0].archive.path);
    expect(m).toEqual(
      expect.arrayContaining([
        path.join(dir, 'etc/caddy/Caddyfile').slice(1),
        path.join(dir, 'etc/caddy/sites/app').slice(1),
        path.join(dir, 'data/caddy/certificates/example.org.crt').slice(1),
      ]),
    );
    fs.appendFileSync(path.join(dir, 'etc/caddy/Caddyfile'), 'BROKEN\n');
    // two days later, past the alert's cooldown (a success right after a success is not sent again)
    const day = 86_400_000;
    const r = await runCli(['backup', 'proxy', '--json', '--config', cfg], { clockOffsetMs: 2 * day });
    expect(r.code).toBe(0);
    const invalid =
      /Caddyfile does not validate \(archived all the same\): Error: adapting config using caddyfile: .*unrecognized directive: BROKEN/;
    expect(r.stderr).toMatch(invalid);
    // a warning of the result: in --json, and in the alert
    const rep = json(r);
    expect(rep.services[0].status).toBe('success');
    expect(rep.services[0].warnings).toEqual([expect.stringMatching(invalid)]);
    const sent = rec.to('/hook').map((q) => JSON.parse(q.body) as { event: string; severity: string; text: string });
    expect(sent).toHaveLength(2);
    expect(sent[0].text).not.toMatch(/warning/);
    expect(sent[1]).toMatchObject({
      event: 'backup_success',
      severity: 'warning',
      text: expect.stringMatching(/\nwarnings:\n- .*Caddyfile does not validate/),
    });
    expect(rep.services[0].warned).toBe(true);
    // and in the human output
    fs.appendFileSync(path.join(dir, 'etc/caddy/Caddyfile'), '# still broken\n');
    const human = await runCli(['backup', 'proxy', '--config', cfg], { clockOffsetMs: 4 * day });
    expect(human.stdout).toMatch(/warning: .*Caddyfile does not validate/);
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
  it('a rollback with the Caddyfile beside other files (and our state in that folder tree) deletes nothing and restores what the snapshot holds', async () => {
    const dir = tmpDir();
    const caddy = fakeCaddy(dir);
    const home = path.join(dir, 'home');
    // a user's home: the Caddyfile beside other files; caddy's data and our state below it
    write(path.join(home, 'Caddyfile'), 'example.org {\n  respond "hi"\n}\n');
    write(path.join(home, 'notes.txt'), 'keep me');
    write(path.join(home, 'projects/app/main.go'), 'package main\n');
    write(path.join(home, '.local/share/caddy/certificates/example.org.key'), 'KEY');
    write(path.join(home, '.local/share/caddy/certificates/example.org.crt'), 'CERT v1');
    const upgrade = write(
      path.join(dir, 'upgrade.sh'),
      `#!/bin/sh\ncd '${home}'\necho 'CERT v2' > .local/share/caddy/certificates/example.org.crt\nrm .local/share/caddy/certificates/example.org.key\necho BROKEN >> Caddyfile\necho later > written-meanwhile.txt\n`,
      0o755,
    );
    const cfg = write(
      path.join(dir, 'c.yaml'),
      `global:\n  state_dir: ./home/.local/state/homelab-autopilot\n  log_dir: ./logs\nupdates:\n  settle_seconds: 1\n  check_interval: 1\n  min_free_mb: 0\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./home/Caddyfile\n    data_dir: ./home/.local/share/caddy\n    caddy: ${caddy.bin}\n    update:\n      command: [[${upgrade}]]\n    health_checks:\n      - type: command\n        command: [${caddy.bin}, validate, --config, ${path.join(home, 'Caddyfile')}]\n`,
    );
    const r = await runCli(['update', 'proxy', '--yes', '--json', '--config', cfg]);
    const rep = json(r);
    expect(rep.services[0]).toMatchObject({ status: 'rolled_back' });
    // what the snapshot recorded is back
    expect(fs.readFileSync(path.join(home, 'Caddyfile'), 'utf8')).toBe('example.org {\n  respond "hi"\n}\n');
    expect(fs.readFileSync(path.join(home, '.local/share/caddy/certificates/example.org.crt'), 'utf8')).toBe('CERT v1');
    expect(fs.readFileSync(path.join(home, '.local/share/caddy/certificates/example.org.key'), 'utf8')).toBe('KEY');
    // nothing else was touched: the other files, a file written meanwhile, our state (with the snapshot)
    expect(fs.readFileSync(path.join(home, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(fs.readFileSync(path.join(home, 'projects/app/main.go'), 'utf8')).toBe('package main\n');
    expect(fs.readFileSync(path.join(home, 'written-meanwhile.txt'), 'utf8')).toBe('later\n');
    const snaps = path.join(home, '.local/state/homelab-autopilot/plugins/caddy/snapshots');
    const [snap] = fs.readdirSync(snaps);
    // the snapshot never holds our own state
    expect(members(path.join(snaps, snap)).some((m) => m.includes('.local/state/homelab-autopilot'))).toBe(false);
    const history = json(await runCli(['history', '--json', '--config', cfg]));
    expect(JSON.stringify(history)).toContain('proxy');
    expect(caddy.reloads()).toBe(1);
  });

  it('a damaged snapshot stops the rollback before anything is touched', async () => {
    const dir = tmpDir();
    const caddy = fakeCaddy(dir);
    write(path.join(dir, 'etc/caddy/Caddyfile'), 'example.org {\n  respond "hi"\n}\n');
    write(path.join(dir, 'data/caddy/state.json'), '{"v":1}');
    // the "upgrade" damages the snapshot it finds (a full disk, a bad sector), then breaks the config
    const upgrade = write(
      path.join(dir, 'upgrade.sh'),
      `#!/bin/sh\nfor f in '${dir}'/state/plugins/caddy/snapshots/*; do printf garbage > "$f"; done\necho '{"v":2}' > '${dir}/data/caddy/state.json'\necho BROKEN >> '${dir}/etc/caddy/Caddyfile'\n`,
      0o755,
    );
    const cfg = write(
      path.join(dir, 'c.yaml'),
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nupdates:\n  settle_seconds: 1\n  check_interval: 1\n  min_free_mb: 0\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./etc/caddy/Caddyfile\n    data_dir: ./data/caddy\n    caddy: ${caddy.bin}\n    update:\n      command: [[${upgrade}]]\n    health_checks:\n      - type: command\n        command: [/bin/true]\n`,
    );
    const rep = json(await runCli(['update', 'proxy', '--yes', '--json', '--config', cfg]));
    expect(rep.services[0].status).toBe('rollback_failed');
    expect(JSON.stringify(rep.services[0])).toMatch(/damaged .*nothing was restored/);
    // what is there stays (nothing emptied), for the person who restores by hand
    expect(fs.readFileSync(path.join(dir, 'data/caddy/state.json'), 'utf8')).toBe('{"v":2}\n');
    expect(fs.readFileSync(path.join(dir, 'etc/caddy/Caddyfile'), 'utf8')).toContain('BROKEN');
  });
});

/** A free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const hasCaddy = ((): boolean => {
  try {
    return /^v?2\./.test(execFileSync('caddy', ['version'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
})();

/**
 * Caddy's admin API on 127.0.0.1: the real caddy (Debian's package) when it is installed, otherwise
 * a server that answers as caddy's documents (GET /config/ the config; POST /config/ without a body 400).
 */
async function adminApi(dir: string, site: number): Promise<{ admin: number; bin: string; real: boolean; gets(): number; stop(): void }> {
  const admin = await freePort();
  const caddyfile = write(
    path.join(dir, 'etc/caddy/Caddyfile'),
    `{\n  admin 127.0.0.1:${admin}\n  storage file_system ${dir}/data/caddy\n}\nhttp://127.0.0.1:${site} {\n  respond "v1"\n}\n`,
  );
  fs.mkdirSync(path.join(dir, 'data/caddy'), { recursive: true });
  if (hasCaddy) {
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: path.join(dir, 'xdg-data'), XDG_CONFIG_HOME: path.join(dir, 'xdg-config') };
    const child = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], { env, stdio: 'ignore' });
    return { admin, bin: 'caddy', real: true, gets: () => -1, stop: () => child.kill('SIGKILL') };
  }
  let gets = 0;
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/config/' && req.method === 'GET') {
        gets++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"apps":{}}');
      } else if (req.method === 'POST' && !body) res.writeHead(400).end('{"error":"unexpected end of JSON input"}');
      else res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => srv.listen(admin, '127.0.0.1', r));
  const fake = fakeCaddy(dir);
  return { admin, bin: fake.bin, real: false, gets: () => gets, stop: () => srv.close() };
}

describe("caddy's `running` check, against caddy's admin API (the real caddy when installed)", () => {
  let api: { stop(): void } | null = null;
  afterEach(() => {
    api?.stop();
    api = null;
  });

  it('an update passes the default `running` check, read with GET, and caddy serves the new config', async () => {
    const dir = tmpDir();
    const site = await freePort();
    const a = await adminApi(dir, site);
    api = a;
    const get = async (url: string): Promise<string | undefined> => {
      const res = await fetch(url);
      return res.ok ? await res.text() : undefined;
    };
    await until('the admin API answers', () => get(`http://127.0.0.1:${a.admin}/config/`));
    const caddyfile = path.join(dir, 'etc/caddy/Caddyfile');
    const upgrade = write(path.join(dir, 'upgrade.sh'), `#!/bin/sh\nsed -i 's/"v1"/"v2"/' '${caddyfile}'\n`, 0o755);
    const cfg = write(
      path.join(dir, 'c.yaml'),
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nupdates:\n  settle_seconds: 1\n  check_interval: 1\n  min_free_mb: 0\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./etc/caddy/Caddyfile\n    data_dir: ./data/caddy\n    caddy: ${a.bin}\n    admin_url: http://127.0.0.1:${a.admin}\n    update:\n      command: [[${upgrade}]]\n`,
    );
    const rep = json(await runCli(['update', 'proxy', '--yes', '--json', '--config', cfg], { env: { HOME: dir } }));
    expect(rep.services[0]).toMatchObject({ status: 'success' });
    if (a.real) expect(await get(`http://127.0.0.1:${site}/`)).toBe('v2');
    else expect(a.gets()).toBeGreaterThanOrEqual(3); // the pre-check, and the checks after the update
  });

  it('`running` is false when the admin API does not answer: the update is refused before anything changes', async () => {
    const dir = tmpDir();
    const admin = await freePort();
    const caddy = fakeCaddy(dir);
    write(path.join(dir, 'etc/caddy/Caddyfile'), 'example.org {\n  respond "hi"\n}\n');
    const cfg = write(
      path.join(dir, 'c.yaml'),
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nupdates:\n  min_free_mb: 0\nservices:\n  - name: proxy\n    type: caddy\n    caddyfile: ./etc/caddy/Caddyfile\n    data_dir: ./data/caddy\n    caddy: ${caddy.bin}\n    admin_url: http://127.0.0.1:${admin}\n    update:\n      command: [[/bin/true]]\n`,
    );
    const rep = json(await runCli(['update', 'proxy', '--yes', '--json', '--config', cfg]));
    expect(rep.services[0].status).toBe('failed');
    expect(JSON.stringify(rep.services[0])).toMatch(/not running/);
    expect(caddy.reloads()).toBe(0);
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
    // the consistent copy is stored as the live file's own name
    const live = path.join(dir, 'npm/data/database.sqlite');
    expect(m).toEqual(
      expect.arrayContaining([
        path.join(dir, 'npm/data/nginx/proxy_host/1.conf').slice(1),
        path.join(dir, 'npm/letsencrypt/live/cloud.example.org/fullchain.pem').slice(1),
        live.slice(1),
      ]),
    );
    expect(m.some((x) => x.includes('state/plugins'))).toBe(false);
    expect(m.some((x) => x.includes('/logs/proxy-host'))).toBe(false);
    // the copy in the archive is a working database
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-npm-'));
    execFileSync('sh', ['-c', `zstd -dc '${archive}' | tar -x -C '${out}' '${live.slice(1)}'`]);
    const restored = new Database(path.join(out, live), { readonly: true });
    expect(restored.prepare('SELECT domain FROM proxy_host').get()).toEqual({ domain: 'cloud.example.org' });
    restored.close();
    fs.rmSync(out, { recursive: true, force: true });
  });
});

/** A process of its own that works on a SQLite database as NPM would: it says `ready`, then keeps going until killed. */
async function sqliteProcess(dir: string, db: string, mode: 'hammer' | 'hold'): Promise<ChildProcess> {
  const script = write(
    path.join(dir, `${mode}.js`),
    `const Database = require(${JSON.stringify(path.join(ROOT, 'node_modules/better-sqlite3'))});
const db = new Database(${JSON.stringify(db)}, { timeout: 10000 });
if (${JSON.stringify(mode)} === 'hold') {
  // a writer in the middle of a long write transaction: nobody else may read
  db.exec('BEGIN EXCLUSIVE');
  process.stdout.write('ready\\n');
  setInterval(() => {}, 1000);
} else {
  db.pragma('synchronous = OFF');
  db.exec('CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, at INTEGER, v TEXT)');
  const ins = db.prepare('INSERT INTO log (at, v) VALUES (?, ?)');
  const pause = new Int32Array(new SharedArrayBuffer(4));
  process.stdout.write('ready\\n');
  for (let n = 0; ; n++) {
    ins.run(Date.now(), 'x'.repeat(300));
    if (n % 50 === 0) Atomics.wait(pause, 0, 0, 1);
  }
}
`,
  );
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the ${mode} process ended (${code})`)));
  });
  return child;
}

/** An NPM data layout whose database.sqlite holds `mb` MB (and one proxy host). */
function npmLayout(dir: string, mb: number, journal: 'wal' | 'delete'): string {
  fs.mkdirSync(path.join(dir, 'npm/data/logs'), { recursive: true });
  const file = path.join(dir, 'npm/data/database.sqlite');
  const db = new Database(file);
  db.pragma(`journal_mode = ${journal}`);
  db.exec('CREATE TABLE proxy_host (id INTEGER PRIMARY KEY, domain TEXT); CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)');
  db.prepare('INSERT INTO proxy_host (domain) VALUES (?)').run('cloud.example.org');
  const ins = db.prepare('INSERT INTO blob (data) VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < mb * 256; i++) ins.run(crypto.randomBytes(4000));
  })();
  db.close();
  write(path.join(dir, 'npm/data/nginx/proxy_host/1.conf'), 'server { }\n');
  return file;
}

const npmConfig = (dir: string, timeout: number): string =>
  write(
    path.join(dir, 'c.yaml'),
    `global:\n  state_dir: ./state\n  log_dir: ./logs\nbackup:\n  root: ./backups\nservices:\n  - name: npm\n    type: nginx-proxy-manager\n    data_dir: ./npm/data\n    timeout: ${timeout}\n`,
  );

describe('nginx-proxy-manager under constant writes (a real writer process)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  it('archives a checked copy of a 64 MB database being written, stored where NPM reads it, without -wal/-shm', async () => {
    const dir = tmpDir();
    const live = npmLayout(dir, 64, 'wal');
    children.push(await sqliteProcess(dir, live, 'hammer'));
    expect(fs.existsSync(`${live}-wal`)).toBe(true);
    const cfg = npmConfig(dir, 60);
    const started = Date.now();
    const r = await runCli(['backup', 'npm', '--json', '--config', cfg], { timeoutMs: 120_000 });
    const rep = json(r);
    expect(rep.services[0]).toMatchObject({ status: 'success', archive: { verified: true } });
    expect(Date.now() - started).toBeLessThan(60_000);
    const archive = rep.services[0].archive.path;
    const m = members(archive);
    expect(m).toContain(live.slice(1));
    expect(m.filter((x) => /database\.sqlite/.test(x))).toEqual([live.slice(1)]);
    expect(m.some((x) => x.includes('/state/'))).toBe(false);
    // the copy is not kept under our state folder once archived, nor is the lock
    expect(fs.readdirSync(path.join(dir, 'state/plugins/nginx-proxy-manager/npm'))).toEqual([]);
    // a restore (tar -x into an empty root) puts a sound database where NPM reads it
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-npm-'));
    execFileSync('sh', ['-c', `zstd -dc '${archive}' | tar -x -C '${out}'`]);
    const restored = new Database(path.join(out, live), { readonly: true });
    expect(restored.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(restored.prepare('SELECT domain FROM proxy_host').get()).toEqual({ domain: 'cloud.example.org' });
    expect(restored.prepare('SELECT count(*) AS n FROM blob').get()).toEqual({ n: 64 * 256 });
    expect((restored.prepare('SELECT count(*) AS n FROM log').get() as { n: number }).n).toBeGreaterThan(0);
    restored.close();
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('a copy that cannot get at the database stops for real at the service timeout, and the next backup works', async () => {
    const dir = tmpDir();
    const live = npmLayout(dir, 8, 'delete');
    const holder = await sqliteProcess(dir, live, 'hold');
    children.push(holder);
    const cfg = npmConfig(dir, 3);
    const started = Date.now();
    const r = await runCli(['backup', 'npm', '--json', '--config', cfg], { timeoutMs: 30_000 });
    // the command itself is over soon after the timeout: nothing goes on copying
    expect(Date.now() - started).toBeLessThan(12_000);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0].status).toBe('failed');
    expect(rep.services[0].error).toMatch(/did not finish within 3s/);
    expect(rep.services[0].archive).toBeUndefined();
    expect(fs.readdirSync(path.join(dir, 'state/plugins/nginx-proxy-manager/npm'))).toEqual([]);
    holder.kill('SIGKILL');
    await new Promise((res) => holder.once('exit', res));
    const ok = json(await runCli(['backup', 'npm', '--json', '--config', cfg]));
    expect(ok.services[0]).toMatchObject({ status: 'success', archive: { verified: true } });
  });

  it('a copy that fails PRAGMA integrity_check is not archived', async () => {
    const dir = tmpDir();
    const live = npmLayout(dir, 2, 'delete');
    // a damaged page in the middle of the blob table (a bad sector, a torn write): SQLite's backup copies pages as they are
    const pageSize = 4096;
    const fd = fs.openSync(live, 'r+');
    fs.writeSync(fd, crypto.randomBytes(pageSize), 0, pageSize, 200 * pageSize);
    fs.closeSync(fd);
    const r = await runCli(['backup', 'npm', '--json', '--config', npmConfig(dir, 60)]);
    expect(r.code).toBe(1);
    const svc = json(r).services[0];
    expect(svc.status).toBe('failed');
    expect(svc.error).toMatch(/the copy of .*database\.sqlite failed PRAGMA integrity_check: /);
    expect(svc.archive).toBeUndefined();
    expect(fs.readdirSync(path.join(dir, 'state/plugins/nginx-proxy-manager/npm'))).toEqual([]);
  });

  it('a second backup of the service is refused while an earlier run still copies its database', async () => {
    const dir = tmpDir();
    npmLayout(dir, 1, 'delete');
    const cfg = npmConfig(dir, 30);
    // an earlier run that is still alive holds the service's lock
    const earlier = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(earlier);
    const stat = fs.readFileSync(`/proc/${earlier.pid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const lock = write(path.join(dir, 'state/plugins/nginx-proxy-manager/npm/lock'), `${earlier.pid} ${start}`);
    const r = await runCli(['backup', 'npm', '--json', '--config', cfg]);
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0].error).toMatch(new RegExp(`another backup of npm is still running \\(pid ${earlier.pid}\\)`));
    expect(rep.services[0].archive).toBeUndefined();
    expect(fs.existsSync(lock)).toBe(true);
    // once that process is gone, its lock is taken over
    earlier.kill('SIGKILL');
    await new Promise((res) => earlier.once('exit', res));
    const ok = json(await runCli(['backup', 'npm', '--json', '--config', cfg]));
    expect(ok.services[0].status).toBe('success');
    expect(fs.existsSync(lock)).toBe(false);
  });
});

describe('host', () => {
  it('`include_defaults: false` without backup_paths is refused by config validate, with file and line', async () => {
    const dir = tmpDir();
    const cfg = write(
      path.join(dir, 'c.yaml'),
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nbackup:\n  root: ./backups\nservices:\n  - name: node1\n    type: host\n    include_defaults: false\n  - name: node2\n    type: host\n    include_defaults: false\n    backup_paths: []\n`,
    );
    const r = await runCli(['config', 'validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${cfg}:7:5: services[0]: missing required key 'backup_paths'`);
    expect(r.stderr).toMatch(new RegExp(`${cfg}:13:\\d+: services\\[1\\]\\.backup_paths: must NOT have fewer than 1 items`));
  });

  it('on a host without Proxmox, the skipped defaults are warned about once, not every night', async () => {
    expect(fs.existsSync('/etc/pve')).toBe(false);
    const dir = tmpDir();
    write(path.join(dir, 'scripts/run.sh'), 'echo hi\n');
    const cfg = write(
      path.join(dir, 'c.yaml'),
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nbackup:\n  root: ./backups\nservices:\n  - name: node1\n    type: host\n    backup_paths: [./scripts]\n`,
    );
    const first = json(await runCli(['backup', 'node1', '--json', '--config', cfg]));
    expect(first.services[0].status).toBe('success');
    expect(first.services[0].warnings).toEqual([
      expect.stringMatching(/^\/etc\/pve, .*does not exist on this host|^\/etc\/pve.* do not exist on this host/),
    ]);
    const m = members(first.services[0].archive.path);
    expect(m).toEqual(expect.arrayContaining(['etc/hostname', path.join(dir, 'scripts/run.sh').slice(1)]));
    const second = await runCli(['backup', 'node1', '--json', '--config', cfg], { clockOffsetMs: 2000 });
    expect(json(second).services[0]).toMatchObject({ status: 'success', warnings: [] });
    expect(second.stderr).not.toMatch(/\/etc\/pve/);
  });
});
