/**
 * Docker end to end against a real engine: a compose project whose image comes from the local
 * registry on 127.0.0.1:5000. Update to v2 (healthy) succeeds; an update to v3 (which damages
 * its data and dies) is rolled back to v2 with its data intact and an alert sent. Also: the
 * project's backup, `--dry-run` changing nothing, and the docker hypervisor's status.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupTmp, collect, json, runCli, startCli, tmpDir, write } from '../helpers/cli';
import { buildImage, freePort, httpText, publish, REGISTRY, sh, startDocker, waitFor } from '../helpers/docker';
import { Recorder, webhookNotifications } from '../helpers/recorder';

const suffix = `${process.pid}${Date.now() % 100000}`;
const PROJECT = `hatest${suffix}`;
const REF = `${REGISTRY}/autopilot-test/app${suffix}:latest`;
const LOCAL = (v: string): string => `autopilot-test/app${suffix}:${v}`;

let dir: string;
let cfg: string;
let port: number;
let hook: Recorder;
let volume: string;

const compose = (...args: string[]): string =>
  sh('docker-compose', ['--project-name', PROJECT, '--file', path.join(dir, 'app', 'docker-compose.yml'), ...args], {
    cwd: path.join(dir, 'app'),
  });

beforeAll(async () => {
  await startDocker();
  hook = await new Recorder().start();
  dir = tmpDir();
  port = await freePort();
  for (const v of ['v1', 'v2']) buildImage(LOCAL(v), v, false, { label: suffix });
  buildImage(LOCAL('v3'), 'v3', true, { label: suffix });
  // serves, then crashes 3 s after it started: inside the 6 s settle window
  buildImage(LOCAL('v4'), 'v4', false, { label: suffix, crashAfterSeconds: 3 });
  publish(LOCAL('v1'), REF);
  write(
    path.join(dir, 'app', 'docker-compose.yml'),
    `version: "3"
services:
  web:
    image: ${REF}
    ports: ["127.0.0.1:${port}:8080"]
    volumes: ["appdata:/data", "./conf:/conf"]
    restart: "no"
volumes:
  appdata: {}
`,
  );
  write(path.join(dir, 'app', '.env'), 'APP_MODE=test\n');
  write(path.join(dir, 'app', 'conf', 'app.conf'), 'setting=1\n');
  compose('up', '-d');
  await waitFor(async () => ((await httpText(`http://127.0.0.1:${port}/`)) === 'v1' ? true : null));
  volume = sh('docker', ['volume', 'inspect', '--format', '{{.Mountpoint}}', `${PROJECT}_appdata`]).trim();
  cfg = path.join(dir, 'homelab-autopilot.yaml');
  write(
    cfg,
    `global:
  state_dir: ./state
  log_dir: ./logs
backup:
  root: ./backups
updates:
  settle_seconds: 6
  check_interval: 1
  keep_snapshots: 2
  min_free_mb: 10
${webhookNotifications(hook.url)}services:
  - name: app
    type: docker-compose
    project_dir: ./app
    project_name: ${PROJECT}
    health_checks:
      - type: http
        url: http://127.0.0.1:${port}/
        expect_status: 200
      - type: running
  - name: web-container
    type: docker
    container: ${PROJECT}_web_1
    backup: false
`,
  );
}, 180_000);

afterAll(async () => {
  try {
    compose('down', '-v', '--remove-orphans');
  } catch {
    /* already gone */
  }
  const keep = sh('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', 'homelab-autopilot/rollback'])
    .split('\n')
    .filter((t) => t.includes(PROJECT));
  for (const t of [LOCAL('v1'), LOCAL('v2'), LOCAL('v3'), LOCAL('v4'), REF, ...keep]) {
    try {
      sh('docker', ['rmi', '-f', t]);
    } catch {
      /* not there */
    }
  }
  await hook?.stop();
  cleanupTmp();
});

/** Everything an update could change: containers and their images, tags, volume and project files, snapshots, state. */
function world(): string {
  const h = (f: string): string => (fs.existsSync(f) ? createHash('sha256').update(fs.readFileSync(f)).digest('hex') : 'absent');
  const walk = (d: string): string[] =>
    fs.existsSync(d)
      ? fs
          .readdirSync(d, { recursive: true })
          .map(String)
          .sort()
          .map((f) => `${f}:${fs.statSync(path.join(d, f)).isFile() ? h(path.join(d, f)) : 'dir'}`)
      : [];
  return JSON.stringify({
    containers: sh('docker', [
      'ps',
      '-a',
      '--filter',
      `label=com.docker.compose.project=${PROJECT}`,
      '--format',
      '{{.ID}} {{.Image}} {{.Status}}',
    ]).replace(/Up [^\n]*/g, 'Up'),
    tag: (() => {
      try {
        return sh('docker', ['image', 'inspect', '--format', '{{.Id}}', REF]);
      } catch {
        return 'absent';
      }
    })(),
    volume: walk(volume),
    project: walk(path.join(dir, 'app')),
    state: walk(path.join(dir, 'state')).filter((f) => !/\.db-(wal|shm)/.test(f)),
  });
}

describe('docker-compose services against a real Docker engine', () => {
  it('backs up the compose file, .env and the volumes, readable with tar and zstd', async () => {
    const r = await runCli(['backup', 'app', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    const rep = json(r);
    const archive = rep.services[0].archive.path as string;
    const list = sh('sh', ['-c', `zstd -dc '${archive}' | tar -t`]);
    expect(list).toContain(`${path.join(dir, 'app', 'docker-compose.yml').slice(1)}`);
    expect(list).toContain(`${path.join(dir, 'app', '.env').slice(1)}`);
    expect(list).toContain(`${path.join(volume, 'important').slice(1)}`);
    expect(list).toContain(`${path.join(dir, 'app', 'conf', 'app.conf').slice(1)}`);
  });

  it('status shows the container through the docker hypervisor', async () => {
    const st = json(await runCli(['status', 'web-container', '--json', '--config', cfg]));
    expect(st.services[0].guest).toMatchObject({ state: 'running', name: `${PROJECT}_web_1` });
    expect(st.services[0].guest.ips.length).toBeGreaterThan(0);
  });

  it('update --dry-run prints the plan and changes nothing', async () => {
    publish(LOCAL('v2'), REF);
    const before = world();
    const r = await runCli(['update', 'app', '--dry-run', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/1\. precheck +would pass now/);
    expect(r.stdout).toMatch(/2\. prepare +docker-compose: fetch the new version \(nothing is stopped\)/);
    expect(r.stdout).toMatch(/3\. snapshot +record the image of each container of project .*archive its volumes \(.*_appdata\/_data.*\)/);
    expect(r.stdout).toMatch(/4\. update +docker-compose up -d/);
    expect(r.stdout).toMatch(
      /5\. validate +http http:\/\/127\.0\.0\.1:\d+\/, running: every 1s; healthy within 6s, then for 6s without a failure or a restart/,
    );
    expect(world()).toBe(before);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v1');
  });

  it('updates to v2: snapshot, pull, recreate, validate', async () => {
    const r = await runCli(['update', 'app', '--yes', '--json', '--config', cfg], { timeoutMs: 180_000 });
    const rep = json(r);
    expect(rep.services[0].status).toBe('success');
    expect(r.code).toBe(0);
    expect(rep.services[0].steps.find((s: { step: string }) => s.step === 'update').detail).toMatch(/new images for web/);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
    expect(fs.readFileSync(path.join(volume, 'history'), 'utf8')).toMatch(/written by v1\n(written by v1\n)*written by v2/);
    expect(hook.requests.map((q) => JSON.parse(q.body).event)).toContain('update_success');
    // the image that ran before is kept by a tag of ours until its snapshot is removed
    const snap = rep.services[0].snapshot.id as string;
    expect(sh('docker', ['image', 'inspect', '--format', '{{.Id}}', `homelab-autopilot/rollback:${PROJECT}_${snap}_web`]).trim()).toBe(
      sh('docker', ['image', 'inspect', '--format', '{{.Id}}', LOCAL('v1')]).trim(),
    );
  });

  it('with nothing new in the registry: "up to date", nothing stopped, no snapshot', async () => {
    const container = (): string =>
      sh('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', '{{.ID}}']).trim();
    const before = { id: container(), started: sh('docker', ['inspect', '--format', '{{.State.StartedAt}}', container()]).trim() };
    const snaps = fs.readdirSync(path.join(dir, 'state', 'plugins', 'docker-compose', 'snapshots')).sort();
    const r = await runCli(['update', 'app', '--yes', '--config', cfg], { timeoutMs: 180_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^app +up to date +- +\S+ +up to date: the image pulled is the one that runs$/m);
    expect(r.stdout).toMatch(/1 up to date: nothing was changed/);
    // the same container, never stopped, and no new snapshot
    expect(container()).toBe(before.id);
    expect(sh('docker', ['inspect', '--format', '{{.State.StartedAt}}', before.id]).trim()).toBe(before.started);
    expect(fs.readdirSync(path.join(dir, 'state', 'plugins', 'docker-compose', 'snapshots')).sort()).toEqual(snaps);
    expect(r.stderr).not.toMatch(/docker-compose .* (stop|up)\b/);
  });

  it('an image reference edited in the compose file is applied, though every running image is the newest of its tag', async () => {
    const file = path.join(dir, 'app', 'docker-compose.yml');
    const original = fs.readFileSync(file, 'utf8');
    const edited = `${REGISTRY}/autopilot-test/app${suffix}:edited`;
    publish(LOCAL('v1'), edited);
    try {
      fs.writeFileSync(file, original.replace(`image: ${REF}`, `image: ${edited}`));
      const r = await runCli(['update', 'app', '--yes', '--json', '--config', cfg], { timeoutMs: 180_000 });
      expect(r.code).toBe(0);
      expect(json(r).services[0]).toMatchObject({ status: 'success' });
      expect(json(r).services[0].steps.find((x: { step: string }) => x.step === 'prepare').detail).toMatch(
        /web \(\S+:latest -> \S+:edited\)/,
      );
      expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v1');
    } finally {
      // back to the reference the next tests expect (v2 at :latest)
      fs.writeFileSync(file, original);
      await runCli(['update', 'app', '--yes', '--config', cfg], { timeoutMs: 180_000 });
      sh('docker', ['rmi', edited]);
    }
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
  });

  it('an update to a broken v3 is rolled back to v2 with its data intact, and alerted', async () => {
    publish(LOCAL('v3'), REF);
    const important = fs.readFileSync(path.join(volume, 'important'), 'utf8');
    const history = fs.readFileSync(path.join(volume, 'history'), 'utf8');
    hook.requests.length = 0;
    const r = await runCli(['update', 'app', '--yes', '--json', '--config', cfg], { timeoutMs: 180_000 });
    expect(r.code).toBe(1);
    const rep = json(r);
    expect(rep.services[0].status).toBe('rolled_back');
    expect(rep.services[0].error).toMatch(
      /validation failed: still unhealthy .*http http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED|validation failed: still unhealthy .*not running/,
    );
    expect(rep.services[0].steps.map((s: { step: string; status: string }) => `${s.step}:${s.status}`)).toEqual([
      'precheck:success',
      'prepare:success',
      'snapshot:success',
      'update:success',
      'validate:failed',
      'rollback:success',
      'revalidate:success',
    ]);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
    // the data as it was before the update: v3's damage and its junk are gone
    expect(fs.readFileSync(path.join(volume, 'important'), 'utf8')).toBe(important);
    expect(fs.existsSync(path.join(volume, 'v3-junk'))).toBe(false);
    expect(fs.readFileSync(path.join(volume, 'history'), 'utf8')).toBe(`${history}written by v2\n`);
    // the compose file's reference points at v2 again, so a plain `up -d` keeps v2
    expect(sh('docker', ['image', 'inspect', '--format', '{{.Id}}', REF]).trim()).toBe(
      sh('docker', ['image', 'inspect', '--format', '{{.Id}}', LOCAL('v2')]).trim(),
    );
    const alert = hook.requests.map((q) => JSON.parse(q.body));
    expect(alert).toHaveLength(1);
    expect(alert[0]).toMatchObject({ event: 'rollback_executed', severity: 'warning', title: 'Update of app failed and was ROLLED BACK' });
  });

  it('a release that crashes a few seconds after it started is rolled back (healthy for the whole settle window)', async () => {
    publish(LOCAL('v4'), REF);
    const r = await runCli(['update', 'app', '--yes', '--json', '--config', cfg], { timeoutMs: 180_000 });
    const rep = json(r);
    expect(rep.services[0].status).toBe('rolled_back');
    expect(rep.services[0].error).toMatch(/^validation failed: unhealthy again \S+s after it was first healthy: /);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
  });

  /** An update to the broken v3, with `docker image prune` (of this test's images only) run while it validates. */
  async function updateWhilePruning(pruneArgs: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = startCli(['update', 'app', '--yes', '--log-level', 'info', '--config', cfg]);
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    const done = collect(child, 180_000);
    // the update step is over: the new release runs, the old image is used by no container
    await waitFor(() => (/^app: update ok/m.test(err) ? true : null), 120_000);
    sh('docker', ['image', 'prune', '--force', ...pruneArgs, '--filter', `label=autopilot-test=${suffix}`]);
    return done;
  }

  it('a `docker image prune` during the settle window does not take the image the rollback needs', async () => {
    publish(LOCAL('v3'), REF);
    // the image that runs (v2) is tagged only by the compose file's reference, which the update moves to v3
    sh('docker', ['rmi', LOCAL('v2')]);
    const important = fs.readFileSync(path.join(volume, 'important'), 'utf8');
    const r = await updateWhilePruning([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^app +ROLLED BACK +autopilot_/m);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
    expect(fs.readFileSync(path.join(volume, 'important'), 'utf8')).toBe(important);
    expect(fs.existsSync(path.join(volume, 'v3-junk'))).toBe(false);
    // human history says what happened
    expect((await runCli(['history', '--kind', 'update', '--limit', '1', '--config', cfg])).stdout).toMatch(/└ app +rolled back: /);
  });

  it('when the old image is gone all the same (prune --all), the rollback pulls it again by its digest', async () => {
    const important = fs.readFileSync(path.join(volume, 'important'), 'utf8');
    const r = await updateWhilePruning(['--all']);
    expect(r.stdout).toMatch(/^app +ROLLED BACK +autopilot_/m);
    expect(r.stderr).toMatch(/pulling 127\.0\.0\.1:5000\/autopilot-test\/app\d+@sha256:/);
    expect(r.code).toBe(1);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
    expect(fs.readFileSync(path.join(volume, 'important'), 'utf8')).toBe(important);
  });

  it('rollback by hand goes back to the newest autopilot snapshot: its data and its image', async () => {
    const snaps = json(await runCli(['history', '--kind', 'update', '--limit', '1', '--json', '--config', cfg]))[0].children[0].summary;
    fs.writeFileSync(path.join(volume, 'written-after'), 'x');
    const r = await runCli(['rollback', 'app', '--yes', '--json', '--config', cfg], { timeoutMs: 180_000 });
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ status: 'success', reason: 'the newest autopilot snapshot', snapshot: { id: snaps.snapshot } });
    expect(fs.existsSync(path.join(volume, 'written-after'))).toBe(false);
    expect(await httpText(`http://127.0.0.1:${port}/`)).toBe('v2');
    const h = json(await runCli(['history', '--limit', '1', '--json', '--config', cfg]));
    expect(h[0]).toMatchObject({ kind: 'rollback', target: 'app', status: 'success' });
  });
});
