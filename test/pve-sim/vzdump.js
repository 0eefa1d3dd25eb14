'use strict';
// POST /nodes/{node}/vzdump (notes §4.9, §6, §9.6): the "OK" quirk, the per-node global
// lock, archive naming, real archive files on dir storages, PBS snapshots in memory,
// notes/protected, prune-backups retention, and the exact log/exit shapes.

const fs = require('fs');
const fsp = require('fs/promises');
const path = require('path');
const crypto = require('crypto');
const A = require('./archive');
const { TaskError, UnexpectedExit, Interrupted, hex8 } = require('./tasks');

const bool = (v) => v === true || v === 1 || v === '1';

function expandNotes(tpl, vars) {
  let s = String(tpl).replace(/\{\{(cluster|guestname|node|vmid)\}\}/g, (_, k) => String(vars[k] ?? ''));
  s = s.replace(/\\(\\|n)/g, (_, c) => (c === 'n' ? '\n' : '\\'));
  return s;
}

function hms(sec) {
  const s = Math.max(0, Math.round(sec));
  return `${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The API handler. c = request context from endpoints.js. Returns a UPID or "OK". */
function vzdumpHandler(c) {
  const { sim, p } = c;
  const node = p.node;
  // Selection rules (PVE/VZDump.pm verify_vzdump_parameters): 400s.
  if (p.vmid !== undefined) {
    for (const k of ['all', 'exclude', 'pool']) {
      if (p[k] !== undefined) c.paramError({ [k]: "option conflicts with option 'vmid'" }, true);
    }
  } else if (!bool(p.all) && p.exclude === undefined && p.pool === undefined && p.stop === undefined) {
    c.paramError({ vmid: 'property is missing' }, true);
  }
  if (p.stdout !== undefined) c.paramError({ stdout: 'option can only be used on the command line' }, true);
  for (const k of ['notes-template', 'protected']) {
    if (p[k] !== undefined && p.storage === undefined) c.paramError({ storage: `missing property required by '${k}'` }, true);
  }

  // Which guests: local ones are backed up, ones on other nodes are silently skipped,
  // ones that exist nowhere are kept (they fail inside the task).
  let local = [];
  const all = bool(p.all) || p.exclude !== undefined;
  if (all) {
    const excl = new Set(
      String(p.exclude || '')
        .split(/[,;\s]+/)
        .filter(Boolean)
        .map(Number),
    );
    local = [...sim.model.guests.values()]
      .filter((g) => g.node === node && !excl.has(g.vmid))
      .map((g) => g.vmid)
      .sort((a, b) => a - b);
  } else if (p.vmid !== undefined) {
    const ids = String(p.vmid)
      .split(/[,;\s]+/)
      .filter(Boolean)
      .map(Number);
    for (const id of ids) {
      const g = sim.model.guests.get(id);
      if (!g || g.node === node) local.push(id);
    }
    if (local.length === 0) return 'OK'; // "silent exit if specified VMs run on other nodes"
  } else if (p.pool !== undefined) {
    local = [...sim.model.guests.values()].filter((g) => g.node === node && g.pool === p.pool).map((g) => g.vmid);
  }

  // Permissions (synchronous 403).
  for (const id of local) c.check(`/vms/${id}`, 'VM.Backup');
  const storageId = p.storage !== undefined ? String(p.storage) : p.dumpdir !== undefined ? null : 'local';
  if (storageId) c.check(`/storage/${storageId}`, 'Datastore.AllocateSpace');

  const cmdline = [
    'vzdump',
    ...(p.vmid !== undefined ? [String(p.vmid).replace(/,/g, ' ')] : []),
    ...Object.keys(p)
      .filter((k) => k !== 'vmid')
      .sort()
      .map((k) => `--${k} ${p[k]}`),
  ].join(' ');
  const taskId = local.length === 1 ? String(local[0]) : '';
  const task = sim.taskManager.start({
    node,
    type: 'vzdump',
    id: taskId,
    user: c.taskUser,
    faultIds: local,
    run: (ctx, t) => runJob(sim, ctx, t, { node, p, local, storageId, cmdline, user: c.who.userid }),
  });
  return task.upid;
}

async function runJob(sim, ctx, task, { node, p, local, storageId, cmdline }) {
  // VZDump->new(): option/storage errors end the task with just "TASK ERROR: <err>".
  if (p.storage !== undefined && p.dumpdir !== undefined)
    throw new TaskError("cannot use options 'storage' and 'dumpdir' at the same time");
  let storage = null;
  if (storageId) {
    storage = sim.model.storages.get(storageId);
    if (!storage) throw new TaskError(`storage '${storageId}' does not exist`);
    if (!storage.contentList.includes('backup')) throw new TaskError(`can't use storage '${storageId}' for backups - wrong content type`);
  }

  // getlock(): one vzdump per node at a time.
  const locks = sim.vzdumpLocks;
  const holder = locks.get(node);
  if (holder && holder !== task.upid) {
    ctx.log('INFO: trying to get global lock - waiting...');
    const lockwait = p.lockwait !== undefined ? Number(p.lockwait) : 180;
    const limitMs = lockwait * (sim.opts.lockwaitScaleMs ?? 60000);
    const t0 = Date.now();
    for (;;) {
      const h = locks.get(node);
      const ht = h && sim.taskManager.find(h);
      if (!h || !ht || ht.status !== 'running') break;
      if (Date.now() - t0 >= limitMs) {
        ctx.log("ERROR: can't acquire lock '/var/run/vzdump.lock' - got timeout");
        throw new UnexpectedExit('lock timeout'); // exit(-1): no TASK line -> 'unexpected status'
      }
      await ctx.sleep(Math.min(50, Math.max(1, limitMs - (Date.now() - t0))));
    }
    ctx.log('INFO: got global lock');
  }
  locks.set(node, task.upid);
  try {
    ctx.log(`INFO: starting new backup job: ${cmdline}`);
    let errors = 0;
    for (const vmid of local) {
      const ok = await backupGuest(sim, ctx, task, { node, p, vmid, storage });
      if (!ok) errors++;
    }
    if (errors) {
      ctx.log('INFO: Backup job finished with errors');
      throw new TaskError('job errors');
    }
    ctx.log('INFO: Backup job finished successfully');
  } finally {
    if (locks.get(node) === task.upid) locks.delete(node);
  }
}

/** Back up one guest; returns false on a per-guest failure (already logged). */
async function backupGuest(sim, ctx, task, { node, p, vmid, storage }) {
  const g = sim.model.guests.get(vmid);
  const startMs = sim.nowMs();
  const fail = (err) => {
    ctx.log(`ERROR: Backup of VM ${vmid} failed - ${err}`);
    ctx.log(`INFO: Failed at ${A.localTime(sim.nowMs())}`);
    return false;
  };
  if (!g || g.node !== node) {
    return fail(`unable to find VM '${vmid}'`);
  }
  const kind = g.type === 'lxc' ? 'CT' : 'VM';
  const guestLog = [];
  const log = (line) => {
    ctx.log(line);
    guestLog.push(line);
  };
  log(`INFO: Starting Backup of VM ${vmid} (${g.type})`);
  log(`INFO: Backup started at ${A.localTime(startMs)}`);
  log(`INFO: status = ${g.status}`);
  if (g.lock) return fail(`${kind} is locked (${g.lock})`);
  const fault = task.fault;
  const mode = g.status !== 'running' ? 'stop' : p.mode || 'snapshot';
  const isPbs = storage && storage.type === 'pbs';
  const compress = isPbs ? '0' : String(p.compress ?? '0');
  const ext = (g.type === 'lxc' ? '.tar' : '.vma') + (A.COMPRESS_EXT[compress] ?? '');
  const basename = `vzdump-${g.type}-${vmid}-${A.localStamp(startMs)}`;
  let target;
  let volid = null;
  if (isPbs) {
    target = `${g.type === 'lxc' ? 'ct' : 'vm'}/${vmid}/${A.utcStamp(startMs)}`;
    volid = `${storage.id}:backup/${target}`;
  } else {
    const dir = storage ? path.join(storage.path, 'dump') : String(p.dumpdir);
    target = path.join(dir, basename + ext);
    if (storage) volid = `${storage.id}:backup/${basename}${ext}`;
  }

  g.lock = 'backup';
  try {
    if (g.type === 'lxc') {
      log(`INFO: CT Name: ${g.config.hostname || g.name}`);
      log("INFO: including mount point rootfs ('/') in backup");
    } else {
      log(`INFO: VM Name: ${g.config.name || g.name}`);
      log(`INFO: include disk 'scsi0' '${String(g.config.scsi0 || '').split(',')[0]}' 32G`);
    }
    log(`INFO: backup mode: ${mode}`);
    log('INFO: ionice priority: 7');
    if (g.type === 'lxc' && mode === 'snapshot') log("INFO: create storage snapshot 'vzdump'");
    if (isPbs) log(`INFO: creating Proxmox Backup Server archive '${target}'`);
    else log(`INFO: creating vzdump archive '${target}'`);

    // a VM backup logs its progress (qemu's "x% (… of …)" lines): a long log, as a real one is
    if (g.type === 'qemu' && !isPbs) {
      for (let pct = 1; pct <= 100; pct += 1)
        log(
          `INFO: ${String(pct).padStart(3)}% (${(pct * 0.32).toFixed(1)} GiB of 32.0 GiB) in ${pct}s, read: 330.0 MiB/s, write: 300.0 MiB/s`,
        );
    }
    if (fault === 'unexpected status') throw new UnexpectedExit('simulated crash');
    if (fault === 'warnings') {
      ctx.warn('simulated warning 1');
      guestLog.push('WARN: simulated warning 1');
      ctx.warn('simulated warning 2');
      guestLog.push('WARN: simulated warning 2');
    }

    const dur =
      typeof sim.opts.vzdumpDurationMs === 'function' ? Number(sim.opts.vzdumpDurationMs(g)) || 0 : sim.taskManager.duration(task);
    try {
      await ctx.sleep(dur);
    } catch (e) {
      if (e instanceof Interrupted) ctx.log('ERROR: interrupted by signal');
      throw e;
    }
    if (fault && fault !== 'warnings') {
      if (!isPbs && storage === null) {
        /* dumpdir */
      }
      return fail(String(fault));
    }

    let size;
    if (isPbs) {
      log(`INFO: Starting backup: ${target}`);
      log(`INFO: Client name: ${node}`);
      size = 50 * 1024 * 1024 + vmid;
      log(`INFO: Duration: ${(dur / 1000).toFixed(2)}s`);
      log(`INFO: End Time: ${new Date(sim.nowMs()).toString()}`);
    } else {
      try {
        size = await A.writeArchive({ guest: g, finalPath: target, compress, corrupt: sim._corrupt.has(vmid), tmpRoot: sim.tmpRoot });
      } catch (e) {
        return fail(e.message.split('\n')[0]);
      }
      if (g.type === 'lxc')
        log(
          `INFO: Total bytes written: ${size * 4} (${Math.max(1, Math.round((size * 4) / 1024))}KiB, ${Math.max(1, Math.round((size * 4) / 1024 / Math.max(dur / 1000, 1)))}KiB/s)`,
        );
      else log(`INFO: transferred 32.00 GiB in ${Math.max(1, Math.round(dur / 1000))} seconds`);
      log(`INFO: archive file size: ${A.formatSize(size)}`);
    }
    if (volid) sim.backupMeta.set(volid, { vmid, type: g.type, name: g.name, config: { ...g.config } });

    let notes;
    if (p['notes-template'] !== undefined) {
      log('INFO: adding notes to backup');
      notes = expandNotes(p['notes-template'], { cluster: sim.clusterName, guestname: g.name, node, vmid });
    }
    const prot = bool(p.protected);
    if (prot) log('INFO: marking backup as protected');
    if (isPbs) {
      const entry = {
        volid,
        vmid,
        subtype: g.type,
        format: g.type === 'lxc' ? 'pbs-ct' : 'pbs-vm',
        ctime: Math.floor(startMs / 1000),
        size,
        notes,
        protected: prot ? 1 : 0,
        verification: null,
      };
      storage.pbsBackups.push(entry);
      sim._scheduleVerify(entry);
    } else {
      if (notes !== undefined) await fsp.writeFile(`${target}.notes`, notes);
      if (prot) await fsp.writeFile(`${target}.protected`, '');
    }

    // Retention.
    const remove = p.remove === undefined ? true : bool(p.remove);
    const pruneStr = p['prune-backups'] ?? (storage && storage['prune-backups']) ?? 'keep-all=1';
    const keep = A.parsePrune(pruneStr);
    const keepAll = keep['keep-all'] || !Object.keys(keep).some((k) => k !== 'keep-all' && keep[k] > 0);
    if (storage && remove && !keepAll) {
      const shown = Object.keys(keep)
        .filter((k) => k !== 'keep-all')
        .sort()
        .map((k) => `${k}=${keep[k]}`)
        .join(', ');
      log(`INFO: prune older backups with retention: ${shown}`);
      const existing = sim.listBackups(storage, vmid).filter((b) => b.subtype === g.type);
      const marked = A.pruneMark(existing, keep);
      let pruned = 0;
      for (const e of marked) {
        if (e.mark !== 'remove') continue;
        pruned++;
        log(`INFO: removing backup '${e.volid}'`);
        sim.removeBackup(e.volid);
      }
      log(`INFO: pruned ${pruned} backup(s)${pruned ? ' not covered by keep-retention policy' : ''}`);
    }
    if (g.type === 'lxc' && mode === 'snapshot') log("INFO: cleanup temporary 'vzdump' snapshot");
    log(`INFO: Finished Backup of VM ${vmid} (${hms((sim.nowMs() - startMs) / 1000)})`);
    log(`INFO: Backup finished at ${A.localTime(sim.nowMs())}`);
    if (!isPbs && storage) {
      const logFile = path.join(path.dirname(target), `${basename}.log`);
      await fsp.writeFile(logFile, guestLog.map((l) => `${A.localTime(startMs)} ${l}`).join('\n') + '\n').catch(() => {});
    }
    return true;
  } finally {
    if (g.lock === 'backup') g.lock = null;
    // leftover .dat from an interrupted write
    if (!isPbs && target) fs.rm(`${target}.dat`, { force: true }, () => {});
  }
}

/** A PBS-style verification UPID. */
function pbsVerifyUpid(store, nowSec) {
  return `UPID:pbs:${hex8(1000 + (nowSec % 5000))}:${hex8(nowSec & 0xffff)}:00000001:${hex8(nowSec)}:verificationjob:${store}\\x3av\\x2d${crypto.randomBytes(4).toString('hex')}:root@pam:`;
}

module.exports = { vzdumpHandler, pbsVerifyUpid, expandNotes };
