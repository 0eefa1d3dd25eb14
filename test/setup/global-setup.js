// Installs what the tests need when it is missing (as root, with apt-get), so that
// `npm test` passes on a fresh machine; otherwise says what to install.
const { execFileSync, spawnSync } = require('node:child_process');
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
  // the monitor: a real DNS server for the dns probe, iputils ping for icmp; install's test verifies the unit
  { check: () => has('dnsmasq') || fs.existsSync('/usr/sbin/dnsmasq'), cmd: 'dnsmasq', pkg: 'dnsmasq-base' },
  { cmd: 'ping', pkg: 'iputils-ping' },
  { cmd: 'systemd-analyze', pkg: 'systemd' },
  {
    check: () =>
      spawnSync('dpkg-query', ['-W', '-f', '${Status}', 'busybox-static'], { encoding: 'utf8' }).stdout.includes('install ok installed'),
    cmd: 'busybox (static)',
    pkg: 'busybox-static',
  },
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
      throw new Error(
        `the tests need ${missing.map((m) => m.cmd).join(', ')}: install ${pkgs.join(' ')} (apt-get install ${pkgs.join(' ')})`,
      );
    }
  }
  const dist = path.join(__dirname, '..', '..', 'dist', 'core', 'config', 'validators');
  if (!fs.existsSync(dist)) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
};
