#!/usr/bin/env node
// Archive benchmark: `homelab-autopilot backup` of a generated data set side by side with
// `tar -cf - DIR | zstd -3` on the same data, interleaved round by round on this noisy
// shared machine, and the peak RSS of our Node process at 1 GiB and 4 GiB.
//
//   npm run build && node bench/archive.js [--rounds 3] [--skip-4g] [--keep] [--fresh-state]
//
// Our runs find the state database of an earlier run, as a nightly cron job does (one
// untimed run creates it); --fresh-state makes every timed run the first one instead.
//
// The data set: 20,000 small text files, compressible log, random bytes (about 1 GiB;
// the 4 GiB set has four times the log and random bytes).
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf('--rounds') + 1]) || 3;
const skip4g = args.includes('--skip-4g');
const keep = args.includes('--keep');
const freshState = args.includes('--fresh-state');
const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'run.js');
const work = fs.mkdtempSync(path.join(process.env.BENCH_DIR || os.tmpdir(), 'ha-bench-archive-'));
const MiB = 1 << 20;

function writeBig(file, bytes, fill) {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(8 * MiB);
  for (let done = 0; done < bytes; done += chunk.length) {
    const n = Math.min(chunk.length, bytes - done);
    fill(chunk, done);
    fs.writeSync(fd, chunk, 0, n);
  }
  fs.closeSync(fd);
}

function makeDataset(dir, scale) {
  fs.mkdirSync(dir, { recursive: true });
  const words = ['backup', 'proxmox', 'container', 'verified', 'snapshot', 'homelab', 'zstd', 'retention', 'node', 'storage'];
  for (let i = 0; i < 20000; i++) {
    const sub = path.join(dir, 'small', String(i % 100));
    if (i < 100) fs.mkdirSync(sub, { recursive: true });
    const len = 500 + ((i * 7919) % 4000);
    let s = '';
    while (s.length < len) s += words[(s.length * 31 + i) % words.length] + (s.length % 11 === 0 ? '\n' : ' ');
    fs.writeFileSync(path.join(sub, `file-${i}.txt`), s);
  }
  let line = 0;
  writeBig(path.join(dir, 'app.log'), 450 * MiB * scale, (buf) => {
    let off = 0;
    while (off < buf.length) {
      const t = new Date(1767225600000 + line * 1370).toISOString();
      const l = `${t} INFO [worker-${line % 8}] request ${line} handled in ${(line * 37) % 997}ms status=${line % 17 === 0 ? 500 : 200} path=/api/v1/items/${line % 1000}\n`;
      off += buf.write(l, off);
      line++;
    }
  });
  writeBig(path.join(dir, 'random.bin'), 500 * MiB * scale, (buf) => crypto.randomFillSync(buf));
}

function du(dir) {
  let total = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else total += fs.statSync(f).size;
    }
  };
  walk(dir);
  return total;
}

/** Before each timed run: earlier output flushed to disk, and (as root) the page cache dropped, so every run starts alike. */
function settle() {
  spawnSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    /* not root: every run reads from a warm cache */
  }
}

/** Untimed clean-up between rounds: our archives go (retention keeps 1000, so it has nothing to prune anyway); the state stays unless --fresh-state. */
function resetOurs() {
  for (const f of fs.readdirSync(work))
    if (f.startsWith('backups-') || (freshState && f.startsWith('state-'))) fs.rmSync(path.join(work, f), { recursive: true, force: true });
}

function timeReference(dir, out, durable) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const fd = fs.openSync(out, 'w');
    const tar = spawn('tar', ['-cf', '-', '-C', path.dirname(dir), path.basename(dir)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const zstd = spawn('zstd', ['-3', '-q', '-c'], { stdio: [tar.stdout, fd, 'inherit'] });
    tar.stdout.destroy();
    let n = 0;
    const done = () => {
      if (++n < 2) return;
      if (durable) fs.fsyncSync(fd);
      fs.closeSync(fd);
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    tar.on('close', (c) => (c === 0 ? done() : reject(new Error(`tar ${c}`))));
    zstd.on('close', (c) => (c === 0 ? done() : reject(new Error(`zstd ${c}`))));
  });
}

function runOurs(config) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [bin, 'backup', '--all', '--json', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
      } catch {
        /* exited */
      }
    }, 50);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      clearInterval(poll);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) return reject(new Error(`backup exited ${code}: ${err}`));
      const report = JSON.parse(out);
      resolve({ ms, peak, size: report.services[0].archive.size });
    });
  });
}

function configFor(dir, name, verify) {
  const file = path.join(work, `${name}.yaml`);
  fs.writeFileSync(
    file,
    `global:\n  state_dir: ${work}/state-${name}\n  log_dir: ${work}/logs\nbackup:\n  root: ${work}/backups-${name}\n  verify: ${verify}\n  retention:\n    keep_last: 1000\nservices:\n  - name: data\n    type: files\n    paths: [${dir}]\n`,
  );
  return file;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (b) => `${(b / MiB).toFixed(0)} MiB`;

(async () => {
  const results = [];
  const sets = skip4g ? [1] : [1, 4];
  for (const scale of sets) {
    const dir = path.join(work, `data-${scale}g`);
    process.stderr.write(`generating the ${scale} GiB data set in ${dir} …\n`);
    makeDataset(dir, scale);
    const bytes = du(dir);
    const noVerify = configFor(dir, `nv${scale}`, false);
    const withVerify = configFor(dir, `v${scale}`, true);
    const n = scale === 1 ? rounds : 1;
    if (!freshState) {
      // the first run ever (untimed) creates the state database; the timed ones find it
      await runOurs(noVerify);
      await runOurs(withVerify);
      resetOurs();
    }
    const ref = [];
    const refSync = [];
    const ours = [];
    const oursV = [];
    let peak = 0;
    let peakV = 0;
    let size = 0;
    for (let i = 0; i < n; i++) {
      settle();
      ref.push(await timeReference(dir, path.join(work, 'ref.tar.zst'), false));
      settle();
      refSync.push(await timeReference(dir, path.join(work, 'ref.tar.zst'), true));
      resetOurs();
      settle();
      const a = await runOurs(noVerify);
      ours.push(a.ms);
      peak = Math.max(peak, a.peak);
      size = a.size;
      resetOurs();
      settle();
      const b = await runOurs(withVerify);
      oursV.push(b.ms);
      peakV = Math.max(peakV, b.peak);
      process.stderr.write(
        `round ${i + 1}/${n}: tar|zstd ${ref[i].toFixed(0)} ms, tar|zstd+fsync ${refSync[i].toFixed(0)} ms, backup ${ours[i].toFixed(0)} ms, backup verified ${oursV[i].toFixed(0)} ms, peak RSS ${fmt(a.peak)} / ${fmt(b.peak)}\n`,
      );
    }
    const refSize = fs.statSync(path.join(work, 'ref.tar.zst')).size;
    // besides the medians' ratio: the median of each round's own ratio (both runs of a round saw the same moment of noise)
    const paired = (xs) => median(xs.map((x, i) => x / ref[i]));
    results.push({
      scale,
      bytes,
      rounds: n,
      ref: median(ref),
      refSync: median(refSync),
      ours: median(ours),
      oursV: median(oursV),
      paired: paired(ours),
      pairedV: paired(oursV),
      peak,
      peakV,
      size,
      refSize,
    });
    fs.rmSync(dir, { recursive: true, force: true });
    for (const f of fs.readdirSync(work)) if (f.startsWith('backups-')) fs.rmSync(path.join(work, f), { recursive: true, force: true });
  }
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
  console.log(
    "| data set | rounds | tar \\| zstd -3 | same + fsync | backup | ratio | paired ratio | ratio to fsync'd | backup + verify | ratio | paired ratio | peak RSS (backup / + verify) | archive vs reference |",
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
    console.log(
      `| ${fmt(r.bytes)} | ${r.rounds} | ${sec(r.ref)} | ${sec(r.refSync)} | ${sec(r.ours)} | ${(r.ours / r.ref).toFixed(2)}× | ${r.paired.toFixed(2)}× | ${(r.ours / r.refSync).toFixed(2)}× | ${sec(r.oursV)} | ${(r.oursV / r.ref).toFixed(2)}× | ${r.pairedV.toFixed(2)}× | ${fmt(r.peak)} / ${fmt(r.peakV)} | ${fmt(r.size)} vs ${fmt(r.refSize)} |`,
    );
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
