#!/usr/bin/env node
// `backup --all` of 60 guests on 3 nodes against the PVE API simulator, with vzdump task
// durations spread like a real homelab's (log-normal: many small containers, a few big VMs;
// 1 simulated second stands for about a minute). Reports the makespan against the ideal
// (the longest per-node sum of task times: one vzdump per node at a time, nodes in parallel)
// and the API requests per guest backup. Target: makespan / ideal <= 1.1.
//
//   node bench/pve-backup.js [--guests 60] [--scale 1] [--rounds 1]   (after npm run build)
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startSimulator, DEFAULT_TOKEN_SECRET } = require('../test/pve-sim');

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const GUESTS = arg('--guests', 60);
const SCALE = arg('--scale', 1);
const ROUNDS = arg('--rounds', 1);
const root = path.join(__dirname, '..');

// a deterministic pseudo-random source, so that every run backs up the same "homelab"
let seed = 42;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const gauss = () => Math.sqrt(-2 * Math.log(rand() || 1e-9)) * Math.cos(2 * Math.PI * rand());

function homelab() {
  const nodes = ['pve1', 'pve2', 'pve3'];
  // uneven, as clusters are: the first node carries the most
  const weights = [0.45, 0.33, 0.22];
  const guests = [];
  for (let i = 0; i < GUESTS; i++) {
    const r = rand();
    const node = r < weights[0] ? nodes[0] : r < weights[0] + weights[1] ? nodes[1] : nodes[2];
    const vm = rand() < 0.25;
    // containers: median ~1.2 s, VMs: median ~4 s, long tails
    const ms = Math.round(Math.min(30000, Math.exp((vm ? Math.log(4000) : Math.log(1200)) + 0.6 * gauss())) * SCALE);
    guests.push({
      vmid: 200 + i,
      type: vm ? 'qemu' : 'lxc',
      node,
      name: `g${200 + i}`,
      status: rand() < 0.85 ? 'running' : 'stopped',
      durationMs: ms,
    });
  }
  return { nodes, guests };
}

function run(args, cwd) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [path.join(root, 'bin', 'run.js'), ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOMELAB_AUTOPILOT_CONFIG: '' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (code) => resolve({ code, out, err, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
  });
}

async function round(n) {
  const lab = homelab();
  const byVmid = new Map(lab.guests.map((g) => [g.vmid, g]));
  const sim = await startSimulator({
    quiet: true,
    nodes: lab.nodes.map((name) => ({ name })),
    guests: lab.guests.map(({ durationMs, ...g }) => g),
    vzdumpDurationMs: (g) => byVmid.get(g.vmid)?.durationMs ?? 1000,
    taskDurationMs: 50,
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-pve-'));
  try {
    fs.writeFileSync(path.join(dir, 'token'), DEFAULT_TOKEN_SECRET, { mode: 0o600 });
    const services = lab.guests
      .map((g) => `  - name: g${g.vmid}\n    type: ${g.type === 'qemu' ? 'vm' : 'lxc'}\n    vmid: ${g.vmid}`)
      .join('\n');
    fs.writeFileSync(
      path.join(dir, 'homelab-autopilot.yaml'),
      `global:\n  state_dir: ./state\n  log_dir: ./logs\nplugins:\n  proxmox:\n    host: 127.0.0.1\n    port: ${sim.port}\n    token_id: root@pam!autopilot\n    token_secret_file: ./token\n    fingerprint: "${sim.fingerprint}"\nbackup:\n  root: ./archives\n  retention:\n    keep_last: 3\n  direct_storage:\n    storage: nas\n    path: ${sim.storagePath('nas')}\nservices:\n${services}\n`,
    );
    const r = await run(['backup', '--all', '--json', '--config', path.join(dir, 'homelab-autopilot.yaml')], dir);
    if (r.code !== 0) throw new Error(`backup --all exited ${r.code}: ${r.out.slice(0, 2000)}\n${r.err.slice(-2000)}`);
    const report = JSON.parse(r.out);
    const tasks = sim.tasks.filter((t) => t.type === 'vzdump');
    if (tasks.length !== GUESTS) throw new Error(`expected ${GUESTS} vzdump tasks, saw ${tasks.length}`);
    const perNode = {};
    for (const t of tasks) perNode[t.node] = (perNode[t.node] ?? 0) + (t.ended - t.started);
    const ideal = Math.max(...Object.values(perNode));
    const first = Math.min(...tasks.map((t) => t.started));
    const last = Math.max(...tasks.map((t) => t.ended));
    // overlap check: one vzdump per node at a time
    for (const node of lab.nodes) {
      const ts = tasks.filter((t) => t.node === node).sort((a, b) => a.started - b.started);
      for (let i = 1; i < ts.length; i++) if (ts[i].started < ts[i - 1].ended) throw new Error(`two vzdumps at once on ${node}`);
    }
    const byKind = {};
    for (const q of sim.requests) {
      const k = `${q.method} ${q.path
        .replace(/UPID:[^/]+/, '{upid}')
        .replace(/\/\d{3,}(\/|$)/, '/{vmid}$1')
        .replace(/\/nodes\/[^/]+/, '/nodes/{node}')
        .replace(/content\/.+$/, 'content/{volume}')}`;
      byKind[k] = (byKind[k] ?? 0) + 1;
    }
    return {
      round: n,
      guests: GUESTS,
      ok: report.services.filter((s) => s.status === 'success').length,
      perNodeSeconds: Object.fromEntries(Object.entries(perNode).map(([k, v]) => [k, +(v / 1000).toFixed(2)])),
      idealSeconds: +(ideal / 1000).toFixed(2),
      cliSeconds: +(r.ms / 1000).toFixed(2),
      tasksSpanSeconds: +((last - first) / 1000).toFixed(2),
      ratioCli: +(r.ms / ideal).toFixed(3),
      ratioTasks: +((last - first) / ideal).toFixed(3),
      requests: sim.requests.length,
      requestsPerGuest: +(sim.requests.length / GUESTS).toFixed(1),
      byKind: Object.fromEntries(Object.entries(byKind).sort((a, b) => b[1] - a[1])),
      violations: sim.violations.length,
    };
  } finally {
    await sim.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(async () => {
  const results = [];
  for (let i = 1; i <= ROUNDS; i++) {
    const res = await round(i);
    results.push(res);
    console.log(JSON.stringify(res, null, 2));
  }
  if (ROUNDS > 1) {
    const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(
      `median makespan/ideal: CLI ${med(results.map((r) => r.ratioCli))}, tasks ${med(results.map((r) => r.ratioTasks))}; requests per guest ${med(results.map((r) => r.requestsPerGuest))}`,
    );
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
