// Installs what the tests need when it is missing (as root, with apt-get), so that
// `npm test` passes on a fresh machine; otherwise says what to install.
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const NEEDS = [
  { cmd: 'tar', pkg: 'tar' },
  { cmd: 'zstd', pkg: 'zstd' },
  { cmd: 'gzip', pkg: 'gzip' },
  { cmd: 'script', pkg: 'bsdutils' },
  { cmd: 'sha256sum', pkg: 'coreutils' },
  // the PVE API simulator makes its self-signed certificate with it
  { cmd: 'openssl', pkg: 'openssl' },
  // the Docker tests: a real engine, a registry on 127.0.0.1:5000, compose, and a static busybox for the images
  { cmd: 'dockerd', pkg: 'docker.io' },
  { cmd: 'docker-registry', pkg: 'docker-registry' },
  { cmd: 'docker-compose', pkg: 'docker-compose' },
  { check: () => spawnSync('dpkg-query', ['-W', '-f', '${Status}', 'busybox-static'], { encoding: 'utf8' }).stdout.includes('install ok installed'), cmd: 'busybox (static)', pkg: 'busybox-static' },
];

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

module.exports = async () => {
  const missing = NEEDS.filter((n) => !(n.check ? n.check() : has(n.cmd)));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((m) => m.pkg))];
    if (process.getuid && process.getuid() === 0) {
      process.stderr.write(`\ninstalling what the tests need: ${pkgs.join(' ')}\n`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
      execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
    } else {
      throw new Error(`the tests need ${missing.map((m) => m.cmd).join(', ')}: install ${pkgs.join(' ')} (apt-get install ${pkgs.join(' ')})`);
    }
  }
  await startDocker();
  const dist = path.join(__dirname, '..', '..', 'dist', 'core', 'config', 'validators');
  if (!fs.existsSync(dist)) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts dockerd and a registry on 127.0.0.1:5000 when they are not running (they stay up for later runs). */
async function startDocker() {
  const up = () => spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore' }).status === 0;
  if (!up()) {
    process.stderr.write('starting dockerd (log: /tmp/homelab-autopilot-dockerd.log)\n');
    const log = fs.openSync('/tmp/homelab-autopilot-dockerd.log', 'a');
    spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] }).unref();
    for (let i = 0; i < 120 && !up(); i++) await sleep(500);
    if (!up()) throw new Error('dockerd did not start: see /tmp/homelab-autopilot-dockerd.log');
  }
  const registryUp = () => spawnSync('sh', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/5000'], { stdio: 'ignore', shell: false }).status === 0 || spawnSync('bash', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/5000'], { stdio: 'ignore' }).status === 0;
  if (!registryUp()) {
    const dir = '/tmp/homelab-autopilot-registry';
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:5000\n`);
    process.stderr.write('starting a registry on 127.0.0.1:5000 (log: /tmp/homelab-autopilot-registry.log)\n');
    const log = fs.openSync('/tmp/homelab-autopilot-registry.log', 'a');
    spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { detached: true, stdio: ['ignore', log, log] }).unref();
    for (let i = 0; i < 60 && !registryUp(); i++) await sleep(250);
    if (!registryUp()) throw new Error('the registry did not start: see /tmp/homelab-autopilot-registry.log');
  }
}
