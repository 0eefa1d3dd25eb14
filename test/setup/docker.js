// Starts dockerd and a registry on 127.0.0.1:5000 when they are not running (they stay up
// for later runs). Used by the Docker tests only, so that a machine without a working engine
// fails those tests and no others. (global-setup.js installs the packages.)
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

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
  const registryUp = () => spawnSync('bash', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/5000'], { stdio: 'ignore' }).status === 0;
  if (!registryUp()) {
    const dir = '/tmp/homelab-autopilot-registry';
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:5000\n`,
    );
    process.stderr.write('starting a registry on 127.0.0.1:5000 (log: /tmp/homelab-autopilot-registry.log)\n');
    const log = fs.openSync('/tmp/homelab-autopilot-registry.log', 'a');
    spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { detached: true, stdio: ['ignore', log, log] }).unref();
    for (let i = 0; i < 60 && !registryUp(); i++) await sleep(250);
    if (!registryUp()) throw new Error('the registry did not start: see /tmp/homelab-autopilot-registry.log');
  }
}

module.exports = { startDocker };
