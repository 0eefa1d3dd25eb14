#!/usr/bin/env node
// Start-up of this build side by side with another build of the CLI (for example the commit
// before a refactor, built in another folder), interleaved run by run so that the machine's
// noise hits both alike; `node -e 0` as the floor.
//
//   node bench/startup-compare.js OTHER_ROOT [runs]     (both built with npm run build)
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const other = process.argv[2];
if (!other || !fs.existsSync(path.join(other, 'bin', 'run.js'))) {
  process.stderr.write('usage: node bench/startup-compare.js OTHER_ROOT [runs]\n');
  process.exit(2);
}
const runs = Number(process.argv[3] || 30);
const here = path.join(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-cmp-'));
fs.mkdirSync(path.join(dir, 'data'));
fs.writeFileSync(path.join(dir, 'data', 'f.txt'), 'x');
const cfg = path.join(dir, 'homelab-autopilot.yaml');
fs.writeFileSync(
  cfg,
  `global:\n  state_dir: ${dir}/state\n  log_dir: ${dir}/logs\nbackup:\n  root: ${dir}/backups\nservices:\n  - name: host\n    type: host\n  - name: data\n    type: files\n    paths: [./data]\n`,
);
const quick = path.join(here, 'examples', 'quickstart.yaml');
const cases = [];
for (const [label, root] of [
  ['this build', here],
  ['other build', other],
]) {
  const bin = path.join(root, 'bin', 'run.js');
  cases.push({ name: `${label}: --version`, args: [bin, '--version'] });
  cases.push({ name: `${label}: config validate`, args: [bin, 'config', 'validate', '--config', cfg] });
  cases.push({ name: `${label}: config validate (quickstart, plugins.d)`, args: [bin, 'config', 'validate', '--config', quick] });
}
cases.unshift({ name: 'node -e 0', args: ['-e', '0'] });
const times = cases.map(() => []);
for (let r = 0; r < runs; r++) {
  cases.forEach((c, i) => {
    const t0 = process.hrtime.bigint();
    const res = spawnSync(process.execPath, c.args, { stdio: 'ignore' });
    if (res.status !== 0) throw new Error(`${c.name} exited ${res.status}`);
    times[i].push(Number(process.hrtime.bigint() - t0) / 1e6);
  });
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const base = median(times[0]);
process.stdout.write(`start-up, median of ${runs} interleaved runs (node ${process.version}, ${os.cpus().length} cpus)\n`);
cases.forEach((c, i) =>
  process.stdout.write(`${c.name.padEnd(60)} ${median(times[i]).toFixed(1).padStart(8)} ms  ${(median(times[i]) / base).toFixed(2)}x\n`),
);
fs.rmSync(dir, { recursive: true, force: true });
