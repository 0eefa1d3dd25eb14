#!/usr/bin/env node
// The monitor's figures (issue 12, section 6). After `npm run build`:
//
//   node bench/monitor.js pass [runs]      one pass over 1,000 HTTP checks against loopback servers,
//                                          side by side with a plain Node loop fetching the same URLs
//                                          with the same concurrency; then with 50 checks hanging
//   node bench/monitor.js state [days]     1,000 checks every 60 s over 90 simulated days (injected
//                                          clock): state.db size, and how fast `status` answers
//   node bench/monitor.js idle [minutes]   the daemon idle with 200 checks every 30 s: RSS and CPU
//
// The servers run in a process of their own, so their work is not counted on either side.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'run.js');
const CHECKS = 1000;
const CONCURRENCY = 50;
const HANG_TIMEOUT_S = 2;

const SERVERS = `
const http = require('node:http');
const ports = [];
let n = Number(process.argv[1]);
const servers = [];
for (let i = 0; i < n; i++) {
  const s = http.createServer((req, res) => {
    if (req.url.startsWith('/hang')) return; // never answers
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok ' + req.url);
  });
  s.keepAliveTimeout = 60000;
  servers.push(s);
}
Promise.all(servers.map((s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s.address().port))))).then((p) => {
  process.stdout.write(JSON.stringify(p) + '\\n');
});
`;

function startServers(n) {
  const child = spawn(process.execPath, ['-e', SERVERS, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    child.stdout.once('data', (d) => resolve({ ports: JSON.parse(String(d)), stop: () => child.kill() }));
  });
}

function urls(ports, hanging) {
  return Array.from(
    { length: CHECKS },
    (_, i) => `http://127.0.0.1:${ports[i % ports.length]}/${hanging && i % Math.floor(CHECKS / hanging) === 0 ? 'hang' : 'ok'}/${i}`,
  );
}

function configFor(dir, list) {
  const targets = list.map((u, i) => `    - name: t${i}\n      health_checks:\n        - type: http\n          url: ${u}\n`).join('');
  const cfg = path.join(dir, 'ha.yaml');
  fs.writeFileSync(
    cfg,
    `global:\n  state_dir: ${dir}/state\n  log_dir: ${dir}/logs\nbackup:\n  root: ${dir}/backups\nmonitoring:\n  concurrency: ${CONCURRENCY}\n  timeout: ${HANG_TIMEOUT_S}\n  resources:\n    enabled: false\n  targets:\n${targets}services: []\n`,
  );
  return cfg;
}

// the engine's pass, in a fresh process: wall and CPU of the pass alone (the config and plugins loaded before)
const ENGINE = `
const { openApp } = require(${JSON.stringify(path.join(root, 'dist', 'core', 'app.js'))});
const { createLogger } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'log.js'))});
(async () => {
  const ac = new AbortController();
  const app = await openApp({ configPath: process.argv[1], signal: ac.signal, state: 'rw',
    makeLogger: (g) => createLogger({ level: 'warn', format: 'human', dir: g.log_dir, stderrLevel: 'error' }).logger });
  const engine = app.monitorEngine();
  const c0 = process.cpuUsage(); const t0 = process.hrtime.bigint();
  const r = await engine.pass({ signal: ac.signal });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6; const c = process.cpuUsage(c0);
  await app.close();
  process.stdout.write(JSON.stringify({ wall, cpu: (c.user + c.system) / 1000, up: r.checks.filter((x) => x.ok).length }) + '\\n');
})();
`;

// the reference: a plain loop doing the same job with the same concurrency and timeout, nothing
// recorded. The same job: a check opens a fresh connection each time, as a visitor would (and as
// it must at a real interval of 30-60 s, long after any server's keep-alive ended), so the loop
// does too (agent: false, Connection: close). PLAIN_KEEPALIVE=1 lets it reuse connections instead.
const PLAIN = `
const http = require('node:http');
const list = require('node:fs').readFileSync(process.argv[1], 'utf8').split('\\n').filter(Boolean);
const get = (u) => new Promise((resolve) => {
  const t0 = Date.now();
  const req = http.get(u, process.env.PLAIN_KEEPALIVE ? {} : { agent: false, headers: { Connection: 'close' } }, (res) => { let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d)); res.on('end', () => { clearTimeout(t); resolve(res.statusCode === 200); }); });
  const t = setTimeout(() => req.destroy(new Error('timeout')), ${HANG_TIMEOUT_S * 1000});
  req.on('error', () => { clearTimeout(t); resolve(false); });
});
(async () => {
  const c0 = process.cpuUsage(); const t0 = process.hrtime.bigint();
  let next = 0; let up = 0;
  await Promise.all(Array.from({ length: ${CONCURRENCY} }, async () => { while (next < list.length) if (await get(list[next++])) up++; }));
  const wall = Number(process.hrtime.bigint() - t0) / 1e6; const c = process.cpuUsage(c0);
  process.stdout.write(JSON.stringify({ wall, cpu: (c.user + c.system) / 1000, up }) + '\\n');
})();
`;

function runJson(args) {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${args[0]} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

/** The whole CLI, end to end (start-up, config, plugins, state, the pass, the table): wall and CPU from /usr/bin/time. */
function cli(cfg) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', process.execPath, bin, 'monitor', '--config', cfg], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const [e, u, s] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { wall: e * 1000, cpu: (u + s) * 1000, code: r.status };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function pass(runs) {
  const { ports, stop } = await startServers(20);
  const out = [];
  try {
    for (const hanging of [0, 50]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-monitor-'));
      const list = urls(ports, hanging);
      const cfg = configFor(dir, list);
      const listFile = path.join(dir, 'urls.txt');
      fs.writeFileSync(listFile, list.join('\n'));
      runJson(['-e', ENGINE, cfg]); // warm-up: creates state.db and the checks
      const eng = [];
      const plain = [];
      const whole = [];
      for (let i = 0; i < runs; i++) {
        eng.push(runJson(['-e', ENGINE, cfg]));
        plain.push(runJson(['-e', PLAIN, listFile]));
        whole.push(cli(cfg));
      }
      const m = (xs, k) => median(xs.map((x) => x[k]));
      out.push({
        hanging,
        engine: { wall: m(eng, 'wall'), cpu: m(eng, 'cpu'), up: eng[0].up },
        plain: { wall: m(plain, 'wall'), cpu: m(plain, 'cpu'), up: plain[0].up },
        cli: { wall: m(whole, 'wall'), cpu: m(whole, 'cpu') },
      });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    stop();
  }
  for (const r of out) {
    console.log(
      `${CHECKS} HTTP checks, ${r.hanging} hanging (timeout ${HANG_TIMEOUT_S}s), concurrency ${CONCURRENCY}, median of ${runs}:\n` +
        `  engine pass      wall ${r.engine.wall.toFixed(0)} ms, CPU ${r.engine.cpu.toFixed(0)} ms (${r.engine.up} up)\n` +
        `  plain Node loop  wall ${r.plain.wall.toFixed(0)} ms, CPU ${r.plain.cpu.toFixed(0)} ms (${r.plain.up} up)\n` +
        `  ratio (wall)     ${(r.engine.wall / r.plain.wall).toFixed(2)}x, CPU ${(r.engine.cpu / r.plain.cpu).toFixed(2)}x\n` +
        `  whole CLI run    wall ${r.cli.wall.toFixed(0)} ms, CPU ${r.cli.cpu.toFixed(0)} ms (start-up, config, state, table included)`,
    );
  }
  return out;
}

// 90 days of 1,000 checks on an injected clock, through the engine's own recording path
const STATE = `
const { StateManager } = require(${JSON.stringify(path.join(root, 'dist', 'lib', 'state', 'index.js'))});
const dir = process.argv[1]; const days = Number(process.argv[2]); const checks = ${CHECKS};
const state = StateManager.open(dir);
const start = Date.UTC(2026, 0, 1);
const rows = [];
state.monitor.batch(() => { for (let i = 0; i < checks; i++) rows.push(state.monitor.ensureCheck({ key: 't' + i + '/http', subject: 't' + i, label: 'http', type: 'http' }, new Date(start).toISOString())); });
const retention = { raw: 86400, hourly: 30 * 86400, daily: 400 * 86400 };
const t0 = Date.now();
for (let m = 0; m < days * 1440; m++) {
  const at = new Date(start + m * 60000);
  if (m % 60 === 0) state.monitor.batch(() => {
    // the checks' own rows (1,000, updated in place) do not grow; every result and its rollups do
    for (let i = 0; i < checks; i++) {
      if ((m + i) % 97 === 1) state.monitor.record(rows[i].id, { at, ok: false, ms: 1, detail: 'status 503' }, { fails: 1, oks: 0, health: 'DOWN', state: 'DOWN' }, { health: 'UP', state: 'UP' });
      else if ((m + i) % 97 === 2) state.monitor.record(rows[i].id, { at, ok: true, ms: 1, detail: 'status 200' }, { fails: 0, oks: 1, health: 'UP', state: 'UP' }, { health: 'DOWN', state: 'DOWN' });
    }
  });
  // one transaction per simulated 10 minutes (the daemon commits about once a second: the same rows)
  if (m % 10 === 0) state.monitor.batch(() => {
    for (let k = m; k < m + 10; k++) {
      for (let i = 0; i < checks; i++) {
        const ok = (k + i) % 97 !== 0;
        state.monitor.appendResult(rows[i].id, start + k * 60000, ok, 5 + ((k * 7 + i) % 40), null);
      }
    }
    if (m % 60 === 0) state.monitor.rollup(at, retention);
  });
  if (m % (1440 * 10) === 0 && m) process.stderr.write('day ' + m / 1440 + ' (' + ((Date.now() - t0) / 1000).toFixed(0) + ' s)\\n');
}
state.monitor.rollup(new Date(start + days * 86400000), retention);
state.close();
process.stdout.write(JSON.stringify({ seconds: (Date.now() - t0) / 1000 }) + '\\n');
`;

async function stateSize(days) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-state-'));
  const stateDir = path.join(dir, 'state');
  const r = runJson(['-e', STATE, stateDir, String(days)]);
  // checkpoint the WAL so that the file size is the database's
  const { StateManager } = require(path.join(root, 'dist', 'lib', 'state', 'index.js'));
  const s = StateManager.open(stateDir);
  s.close();
  const size = fs.statSync(path.join(stateDir, 'state.db')).size;
  // status over the 1,000 checks, with uptimes over 24 h, 7 d and 30 d, at the end of the simulated time
  const list = Array.from({ length: CHECKS }, (_, i) => `http://127.0.0.1:9/t${i}`);
  const cfg = configFor(dir, list);
  const offset = Date.UTC(2026, 0, 1) + days * 86400000 - Date.now();
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    const st = spawnSync(
      process.execPath,
      ['--require', path.join(root, 'test', 'helpers', 'clock-offset.js'), bin, 'status', '--json', '--config', cfg],
      {
        encoding: 'utf8',
        env: { ...process.env, HA_TEST_CLOCK_OFFSET_MS: String(offset) },
        maxBuffer: 1 << 26,
      },
    );
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (i === 0) {
      const report = JSON.parse(st.stdout);
      const t0 = report.targets.find((t) => t.subject === 't0');
      console.log(
        `  status: ${report.targets.length} targets; t0 uptime 24h ${t0?.uptime.h24?.toFixed(4)}, 30d ${t0?.uptime.d30?.toFixed(4)}, p95 ${t0?.p95Ms} ms`,
      );
    }
  }
  console.log(
    `${CHECKS} checks every 60 s over ${days} simulated days (recorded in ${r.seconds.toFixed(0)} s): state.db ${(size / 1048576).toFixed(1)} MiB; ` +
      `status with uptimes: median ${median(times).toFixed(0)} ms (of 5 runs, the CLI's start-up included)`,
  );
  if (process.env.KEEP) console.log(`kept: ${dir} (config ${cfg}, clock offset ${offset} ms)`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

async function main() {
  const what = process.argv[2] ?? 'pass';
  if (what === 'pass') await pass(Number(process.argv[3] || 5));
  else if (what === 'state') await stateSize(Number(process.argv[3] || 90));
  else if (what === 'idle') await require('./monitor-idle.js').idle(Number(process.argv[3] || 10));
  else throw new Error(`unknown part ${what}: pass, state or idle`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
