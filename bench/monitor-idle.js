// The daemon idle (issue 12, section 6): `node bench/monitor.js idle [minutes]`, after `npm run build`.
//
// 200 HTTP checks every 30 s against loopback servers in a process of their own; the built CLI's
// `daemon` as a real child process. Once the first round of checks is in /metrics, the daemon's
// RSS (VmRSS) and CPU time (utime + stime) are sampled from /proc every 10 s for `minutes`
// minutes; then the daemon gets SIGTERM and must exit 0.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'run.js');
const CHECKS = 200;
const SERVERS = 20;
const INTERVAL_S = 30;
const SAMPLE_S = 10;

const SERVERS_JS = `
const http = require('node:http');
const n = Number(process.argv[1]);
const servers = [];
for (let i = 0; i < n; i++) {
  const s = http.createServer((req, res) => {
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
  const child = spawn(process.execPath, ['-e', SERVERS_JS, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve({ ports: JSON.parse(String(d)), stop: () => child.kill() }));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function writeConfig(dir, ports, port) {
  const targets = Array.from(
    { length: CHECKS },
    (_, i) =>
      `    - name: t${i}\n      health_checks:\n        - type: http\n          url: http://127.0.0.1:${ports[i % ports.length]}/ok/${i}\n          interval: ${INTERVAL_S}\n`,
  ).join('');
  const cfg = path.join(dir, 'ha.yaml');
  fs.writeFileSync(
    cfg,
    `global:\n  state_dir: ${dir}/state\n  log_dir: ${dir}/logs\nbackup:\n  root: ${dir}/backups\n` +
      `monitoring:\n  interval: ${INTERVAL_S}\n  resources:\n    enabled: false\n  targets:\n${targets}` +
      `schedules:\n  monitor: true\ndaemon:\n  port: ${port}\nservices: []\n`,
  );
  return cfg;
}

function get(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${p}: no answer in 5 s`)));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const upLines = (body) => (body.match(/^homelab_autopilot_check_up\{[^}]*\} 1$/gm) || []).length;

/** VmRSS in KiB and the CPU time in clock ticks (utime + stime; cutime + cstime apart) of a process. */
function sample(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]);
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the fields after the command name (which may hold spaces) in parentheses: state is field 3
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
  return { t: Date.now(), rss, cpu: utime + stime, children: cutime + cstime };
}

/** Least-squares slope of y over x. */
function slope(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : 0;
}

function countResults(stateDir) {
  const Database = require(path.join(root, 'node_modules', 'better-sqlite3'));
  const db = new Database(path.join(stateDir, 'state.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT COUNT(*) AS n FROM monitor_results').get().n;
  } finally {
    db.close();
  }
}

function startDaemon(cfg, logFile) {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [bin, 'daemon', '--config', cfg], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited };
}

/** Until all the checks are up in /metrics: how long the endpoint and the first round took, in ms. */
async function waitFirstRound(port, d, logFile) {
  const t0 = Date.now();
  const end = t0 + 120_000;
  let seen = 0;
  let listening = null;
  for (;;) {
    const done = await Promise.race([d.exited, sleep(0).then(() => null)]);
    if (done) throw new Error(`the daemon exited ${JSON.stringify(done)}:\n${fs.readFileSync(logFile, 'utf8')}`);
    try {
      seen = upLines((await get(port, '/metrics')).body);
      listening ??= Date.now() - t0;
      if (process.env.HA_BENCH_DEBUG) console.error(`${Date.now() - t0} ms: ${seen} up`);
    } catch {
      seen = 0; // not listening yet
    }
    if (seen >= CHECKS) return { listening, firstRound: Date.now() - t0 };
    if (Date.now() > end) throw new Error(`${seen} of ${CHECKS} checks up after 120 s:\n${fs.readFileSync(logFile, 'utf8')}`);
    await sleep(500);
  }
}

function report(minutes, samples, hz, results, start) {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const rss = samples.map((s) => s.rss);
  const wall = (last.t - first.t) / 1000;
  const cpu = (last.cpu - first.cpu) / hz;
  const kibPerMin = slope(
    samples.map((s) => (s.t - first.t) / 60000),
    rss,
  );
  const mib = (k) => `${(k / 1024).toFixed(1)} MiB`;
  const perMinute = [];
  for (let m = 1; m <= minutes; m++) {
    const a = samples[(m - 1) * (60 / SAMPLE_S)];
    const b = samples[m * (60 / SAMPLE_S)];
    if (!a || !b) break;
    perMinute.push((((b.cpu - a.cpu) / hz / ((b.t - a.t) / 1000)) * 100).toFixed(2));
  }
  const expected = Math.round((CHECKS * wall) / INTERVAL_S);
  console.log(
    `daemon idle: ${CHECKS} HTTP checks every ${INTERVAL_S} s, ${samples.length} samples every ${SAMPLE_S} s over ${(wall / 60).toFixed(1)} min\n` +
      `  start: /metrics answered ${(start.listening / 1000).toFixed(1)} s after the spawn, all ${CHECKS} checks up after ${(start.firstRound / 1000).toFixed(1)} s\n` +
      `  RSS   start ${mib(first.rss)}, end ${mib(last.rss)}, min ${mib(Math.min(...rss))}, max ${mib(Math.max(...rss))}; ` +
      `slope ${kibPerMin.toFixed(1)} KiB/min (least squares)\n` +
      `  RSS per minute (MiB): ${samples
        .filter((_, i) => i % (60 / SAMPLE_S) === 0)
        .map((s) => (s.rss / 1024).toFixed(1))
        .join(' ')}\n` +
      `  CPU   ${cpu.toFixed(2)} s over ${wall.toFixed(0)} s wall = ${((cpu / wall) * 100).toFixed(2)} % ` +
      `(children reaped: ${((last.children - first.children) / hz).toFixed(2)} s)\n` +
      `  CPU % per minute: ${perMinute.join(' ')}\n` +
      `  check results recorded in state over the period: ${results.during} (about ${expected} expected); ` +
      `${results.end} rows in monitor_results at the end; ${results.up} checks up in /metrics at the end`,
  );
}

async function idle(minutes) {
  if (!fs.existsSync(path.join(root, 'dist', 'bin', 'cli.bundle.js'))) throw new Error('build first: npm run build');
  const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ha-bench-idle-'));
  const servers = await startServers(SERVERS);
  let d;
  try {
    const port = await freePort();
    const cfg = writeConfig(dir, servers.ports, port);
    const logFile = path.join(dir, 'daemon.log');
    d = startDaemon(cfg, logFile);
    const first = await waitFirstRound(port, d, logFile);
    const before = countResults(path.join(dir, 'state'));
    const samples = [sample(d.child.pid)];
    const steps = Math.round((minutes * 60) / SAMPLE_S);
    const start = samples[0].t;
    for (let i = 1; i <= steps; i++) {
      await sleep(Math.max(0, start + i * SAMPLE_S * 1000 - Date.now()));
      samples.push(sample(d.child.pid));
    }
    const after = countResults(path.join(dir, 'state'));
    const up = upLines((await get(port, '/metrics')).body);
    report(minutes, samples, hz, { during: after - before, end: after, up }, first);
    const termAt = Date.now();
    d.child.kill('SIGTERM');
    let timer;
    const end = await Promise.race([d.exited, new Promise((r) => (timer = setTimeout(() => r(null), 60_000)))]);
    clearTimeout(timer);
    if (!end) throw new Error('the daemon did not exit within 60 s of SIGTERM');
    console.log(`  SIGTERM: the daemon exited with ${JSON.stringify(end)} after ${((Date.now() - termAt) / 1000).toFixed(1)} s`);
    if (end.code !== 0) throw new Error(`the daemon exited ${JSON.stringify(end)}:\n${fs.readFileSync(logFile, 'utf8')}`);
    d = null;
  } finally {
    if (d) d.child.kill('SIGKILL');
    servers.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { idle };
