'use strict';
// Backup files on directory storages: writing real archives (tar / fake vma, compressed
// with the zstd/gzip CLIs), listing them like PVE's storage content API (notes §4.10),
// and prune-backups retention (the keep-* marking algorithm).

const fs = require('fs');
const fsp = require('fs/promises');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFile, spawn } = require('child_process');
const { promisify } = require('util');

const execFileP = promisify(execFile);

const BACKUP_RE = /^vzdump-(lxc|qemu|openvz)-(\d+)-(\d{4})_(\d\d)_(\d\d)-(\d\d)_(\d\d)_(\d\d)\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$/;
const COMPRESS_EXT = { 0: '', 1: '.lzo', gzip: '.gz', lzo: '.lzo', zstd: '.zst' };

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Node-local time stamp YYYY_MM_DD-HH_MM_SS (process TZ). */
function localStamp(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}_${pad(d.getMonth() + 1)}_${pad(d.getDate())}-${pad(d.getHours())}_${pad(d.getMinutes())}_${pad(d.getSeconds())}`;
}
/** YYYY-MM-DD HH:MM:SS in local time (vzdump log lines). */
function localTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
/** UTC YYYY-MM-DDTHH:MM:SSZ (PBS snapshot ids). */
function utcStamp(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** PVE's format_size (PVE/VZDump.pm): binary units, KB/MB as integers, GB/TB with 2 decimals. */
function formatSize(size) {
  const kb = size / 1024;
  if (kb < 1024) return `${Math.floor(kb)}KB`;
  const mb = size / (1024 * 1024);
  if (mb < 1024) return `${Math.floor(mb)}MB`;
  const gb = mb / 1024;
  if (gb < 1024) return `${gb.toFixed(2)}GB`;
  return `${(gb / 1024).toFixed(2)}TB`;
}

function configText(guest) {
  return (
    Object.entries(guest.config)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n') + '\n'
  );
}

/** Compress src into dst with the named compressor (the real CLIs). */
async function compressFile(src, dst, compress) {
  if (compress === 'zstd') {
    await execFileP('zstd', ['-q', '-f', '-o', dst, src]);
  } else if (compress === 'gzip') {
    await new Promise((resolve, reject) => {
      const out = fs.createWriteStream(dst);
      const p = spawn('gzip', ['-c', src], { stdio: ['ignore', 'pipe', 'ignore'] });
      p.stdout.pipe(out);
      p.on('error', reject);
      out.on('finish', () => (p.exitCode === 0 || p.exitCode === null ? resolve() : reject(new Error(`gzip exit ${p.exitCode}`))));
      p.on('close', (code) => {
        if (code !== 0) reject(new Error(`gzip exit ${code}`));
      });
    });
  } else {
    // '0' (uncompressed) and lzo (the tar is simply stored under the .lzo name; fine for a simulator)
    await fsp.copyFile(src, dst);
  }
}

/**
 * Write a real archive for guest to finalPath (via <finalPath>.dat then rename, as vzdump does).
 * corrupt=true writes random bytes instead. Returns the size in bytes.
 */
async function writeArchive({ guest, finalPath, compress, corrupt, tmpRoot }) {
  await fsp.mkdir(path.dirname(finalPath), { recursive: true });
  const dat = `${finalPath}.dat`;
  if (corrupt) {
    await fsp.writeFile(dat, crypto.randomBytes(4096 + Math.floor(Math.random() * 4096)));
  } else {
    const work = await fsp.mkdtemp(path.join(tmpRoot || os.tmpdir(), 'vzdump-'));
    try {
      const raw = path.join(work, 'raw');
      if (guest.type === 'lxc') {
        const root = path.join(work, 'root');
        await fsp.mkdir(path.join(root, 'etc', 'vzdump'), { recursive: true });
        await fsp.mkdir(path.join(root, 'root'), { recursive: true });
        await fsp.writeFile(path.join(root, 'etc', 'hostname'), `${guest.config.hostname || guest.name}\n`);
        await fsp.writeFile(
          path.join(root, 'etc', 'os-release'),
          'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
        );
        await fsp.writeFile(path.join(root, 'etc', 'vzdump', 'pct.conf'), configText(guest));
        await fsp.writeFile(path.join(root, 'root', '.bashrc'), '# simulated\n');
        await execFileP('tar', ['-cf', raw, '-C', root, './etc', './root']);
      } else {
        // A small fake VMA: magic, a uuid and the VM config, padded.
        const head = Buffer.from('VMA\0');
        const body = Buffer.from(`uuid=${crypto.randomUUID()}\nqemu-server.conf:\n${configText(guest)}`);
        await fsp.writeFile(raw, Buffer.concat([head, body, Buffer.alloc(8192 - ((head.length + body.length) % 8192))]));
      }
      await compressFile(raw, dat, compress);
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }
  await fsp.rename(dat, finalPath);
  return (await fsp.stat(finalPath)).size;
}

/** Parse a backup file name -> {subtype, vmid, ctime, format} or null. */
function parseBackupName(name) {
  const m = BACKUP_RE.exec(name);
  if (!m) return null;
  const ctime = Math.floor(new Date(+m[3], +m[4] - 1, +m[5], +m[6], +m[7], +m[8]).getTime() / 1000);
  return { subtype: m[1] === 'openvz' ? 'lxc' : m[1], vmid: Number(m[2]), ctime, format: m[9] };
}

/** Backup content items of a dir storage, read from disk, sorted by volid. */
function listDirBackups(storage, vmid) {
  const dir = path.join(storage.path, 'dump');
  let names = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const items = [];
  for (const name of names) {
    const info = parseBackupName(name);
    if (!info) continue;
    if (vmid !== undefined && info.vmid !== Number(vmid)) continue;
    const file = path.join(dir, name);
    let st;
    try {
      st = fs.statSync(file);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    const it = {
      volid: `${storage.id}:backup/${name}`,
      format: info.format,
      size: st.size,
      ctime: info.ctime,
      content: 'backup',
      subtype: info.subtype,
      vmid: info.vmid,
    };
    try {
      const notes = fs.readFileSync(`${file}.notes`, 'utf8').split('\n')[0];
      if (notes !== undefined) it.notes = notes;
    } catch {
      /* no notes */
    }
    if (fs.existsSync(`${file}.protected`)) it.protected = 1;
    items.push(it);
  }
  items.sort((a, b) => (a.volid.toLowerCase() < b.volid.toLowerCase() ? -1 : a.volid.toLowerCase() > b.volid.toLowerCase() ? 1 : 0));
  return items;
}

/** Parse "keep-last=3,keep-daily=7" -> {keep-last:3,...}. */
function parsePrune(str) {
  const out = {};
  for (const part of String(str || '')
    .split(',')
    .filter(Boolean)) {
    const [k, v] = part.split('=');
    out[k.trim()] = Number(v);
  }
  return out;
}

/** Mark backups (newest first) keep/remove/protected per PVE's retention algorithm. */
function pruneMark(entries, keep) {
  const list = [...entries].sort((a, b) => b.ctime - a.ctime).map((e) => ({ ...e, mark: e.protected ? 'protected' : undefined }));
  if (keep['keep-all']) {
    list.forEach((e) => {
      if (!e.mark) e.mark = 'keep';
    });
    return list;
  }
  const d = (t) => new Date(t * 1000);
  const isoWeek = (t) => {
    const x = d(t);
    const day = (x.getDay() + 6) % 7;
    x.setDate(x.getDate() - day + 3);
    const first = new Date(x.getFullYear(), 0, 4);
    return `${x.getFullYear()}/${1 + Math.round(((x - first) / 86400000 - 3 + ((first.getDay() + 6) % 7)) / 7)}`;
  };
  const ids = {
    'keep-last': (t) => String(t) + Math.random(),
    'keep-hourly': (t) => {
      const x = d(t);
      return `${x.getFullYear()}/${x.getMonth()}/${x.getDate()}/${x.getHours()}`;
    },
    'keep-daily': (t) => {
      const x = d(t);
      return `${x.getFullYear()}/${x.getMonth()}/${x.getDate()}`;
    },
    'keep-weekly': isoWeek,
    'keep-monthly': (t) => {
      const x = d(t);
      return `${x.getFullYear()}/${x.getMonth()}`;
    },
    'keep-yearly': (t) => String(d(t).getFullYear()),
  };
  for (const [opt, idf] of Object.entries(ids)) {
    const count = keep[opt];
    if (!count) continue;
    const idOf = new Map(list.map((e) => [e, idf(e.ctime)]));
    const already = new Set(list.filter((e) => e.mark === 'keep').map((e) => idOf.get(e)));
    const newly = new Set();
    for (const e of list) {
      const id = idOf.get(e);
      if (e.mark || already.has(id)) continue;
      if (!newly.has(id)) {
        if (newly.size >= count) break;
        newly.add(id);
        e.mark = 'keep';
      } else {
        e.mark = 'remove';
      }
    }
  }
  list.forEach((e) => {
    if (!e.mark) e.mark = 'remove';
  });
  return list;
}

module.exports = {
  writeArchive,
  listDirBackups,
  parseBackupName,
  pruneMark,
  parsePrune,
  formatSize,
  localStamp,
  localTime,
  utcStamp,
  COMPRESS_EXT,
  configText,
};
