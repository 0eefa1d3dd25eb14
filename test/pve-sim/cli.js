#!/usr/bin/env node
'use strict';
// `npm run pve-sim [-- --port 8006 --cert-dir DIR]`: a default simulated cluster for manual use.

const path = require('path');
const { startSimulator, DEFAULT_TOKEN_SECRET } = require('./index');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`${name}=`));
  return eq ? eq.slice(name.length + 1) : def;
}

async function main() {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log('usage: npm run pve-sim -- [--port 8006] [--cert-dir /tmp/homelab-autopilot-pve-sim] [--apidata FILE]');
    return;
  }
  const port = Number(arg('--port', '8006'));
  const certDir = path.resolve(arg('--cert-dir', '/tmp/homelab-autopilot-pve-sim'));
  const sim = await startSimulator({
    port,
    certDir,
    apidata: arg('--apidata', undefined),
    tokens: [{ id: 'root@pam!autopilot', secret: DEFAULT_TOKEN_SECRET, privsep: false }],
    taskDurationMs: Number(arg('--task-ms', '1500')),
  });
  console.log(`PVE simulator listening on ${sim.url}  (API: ${sim.apiUrl})`);
  console.log(`  API token:    PVEAPIToken=${sim.token}`);
  console.log('  login:        root@pam / simpass');
  console.log(`  fingerprint:  ${sim.fingerprint}`);
  console.log(`  CA file:      ${sim.certFile}`);
  console.log(`  storages:     local=${sim.storagePath('local')}  nas=${sim.storagePath('nas')}  local-lvm (lvmthin)  pbs (store1)`);
  console.log(
    '  nodes:        pve1 pve2 pve3; guests 100 lxc web@pve1 (running), 101 lxc dns@pve2 (running), 102 qemu nextcloud@pve3 (running), 103 lxc media@pve1 (stopped)',
  );
  console.log(`  schema check: ${sim.schemaChecked ? 'active' : 'NOT active'} - ${sim.schemaNote}`);
  console.log('Ctrl-C stops.');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (sim.violations.length) console.log(`\n${sim.violations.length} request(s) real PVE would refuse:`, sim.violations);
    await sim.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e) => {
  console.error(`pve-sim: ${e.message}`);
  process.exit(1);
});
