#!/usr/bin/env node
// Start-up time of the CLI against `node -e 0`, interleaved run by run so that the
// machine's noise hits both sides alike. Target: --version and config validate <= 3x.
//
//   node bench/startup.js [runs]     (after npm run build)
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const runs = Number(process.argv[2] || 30);
const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'run.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-startup-'));
fs.mkdirSync(path.join(dir, 'data'));
fs.writeFileSync(path.join(dir, 'data', 'f.txt'), 'x');
const cfg = path.join(dir, 'homelab-autopilot.yaml');
fs.writeFileSync(
  cfg,
  `global:\n  state_dir: ${dir}/state\n  log_dir: ${dir}/logs\nbackup:\n  root: ${dir}/backups\nservices:\n  - name: host\n    type: host\n  - name: data\n    type: files\n    paths: [./data]\n`,
);

const cases = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: 'homelab-autopilot --version', args: [bin, '--version'] },
  { name: 'homelab-autopilot config validate (built-in plugins)', args: [bin, 'config', 'validate', '--config', cfg] },
  {
    name: 'homelab-autopilot config validate (examples/quickstart.yaml, with examples/plugins.d)',
    args: [bin, 'config', 'validate', '--config', path.join(root, 'examples', 'quickstart.yaml')],
  },
  { name: 'homelab-autopilot --help', args: [bin, '--help'] },
];
const times = cases.map(() => []);
for (let i = 0; i < runs + 2; i++) {
  cases.forEach((c, j) => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, c.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
    if (i >= 2) times[j].push(ms); // two warm-up rounds
  });
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const base = median(times[0]);
// two views of the ratio: the medians' ratio, and the median of each round's own ratio (each
// case against the `node -e 0` run just before it, so that both saw the same moment of noise)
const rows = cases.map((c, j) => ({
  case: c.name,
  median_ms: Number(median(times[j]).toFixed(1)),
  ratio: Number((median(times[j]) / base).toFixed(2)),
  paired_ratio: Number(median(times[j].map((t, i) => t / times[0][i])).toFixed(2)),
}));
fs.rmSync(dir, { recursive: true, force: true });
if (process.argv.includes('--json')) console.log(JSON.stringify({ runs, node: process.version, rows }, null, 2));
else {
  console.log(`start-up, median of ${runs} interleaved runs (node ${process.version}, ${os.cpus().length} cpus)`);
  console.log(`${'command'.padEnd(92)} ${'median'.padStart(10)}  ratio  paired`);
  for (const r of rows)
    console.log(`${r.case.padEnd(92)} ${String(r.median_ms).padStart(7)} ms  ${r.ratio.toFixed(2)}x  ${r.paired_ratio.toFixed(2)}x`);
}
