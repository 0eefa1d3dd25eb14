'use strict';
// Endpoint handlers. Each handler gets a context c:
//   c.sim, c.p (query+body+path params), c.pp (path params), c.who, c.taskUser,
//   c.check(aclPath, priv) (403 when a privsep token lacks it), c.can(...) (bool),
//   c.fail(status, message[, errors]) / c.die(msg) (500) / c.paramError(errors[, violation])
// and returns the `data` value (c.total = n adds a top-level total).

const fs = require('fs');
const path = require('path');
const { guestStatus, digest, parseVolid } = require('./model');
const { TaskError } = require('./tasks');
const { vzdumpHandler } = require('./vzdump');

const bool = (v) => v === true || v === 1 || v === '1';
const GiB = 1024 ** 3;

// ---------------------------------------------------------------- helpers

function cfgPath(node, type, vmid) {
  return `nodes/${node}/${type === 'lxc' ? 'lxc' : 'qemu-server'}/${vmid}.conf`;
}

/** The guest at this node/type/vmid, or 500 "Configuration file ... does not exist". */
function guestHere(c, type) {
  const vmid = Number(c.p.vmid);
  const g = c.sim.model.guests.get(vmid);
  if (!g || g.node !== c.p.node || g.type !== type) c.die(`Configuration file '${cfgPath(c.p.node, type, vmid)}' does not exist`);
  return g;
}

function fullConfig(g) {
  const conf = { ...g.config };
  if (g.lock) conf.lock = g.lock;
  if (g.parent) conf.parent = g.parent;
  conf.digest = digest(conf);
  return conf;
}

/** Run a simple guest task: fault, optional check, sleep, effect. */
function guestTask(c, g, type, { check, effect, cleanup } = {}) {
  const sim = c.sim;
  const t = sim.taskManager.start({
    node: g.node,
    type,
    id: String(g.vmid),
    user: c.taskUser,
    faultIds: [g.vmid],
    run: async (ctx, task) => {
      try {
        ctx.applyFault();
        if (check) check(ctx);
        await ctx.sleep(sim.taskManager.duration(task));
        if (effect) await effect(ctx, task);
      } finally {
        if (cleanup) cleanup();
      }
    },
  });
  return t.upid;
}

function lockCheck(g) {
  if (g.lock) throw new TaskError(`${g.type === 'lxc' ? 'CT' : 'VM'} is locked (${g.lock})`);
}

function setRunning(sim, g, running) {
  g.status = running ? 'running' : 'stopped';
  if (running) g.startedAt = sim.nowMs();
}

function storageOf(c, id) {
  const s = c.sim.model.storages.get(id);
  if (!s) c.die(`storage '${id}' does not exist`);
  return s;
}

function storageSizes(sim, s) {
  const set = sim.storageUsage.get(s.id) || {};
  const total = set.total !== undefined ? set.total : s.type === 'pbs' ? 2000 * GiB : s.type === 'lvmthin' ? 400 * GiB : 100 * GiB;
  let used = 10 * GiB;
  if (s.type === 'dir') used += sim.listBackups(s).reduce((a, b) => a + b.size, 0);
  if (s.type === 'pbs') used += s.pbsBackups.reduce((a, b) => a + b.size, 0);
  if (set.used !== undefined) used = set.used;
  return { total, used, avail: total - used, active: set.active !== false };
}

/** A node's figures: the defaults, or what the test set (sim.faults.nodeStats). */
function nodeFigures(sim, name) {
  const d = { cpu: 0.031, memUsed: 9 * GiB, memTotal: 32 * GiB, rootUsed: 12 * GiB, rootTotal: 100 * GiB };
  return { ...d, ...(sim.nodeStats.get(name) || {}) };
}

function taskItem(t, withEnd) {
  const it = { upid: t.upid, node: t.node, pid: t.pid, pstart: t.pstart, starttime: t.starttime, type: t.type, id: t.id, user: t.user };
  if (t.user.includes('!')) {
    const [u, tok] = t.user.split('!');
    it.user = u;
    it.tokenid = tok;
  }
  if (withEnd) {
    if (t.status === 'stopped') {
      it.endtime = t.endtime;
      it.status = t.exitstatus;
    } else it.status = 'RUNNING';
  } else {
    it.status = t.status;
    if (t.status === 'stopped') it.exitstatus = t.exitstatus;
  }
  return it;
}

function taskVisible(c, t) {
  if (c.can(`/nodes/${t.node}`, 'Sys.Audit')) return true;
  return t.user === c.taskUser;
}

function findTask(c) {
  const t = c.sim.taskManager.find(c.p.upid);
  if (!t || t.node !== c.p.node) c.paramError({ upid: 'no such task' });
  if (!taskVisible(c, t)) c.check(`/nodes/${t.node}`, 'Sys.Audit');
  return t;
}

/** Config values as GET config returns them: integers/booleans as numbers, JSON true/false as 1/0. */
const INT_KEYS = new Set([
  'memory',
  'swap',
  'cores',
  'cpuunits',
  'unprivileged',
  'onboot',
  'template',
  'protection',
  'tty',
  'sockets',
  'balloon',
  'tablet',
  'numa',
  'acpi',
  'kvm',
]);
function normConfig(cfg) {
  for (const [k, v] of Object.entries(cfg)) {
    if (v === true || v === false) cfg[k] = v ? 1 : 0;
    else if (INT_KEYS.has(k) && /^-?\d+$/.test(String(v))) cfg[k] = Number(v);
  }
  return cfg;
}

// ---------------------------------------------------------------- handlers

const H = {};

H.version = (c) => ({
  version: c.sim.opts.version || '9.1.2',
  release: (c.sim.opts.version || '9.1.2').split('.').slice(0, 2).join('.'),
  repoid: 'b9c5ab52e3e7d7a4',
});

H.clusterStatus = (c) => {
  c.check('/', 'Sys.Audit');
  const sim = c.sim;
  const nodes = [...sim.model.nodes.values()];
  const entry = nodes[0].name;
  if (sim.opts.standalone) {
    const n = nodes[0];
    return [{ type: 'node', id: `node/${n.name}`, name: n.name, ip: n.ip, local: 1, nodeid: 0, online: 1, level: '' }];
  }
  const online = nodes.filter((n) => n.online).length;
  return [
    {
      type: 'cluster',
      id: 'cluster',
      name: sim.clusterName,
      nodes: nodes.length,
      version: nodes.length + 2,
      quorate: online * 2 > nodes.length ? 1 : 0,
    },
    ...nodes.map((n) => ({
      type: 'node',
      id: `node/${n.name}`,
      name: n.name,
      nodeid: n.nodeid,
      ip: n.ip,
      local: n.name === entry ? 1 : 0,
      online: n.online ? 1 : 0,
      level: '',
    })),
  ];
};

H.clusterResources = (c) => {
  const sim = c.sim;
  const type = c.p.type;
  const out = [];
  const nowMs = sim.nowMs();
  if (!type || type === 'vm') {
    for (const g of [...sim.model.guests.values()].sort((a, b) => a.vmid - b.vmid)) {
      if (!c.can(`/vms/${g.vmid}`, 'VM.Audit')) continue;
      const it = { id: `${g.type}/${g.vmid}`, vmid: g.vmid, node: g.node, type: g.type };
      if (!sim.model.nodes.get(g.node).online) {
        it.status = 'unknown';
      } else {
        const st = guestStatus(g, nowMs);
        Object.assign(it, {
          status: g.status,
          name: st.name,
          template: g.template ? 1 : 0,
          uptime: st.uptime,
          maxcpu: st.cpus,
          cpu: st.cpu,
          maxmem: st.maxmem,
          mem: st.mem,
          maxdisk: st.maxdisk,
          disk: st.disk,
          netin: st.netin,
          netout: st.netout,
          diskread: st.diskread,
          diskwrite: st.diskwrite,
        });
      }
      if (g.lock) it.lock = g.lock;
      if (g.config.tags) it.tags = g.config.tags;
      if (g.hamanaged) it.hastate = g.status === 'running' ? 'started' : 'stopped';
      out.push(it);
    }
  }
  if (!type || type === 'node') {
    for (const n of sim.model.nodes.values()) {
      if (!c.can(`/nodes/${n.name}`, 'Sys.Audit')) continue;
      const it = { id: `node/${n.name}`, node: n.name, type: 'node', status: n.online ? 'online' : 'offline', level: '' };
      if (n.online)
        Object.assign(it, {
          maxcpu: 8,
          maxmem: 32 * GiB,
          maxdisk: 100 * GiB,
          uptime: sim.nowSec() - n.bootSec,
          cpu: 0.031,
          mem: 9 * GiB,
          disk: 12 * GiB,
          'cgroup-mode': 2,
        });
      out.push(it);
    }
  }
  if (!type || type === 'storage') {
    for (const n of sim.model.nodes.values()) {
      for (const s of sim.model.storages.values()) {
        if (!c.can(`/storage/${s.id}`, 'Datastore.Audit') && !c.can(`/storage/${s.id}`, 'Datastore.AllocateSpace')) continue;
        const it = {
          id: `storage/${n.name}/${s.id}`,
          storage: s.id,
          node: n.name,
          type: 'storage',
          plugintype: s.type,
          status: n.online ? 'available' : 'unknown',
          shared: s.shared,
          content: s.content,
        };
        if (n.online) {
          const z = storageSizes(sim, s);
          it.maxdisk = z.total;
          it.disk = z.used;
        }
        out.push(it);
      }
    }
  }
  return out;
};

H.nextid = (c) => {
  const guests = c.sim.model.guests;
  if (c.p.vmid !== undefined) {
    const id = Number(c.p.vmid);
    if (guests.has(id)) c.paramError({ vmid: `VM ${id} already exists` });
    return String(id);
  }
  let id = 100;
  while (guests.has(id)) id++;
  return String(id);
};

H.nodes = (c) =>
  [...c.sim.model.nodes.values()].map((n) => {
    const it = { node: n.name, status: n.online ? 'online' : 'offline', id: `node/${n.name}`, type: 'node', level: '' };
    if (n.online && c.can(`/nodes/${n.name}`, 'Sys.Audit')) {
      const f = nodeFigures(c.sim, n.name);
      Object.assign(it, {
        cpu: f.cpu,
        maxcpu: 8,
        mem: f.memUsed,
        maxmem: f.memTotal,
        disk: f.rootUsed,
        maxdisk: f.rootTotal,
        uptime: c.sim.nowSec() - n.bootSec,
        ssl_fingerprint: c.sim.fingerprint,
      });
    }
    return it;
  });

H.nodeStatus = (c) => {
  c.check(`/nodes/${c.p.node}`, 'Sys.Audit');
  const n = c.sim.model.nodes.get(c.p.node);
  const f = nodeFigures(c.sim, c.p.node);
  return {
    cpu: f.cpu,
    wait: 0.0012,
    idle: 0,
    cpuinfo: { cpus: 8, cores: 4, sockets: 1, model: 'Simulated CPU @ 3.40GHz', mhz: '3400.000', hvm: '1', flags: 'fpu vme', user_hz: 100 },
    memory: { total: f.memTotal, used: f.memUsed, free: f.memTotal - f.memUsed, available: f.memTotal - f.memUsed - GiB },
    swap: { total: 8 * GiB, used: 0, free: 8 * GiB },
    rootfs: {
      total: f.rootTotal,
      used: f.rootUsed,
      free: f.rootTotal - f.rootUsed,
      avail: Math.max(0, f.rootTotal - f.rootUsed - 5 * GiB),
    },
    ksm: { shared: 0 },
    loadavg: ['0.12', '0.10', '0.05'],
    uptime: c.sim.nowSec() - n.bootSec,
    kversion: 'Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2 (2025-07-22T10:04Z) x86_64',
    pveversion: `pve-manager/${c.sim.opts.version || '9.1.2'}/b9c5ab52e3e7d7a4`,
    'current-kernel': {
      sysname: 'Linux',
      release: '6.14.8-2-pve',
      machine: 'x86_64',
      version: '#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2 (2025-07-22T10:04Z)',
    },
    'boot-info': { mode: 'efi', secureboot: 0 },
  };
};

const guestList = (type) => (c) => {
  const sim = c.sim;
  return [...sim.model.guests.values()]
    .filter((g) => g.node === c.p.node && g.type === type && c.can(`/vms/${g.vmid}`, 'VM.Audit'))
    .map((g) => guestStatus(g, sim.nowMs(), { legacyVmidStrings: sim.opts.legacyVmidStrings }));
};

const statusCurrent = (type) => (c) => {
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Audit');
  const it = guestStatus(g, c.sim.nowMs(), { legacyVmidStrings: c.sim.opts.legacyVmidStrings });
  it.ha = g.hamanaged ? { managed: 1, state: g.status === 'running' ? 'started' : 'stopped', group: null } : { managed: 0 };
  if (type === 'qemu') {
    if (g.agent && String(g.config.agent || '0').startsWith('1')) it.agent = 1;
  }
  return it;
};

/** start/stop/shutdown/reboot with the LXC/QEMU synchronous-vs-task asymmetries (§4.7). */
const power = (type, action) => (c) => {
  const sim = c.sim;
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.PowerMgmt');
  const running = g.status === 'running';
  const pre = type === 'lxc' ? 'vz' : 'qm';
  if (type === 'lxc') {
    if (action === 'start' && running) c.die(`CT ${g.vmid} already running`);
    if ((action === 'stop' || action === 'shutdown') && !running) c.die(`CT ${g.vmid} not running`);
    if (action === 'reboot' && !running) c.die(`VM ${g.vmid} not running`);
  } else if (action === 'reboot' && !running) {
    c.die(`VM ${g.vmid} not running`);
  }
  // HA-managed guests: the task only requests the state; the guest changes later.
  if (g.hamanaged && action !== 'reboot') {
    const want = action === 'start';
    return guestTask(c, g, want ? 'hastart' : 'hastop', {
      effect: (ctx) => {
        ctx.log(`Requesting HA ${want ? 'start' : 'stop'} for VM ${g.vmid}`);
        sim._later(sim.taskManager.duration({ type: 'ha' }), () => setRunning(sim, g, want));
      },
    });
  }
  const taskType = `${pre}${action}`;
  return guestTask(c, g, taskType, {
    check: () => {
      lockCheck(g);
      if (type === 'qemu' && action === 'start' && g.status === 'running') throw new TaskError(`VM ${g.vmid} already running`);
    },
    effect: () => {
      if (action === 'start') setRunning(sim, g, true);
      else if (action === 'stop' || action === 'shutdown') setRunning(sim, g, false);
      else if (action === 'reboot') setRunning(sim, g, true);
    },
  });
};

const getConfig = (type) => (c) => {
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Audit');
  if (c.p.snapshot !== undefined) {
    const s = g.snapshots.find((x) => x.name === c.p.snapshot);
    if (!s) c.die(`snapshot '${c.p.snapshot}' does not exist`);
    return { ...s.config, digest: digest(s.config) };
  }
  return fullConfig(g);
};

H.lxcInterfaces = (c) => {
  const g = guestHere(c, 'lxc');
  c.check(`/vms/${g.vmid}`, 'VM.Audit');
  if (g.status !== 'running') return null;
  const lo = {
    name: 'lo',
    hwaddr: '00:00:00:00:00:00',
    'hardware-address': '00:00:00:00:00:00',
    inet: '127.0.0.1/8',
    inet6: '::1/128',
    'ip-addresses': [
      { 'ip-address': '127.0.0.1', 'ip-address-type': 'inet', prefix: 8 },
      { 'ip-address': '::1', 'ip-address-type': 'inet6', prefix: 128 },
    ],
  };
  const mac = (/hwaddr=([0-9A-Fa-f:]+)/.exec(g.config.net0 || '') || [])[1] || '00:00:00:00:00:00';
  const lmac = mac.toLowerCase();
  const addrs = g.ips.map((ip) => {
    const [a, pfx] = ip.split('/');
    return { 'ip-address': a, 'ip-address-type': a.includes(':') ? 'inet6' : 'inet', prefix: Number(pfx || (a.includes(':') ? 64 : 32)) };
  });
  addrs.push({
    'ip-address': `fe80::be24:11ff:fe${lmac.slice(9, 11)}:${(lmac.slice(12, 14) + lmac.slice(15, 17)).replace(/^0+(?=.)/, '')}`,
    'ip-address-type': 'inet6',
    prefix: 64,
  });
  const eth0 = { name: 'eth0', hwaddr: lmac, 'hardware-address': lmac, 'ip-addresses': addrs };
  for (const a of addrs) eth0[a['ip-address-type']] = `${a['ip-address']}/${a.prefix}`; // last of each family wins
  return [lo, eth0];
};

H.qemuAgentIfaces = (c) => {
  const g = guestHere(c, 'qemu');
  if (!c.can(`/vms/${g.vmid}`, 'VM.GuestAgent.Audit')) c.check(`/vms/${g.vmid}`, 'VM.Monitor');
  if (!String(g.config.agent || '0').startsWith('1')) c.die('No QEMU guest agent configured');
  if (g.status !== 'running' || !g.agent) c.die('QEMU guest agent is not running');
  const mac = ((/=([0-9A-Fa-f:]{17})/.exec(g.config.net0 || '') || [])[1] || '00:00:00:00:00:00').toLowerCase();
  return {
    result: [
      {
        name: 'lo',
        'hardware-address': '00:00:00:00:00:00',
        'ip-addresses': [
          { 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 },
          { 'ip-address': '::1', 'ip-address-type': 'ipv6', prefix: 128 },
        ],
        statistics: {
          'rx-bytes': 100,
          'tx-bytes': 100,
          'rx-packets': 1,
          'tx-packets': 1,
          'rx-errs': 0,
          'tx-errs': 0,
          'rx-dropped': 0,
          'tx-dropped': 0,
        },
      },
      {
        name: 'ens18',
        'hardware-address': mac,
        'ip-addresses': g.ips.map((ip) => {
          const [a, pfx] = ip.split('/');
          return { 'ip-address': a, 'ip-address-type': a.includes(':') ? 'ipv6' : 'ipv4', prefix: Number(pfx || 24) };
        }),
        statistics: {
          'rx-bytes': 123456,
          'tx-bytes': 65432,
          'rx-packets': 1000,
          'tx-packets': 800,
          'rx-errs': 0,
          'tx-errs': 0,
          'rx-dropped': 0,
          'tx-dropped': 0,
        },
      },
    ],
  };
};

// ---------------------------------------------------------------- snapshots (§4.8)

const snapList = (type) => (c) => {
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Audit');
  const list = [...g.snapshots]
    .sort((a, b) => a.snaptime - b.snaptime)
    .map((s) => {
      const it = { name: s.name, description: s.description || '', snaptime: s.snaptime };
      if (s.parent) it.parent = s.parent;
      if (type === 'qemu') it.vmstate = s.vmstate ? 1 : 0;
      return it;
    });
  const cur = { name: 'current', description: 'You are here!', digest: digest(g.config), running: g.status === 'running' ? 1 : 0 };
  if (g.parent) cur.parent = g.parent;
  list.push(cur);
  return list;
};

function reservedSnap(c, type, name) {
  const reserved = type === 'lxc' ? ['current', 'vzdump'] : ['current'];
  if (reserved.includes(name) || (type === 'qemu' && name.toLowerCase() === 'pending'))
    c.die(`unable to use snapshot name '${name}' (reserved name)`);
  if (!/^[a-z][a-z0-9_-]+$/i.test(name)) c.paramError({ snapname: `invalid format - invalid configuration ID '${name}'\n` }, true);
}

const snapCreate = (type) => (c) => {
  const sim = c.sim;
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Snapshot');
  const name = String(c.p.snapname);
  reservedSnap(c, type, name);
  return guestTask(c, g, type === 'lxc' ? 'vzsnapshot' : 'qmsnapshot', {
    check: () => {
      if (g.snapshots.some((s) => s.name === name)) throw new TaskError(`snapshot name '${name}' already used`);
      lockCheck(g);
      if (g.template) throw new TaskError("you can't take a snapshot if it's a template");
      g.lock = 'snapshot';
    },
    cleanup: () => {
      if (g.lock === 'snapshot') g.lock = null;
    },
    effect: () => {
      g.snapshots.push({
        name,
        description: c.p.description ? String(c.p.description) : '',
        snaptime: sim.nowSec(),
        parent: g.parent || undefined,
        vmstate: type === 'qemu' && bool(c.p.vmstate) && g.status === 'running',
        config: { ...g.config },
      });
      g.parent = name;
    },
  });
};

const snapRollback = (type) => (c) => {
  const sim = c.sim;
  const g = guestHere(c, type);
  if (!c.can(`/vms/${g.vmid}`, 'VM.Snapshot.Rollback')) c.check(`/vms/${g.vmid}`, 'VM.Snapshot');
  const name = String(c.p.snapname);
  return guestTask(c, g, type === 'lxc' ? 'vzrollback' : 'qmrollback', {
    check: () => {
      const s = g.snapshots.find((x) => x.name === name);
      if (!s) throw new TaskError(`snapshot '${name}' does not exist`);
      lockCheck(g);
      if (sim.opts.snapshotBackend === 'zfs') {
        const newest = [...g.snapshots].sort((a, b) => b.snaptime - a.snaptime)[0];
        if (newest && newest.name !== name) {
          const vol =
            String(g.config.rootfs || g.config.scsi0 || '')
              .split(',')[0]
              .split(':')[1] || `vm-${g.vmid}-disk-0`;
          throw new TaskError(`can't rollback, '${name}' is not most recent snapshot on '${vol}'`);
        }
      }
    },
    effect: (ctx) => {
      const s = g.snapshots.find((x) => x.name === name);
      if (g.status === 'running') {
        ctx.log(type === 'lxc' ? 'stopping container' : 'stopping VM');
        setRunning(sim, g, false);
      }
      g.config = { ...s.config };
      g.parent = name;
      if (bool(c.p.start) || (type === 'qemu' && s.vmstate)) {
        ctx.log(type === 'lxc' ? 'starting container' : 'starting VM');
        setRunning(sim, g, true);
      }
    },
  });
};

const snapDelete = (type) => (c) => {
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Snapshot');
  const name = String(c.p.snapname);
  return guestTask(c, g, type === 'lxc' ? 'vzdelsnapshot' : 'qmdelsnapshot', {
    check: () => {
      if (!g.snapshots.some((x) => x.name === name)) throw new TaskError(`snapshot '${name}' does not exist`);
      lockCheck(g);
    },
    effect: () => {
      const s = g.snapshots.find((x) => x.name === name);
      if (!s) return;
      g.snapshots = g.snapshots.filter((x) => x !== s);
      for (const o of g.snapshots) if (o.parent === name) o.parent = s.parent;
      if (g.parent === name) g.parent = s.parent || null;
    },
  });
};

const snapIndex = (type) => (c) => {
  const g = guestHere(c, type);
  if (!g.snapshots.some((x) => x.name === c.p.snapname)) c.die(`snapshot '${c.p.snapname}' does not exist`);
  return [{ rel: 'config' }, { rel: 'rollback' }];
};

const snapConfigGet = (type) => (c) => {
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Audit');
  const s = g.snapshots.find((x) => x.name === c.p.snapname);
  if (!s) c.die(`snapshot '${c.p.snapname}' does not exist`);
  return { ...s.config, description: s.description, snaptime: s.snaptime, ...(s.parent ? { parent: s.parent } : {}) };
};

const snapConfigPut = (type) => (c) => {
  const g = guestHere(c, type);
  c.check(`/vms/${g.vmid}`, 'VM.Snapshot');
  const s = g.snapshots.find((x) => x.name === c.p.snapname);
  if (!s) c.die(`snapshot '${c.p.snapname}' does not exist`);
  if (c.p.description !== undefined) s.description = String(c.p.description);
  return null;
};

// ---------------------------------------------------------------- storage (§4.10)

H.storageList = (c) => {
  const sim = c.sim;
  const want = c.p.content ? String(c.p.content).split(',') : null;
  return [...sim.model.storages.values()]
    .filter((s) => c.can(`/storage/${s.id}`, 'Datastore.Audit') || c.can(`/storage/${s.id}`, 'Datastore.AllocateSpace'))
    .filter((s) => !c.p.storage || s.id === c.p.storage)
    .filter((s) => !want || want.some((w) => s.contentList.includes(w)))
    .map((s) => {
      const z = storageSizes(sim, s);
      // a storage the node cannot reach now is listed inactive, without sizes (as PVE does)
      if (!z.active) return { storage: s.id, type: s.type, content: s.content, shared: s.shared, active: 0, enabled: 1 };
      return {
        storage: s.id,
        type: s.type,
        content: s.content,
        shared: s.shared,
        active: 1,
        enabled: 1,
        total: z.total,
        used: z.used,
        avail: z.avail,
        used_fraction: z.used / z.total,
      };
    });
};

H.storageStatus = (c) => {
  const s = storageOf(c, c.p.storage);
  if (!c.can(`/storage/${s.id}`, 'Datastore.Audit')) c.check(`/storage/${s.id}`, 'Datastore.AllocateSpace');
  const z = storageSizes(c.sim, s);
  return { type: s.type, content: s.content, shared: s.shared, active: 1, enabled: 1, total: z.total, used: z.used, avail: z.avail };
};

H.storageIndex = (c) => {
  storageOf(c, c.p.storage);
  return [
    { subdir: 'status' },
    { subdir: 'content' },
    { subdir: 'upload' },
    { subdir: 'rrd' },
    { subdir: 'rrddata' },
    { subdir: 'prunebackups' },
  ];
};

function canSeeBackup(c, s, vmid) {
  return (
    c.can(`/storage/${s.id}`, 'Datastore.Allocate') ||
    (c.can(`/storage/${s.id}`, 'Datastore.AllocateSpace') && c.can(`/vms/${vmid}`, 'VM.Backup'))
  );
}

H.storageContent = (c) => {
  const sim = c.sim;
  const s = storageOf(c, c.p.storage);
  if (!c.can(`/storage/${s.id}`, 'Datastore.Audit')) c.check(`/storage/${s.id}`, 'Datastore.AllocateSpace');
  const content = c.p.content;
  if (content && !s.contentList.includes(content)) return [];
  const vmid = c.p.vmid !== undefined ? Number(c.p.vmid) : undefined;
  let items = [];
  if (!content || content === 'backup') {
    if (s.contentList.includes('backup')) items.push(...sim.listBackups(s, vmid).filter((b) => canSeeBackup(c, s, b.vmid)));
  }
  if ((!content || content === 'vztmpl') && s.contentList.includes('vztmpl')) {
    for (const v of sim.templates) {
      if (!v.startsWith(`${s.id}:`) || vmid !== undefined) continue;
      const fmt = (/\.(tar\.(?:gz|xz|zst))$/.exec(v) || [])[1] || 'tgz';
      items.push({ volid: v, format: fmt, size: 126123456, ctime: 1735689600, content: 'vztmpl' });
    }
  }
  if (s.type === 'lvmthin' && (!content || content === 'images' || content === 'rootdir')) {
    for (const g of sim.model.guests.values()) {
      if (vmid !== undefined && g.vmid !== vmid) continue;
      const ct = g.type === 'lxc' ? 'rootdir' : 'images';
      if (content && content !== ct) continue;
      if (!c.can(`/vms/${g.vmid}`, 'VM.Audit')) continue;
      items.push({
        volid: `${s.id}:vm-${g.vmid}-disk-0`,
        format: 'raw',
        size: (g.type === 'lxc' ? 8 : 32) * GiB,
        content: ct,
        vmid: g.vmid,
      });
    }
  }
  items.sort((a, b) => (a.volid.toLowerCase() < b.volid.toLowerCase() ? -1 : a.volid.toLowerCase() > b.volid.toLowerCase() ? 1 : 0));
  return items;
};

H.contentDelete = (c) => {
  const sim = c.sim;
  let volid = String(c.p.volume);
  if (!volid.includes(':')) volid = `${c.p.storage}:${volid}`;
  const pv = parseVolid(volid);
  if (!pv) c.die(`unable to parse volume ID '${volid}'`);
  const s = storageOf(c, pv.storage);
  const info = s.type === 'pbs' ? /^backup\/(?:ct|vm)\/(\d+)\//.exec(pv.volname) : /^backup\/vzdump-\w+-(\d+)-/.exec(pv.volname);
  const vmid = info ? Number(info[1]) : null;
  if (!c.can(`/storage/${s.id}`, 'Datastore.Allocate')) {
    if (vmid === null || !c.can(`/storage/${s.id}`, 'Datastore.AllocateSpace') || !c.can(`/vms/${vmid}`, 'VM.Backup'))
      c.check(`/storage/${s.id}`, 'Datastore.Allocate');
  }
  const id = `${vmid !== null ? `${vmid}@` : ''}${s.id}`;
  const t = sim.taskManager.start({
    node: c.p.node,
    type: 'imgdel',
    id,
    user: c.taskUser,
    faultIds: vmid !== null ? [vmid] : [],
    run: async (ctx, task) => {
      ctx.applyFault();
      await ctx.sleep(Math.min(100, sim.taskManager.duration(task)));
      if (s.type === 'pbs') {
        const e = s.pbsBackups.find((b) => b.volid === volid);
        if (e && e.protected) throw new TaskError(`cannot remove protected archive '${volid}'`);
      } else if (s.path) {
        const file = path.join(s.path, pv.volname.replace(/^backup\//, 'dump/'));
        if (fs.existsSync(`${file}.protected`)) throw new TaskError(`cannot remove protected archive '${file}'`);
      }
      sim.removeBackup(volid);
      ctx.log(`Removed volume '${volid}'`);
    },
  });
  return t.upid;
};

// ---------------------------------------------------------------- create / restore (§4.11)

H.lxcCreate = (c) => {
  const sim = c.sim;
  const vmid = Number(c.p.vmid);
  c.check(`/vms/${vmid}`, 'VM.Allocate');
  const restore = bool(c.p.restore);
  const existing = sim.model.guests.get(vmid);
  if (existing && (!bool(c.p.force) || existing.node !== c.p.node || existing.type !== 'lxc'))
    c.die(`CT ${vmid} already exists on node '${existing.node}'`);
  if (existing && existing.status === 'running') c.die("can't overwrite running container");
  const sid = c.p.storage !== undefined ? String(c.p.storage) : 'local';
  const st = sim.model.storages.get(sid);
  if (!st) c.paramError({ storage: `storage '${sid}' does not exist` });
  if (!st.contentList.includes('rootdir')) c.paramError({ storage: `storage '${sid}' does not support container directories` });
  c.check(`/storage/${sid}`, 'Datastore.AllocateSpace');
  const volid = String(c.p.ostemplate);
  const t = sim.taskManager.start({
    node: c.p.node,
    type: restore ? 'vzrestore' : 'vzcreate',
    id: String(vmid),
    user: c.taskUser,
    faultIds: [vmid],
    run: async (ctx, task) => {
      ctx.applyFault();
      let meta = null;
      if (!restore && !sim.templates.includes(volid)) throw new TaskError(`unable to create CT ${vmid} - volume '${volid}' does not exist`);
      if (!restore) ctx.log(`extracting archive '/var/lib/vz/template/cache/${volid.split('/').pop()}'`);
      if (restore) {
        meta = sim.backupMeta.get(volid) || null;
        const exists = sim.backupExists(volid);
        if (!exists) throw new TaskError(`unable to restore CT ${vmid} - volume '${volid}' does not exist`);
        ctx.log(`recovering backed-up configuration from '${volid}'`);
        ctx.log(`restoring '${volid}' now..`);
        const file = sim.volumePath(volid);
        if (file) {
          ctx.log(`extracting archive '${file}'`);
          const ok = await sim.archiveReadable(file);
          if (!ok)
            throw new TaskError(
              `unable to restore CT ${vmid} - command 'lxc-usernsexec -m u:0:100000:65536 -m g:0:100000:65536 -- tar xpf - --totals --one-file-system -p --sparse --numeric-owner --acls --xattrs '--xattrs-include=user.*' '--xattrs-include=security.capability' '--warning=no-file-ignored' '--warning=no-xattr-write' -C /var/lib/lxc/${vmid}/rootfs --skip-old-files --anchored --exclude './dev/*'' failed: exit code 2`,
            );
          ctx.log('Total bytes read: 10240 (10KiB, 10KiB/s)');
        }
      }
      await ctx.sleep(sim.taskManager.duration(task));
      if (restore) ctx.log('merging backed-up and given configuration..');
      const base = meta && meta.type === 'lxc' ? { ...meta.config } : {};
      const cfg = { ...base };
      for (const [k, v] of Object.entries(c.p)) {
        if (
          [
            'node',
            'vmid',
            'ostemplate',
            'restore',
            'force',
            'storage',
            'unique',
            'start',
            'pool',
            'bwlimit',
            'ha-managed',
            'ignore-unpack-errors',
            'password',
            'ssh-public-keys',
          ].includes(k)
        )
          continue;
        cfg[k] = v;
      }
      if (!restore) {
        cfg.arch = cfg.arch || 'amd64';
        cfg.ostype = cfg.ostype || (/alpine/.test(volid) ? 'alpine' : 'debian');
        cfg.cores = cfg.cores || 1;
      }
      if (!cfg.hostname) cfg.hostname = (meta && meta.name) || `CT${vmid}`;
      if (!cfg.memory) cfg.memory = 512;
      if (cfg.swap === undefined) cfg.swap = 512;
      // rootfs is (re)allocated on the target storage: "<sid>:<GiB>" or the backed-up size
      const given = String(cfg.rootfs || '');
      const size = (/^[^:,]+:(\d+)(?:,|$)/.exec(given) || [])[1] || (/size=(\d+)G/.exec(given) || [])[1] || '8';
      cfg.rootfs = `${sid}:vm-${vmid}-disk-0,size=${size}G${(/,mountoptions=[^,]+/.exec(given) || [''])[0]}`;
      normConfig(cfg);
      sim.addGuest({ vmid, type: 'lxc', node: c.p.node, name: cfg.hostname, status: 'stopped', config: cfg });
      if (bool(c.p.start)) setRunning(sim, sim.model.guests.get(vmid), true);
    },
  });
  return t.upid;
};

H.qemuCreate = (c) => {
  const sim = c.sim;
  const vmid = Number(c.p.vmid);
  c.check(`/vms/${vmid}`, 'VM.Allocate');
  const archive = c.p.archive !== undefined ? String(c.p.archive) : null;
  const existing = sim.model.guests.get(vmid);
  if (archive) {
    for (const k of Object.keys(c.p))
      if (/^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$/.test(k)) c.paramError({ [k]: "option conflicts with option 'archive'" });
    if (existing && (!bool(c.p.force) || existing.node !== c.p.node))
      c.die(`unable to restore VM ${vmid} - VM ${vmid} already exists on node '${existing.node}'`);
  } else if (existing) {
    c.die(`unable to create VM ${vmid} - VM ${vmid} already exists on node '${existing.node}'`);
  }
  const t = sim.taskManager.start({
    node: c.p.node,
    type: archive ? 'qmrestore' : 'qmcreate',
    id: String(vmid),
    user: c.taskUser,
    faultIds: [vmid],
    run: async (ctx, task) => {
      ctx.applyFault();
      let meta = null;
      if (archive) {
        if (existing && existing.status === 'running') throw new TaskError(`unable to restore VM ${vmid} - vm is running`);
        if (bool(c.p['live-restore']) && !/^[^:]+:backup\/vm\//.test(archive))
          throw new TaskError('live-restore is only compatible with backup images from a Proxmox Backup Server');
        if (!sim.backupExists(archive)) throw new TaskError(`unable to restore VM ${vmid} - volume '${archive}' does not exist`);
        meta = sim.backupMeta.get(archive) || null;
        const file = sim.volumePath(archive);
        if (file) {
          ctx.log(
            `restore vma archive: zstd -q -d -c ${file} | vma extract -v -r /var/tmp/vzdumptmp${task.pid}.fifo - /var/tmp/vzdumptmp${task.pid}`,
          );
          const ok = await sim.archiveReadable(file);
          if (!ok)
            throw new TaskError(
              `command 'set -o pipefail && vma extract -v -r /var/tmp/vzdumptmp${task.pid}.fifo - /var/tmp/vzdumptmp${task.pid}' failed: exit code 133`,
            );
        } else {
          ctx.log(`restore image complete (bytes=${32 * GiB}, duration=1.00s, speed=32768.00MB/s)`);
        }
      }
      await ctx.sleep(sim.taskManager.duration(task));
      if (archive) ctx.log('rescan volumes...');
      const cfg = meta && meta.type === 'qemu' ? { ...meta.config } : {};
      for (const [k, v] of Object.entries(c.p)) {
        if (['node', 'vmid', 'archive', 'force', 'storage', 'unique', 'start', 'pool', 'bwlimit', 'ha-managed', 'live-restore'].includes(k))
          continue;
        cfg[k] = v;
      }
      normConfig(cfg);
      sim.addGuest({
        vmid,
        type: 'qemu',
        node: c.p.node,
        name: cfg.name || (meta && meta.name) || `VM ${vmid}`,
        status: 'stopped',
        config: cfg,
      });
      if (bool(c.p.start)) setRunning(sim, sim.model.guests.get(vmid), true);
    },
  });
  return t.upid;
};

// ---------------------------------------------------------------- tasks (§5)

H.taskList = (c) => {
  const sim = c.sim;
  const p = c.p;
  const source = p.source || 'archive';
  let list = sim.taskManager.tasks.filter((t) => t.node === p.node && taskVisible(c, t));
  if (source === 'archive') list = list.filter((t) => t.status === 'stopped');
  if (source === 'active') list = list.filter((t) => t.status === 'running');
  if (p.typefilter) list = list.filter((t) => t.type === p.typefilter);
  if (p.vmid !== undefined) list = list.filter((t) => t.id === String(p.vmid));
  if (p.userfilter) list = list.filter((t) => t.user.includes(p.userfilter));
  if (bool(p.errors)) list = list.filter((t) => t.status === 'stopped' && t.exitstatus !== 'OK');
  if (p.since !== undefined) list = list.filter((t) => t.starttime >= Number(p.since));
  if (p.until !== undefined) list = list.filter((t) => t.starttime <= Number(p.until));
  if (p.statusfilter) {
    const want = String(p.statusfilter).split(',');
    const kind = (t) =>
      t.status !== 'stopped'
        ? 'unknown'
        : t.exitstatus === 'OK'
          ? 'ok'
          : /^WARNINGS: /.test(t.exitstatus)
            ? 'warning'
            : t.exitstatus === 'unexpected status'
              ? 'unknown'
              : 'error';
    list = list.filter((t) => want.includes(kind(t)));
  }
  list.sort((a, b) => b.starttime - a.starttime || b.pid - a.pid);
  c.total = list.length;
  const start = Number(p.start || 0);
  const limit = p.limit !== undefined ? Number(p.limit) : 50;
  return list.slice(start, limit ? start + limit : undefined).map((t) => taskItem(t, true));
};

H.taskIndex = (c) => {
  findTask(c);
  return [{ name: 'log' }, { name: 'status' }];
};
H.taskStatus = (c) => taskItem(findTask(c), false);

H.taskLog = (c) => {
  const t = findTask(c);
  const start = Number(c.p.start || 0);
  const limit = c.p.limit !== undefined ? Number(c.p.limit) : 50;
  const lines = t.log;
  c.total = lines.length;
  if (lines.length === 0) {
    c.total = 1;
    return [{ n: 1, t: 'no content' }];
  }
  const slice = lines.slice(start, limit === 0 ? undefined : start + limit);
  return slice.map((line, i) => ({ n: start + i + 1, t: line }));
};

H.taskStop = (c) => {
  const t = findTask(c);
  if (t.user !== c.taskUser) c.check(`/nodes/${t.node}`, 'Sys.Modify');
  c.sim.taskManager.interrupt(t);
  return null;
};

// ---------------------------------------------------------------- route table

const N = '/nodes/{node}';
const ROUTES = [
  ['GET', '/version', H.version],
  ['GET', '/cluster/status', H.clusterStatus],
  ['GET', '/cluster/resources', H.clusterResources],
  ['GET', '/cluster/nextid', H.nextid],
  ['GET', '/nodes', H.nodes],
  ['GET', `${N}/status`, H.nodeStatus],
  ['POST', `${N}/vzdump`, vzdumpHandler],
  ['GET', `${N}/lxc`, guestList('lxc')],
  ['POST', `${N}/lxc`, H.lxcCreate],
  ['GET', `${N}/qemu`, guestList('qemu')],
  ['POST', `${N}/qemu`, H.qemuCreate],
  ['GET', `${N}/lxc/{vmid}/interfaces`, H.lxcInterfaces],
  ['GET', `${N}/qemu/{vmid}/agent/network-get-interfaces`, H.qemuAgentIfaces],
  ['GET', `${N}/storage`, H.storageList],
  ['GET', `${N}/storage/{storage}`, H.storageIndex],
  ['GET', `${N}/storage/{storage}/status`, H.storageStatus],
  ['GET', `${N}/storage/{storage}/content`, H.storageContent],
  ['DELETE', `${N}/storage/{storage}/content/{volume}`, H.contentDelete],
  ['GET', `${N}/tasks`, H.taskList],
  ['GET', `${N}/tasks/{upid}`, H.taskIndex],
  ['DELETE', `${N}/tasks/{upid}`, H.taskStop],
  ['GET', `${N}/tasks/{upid}/status`, H.taskStatus],
  ['GET', `${N}/tasks/{upid}/log`, H.taskLog],
];
for (const type of ['lxc', 'qemu']) {
  const G = `${N}/${type}/{vmid}`;
  ROUTES.push(
    ['GET', `${G}/status/current`, statusCurrent(type)],
    ['GET', `${G}/config`, getConfig(type)],
    ['GET', `${G}/snapshot`, snapList(type)],
    ['POST', `${G}/snapshot`, snapCreate(type)],
    ['GET', `${G}/snapshot/{snapname}`, snapIndex(type)],
    ['DELETE', `${G}/snapshot/{snapname}`, snapDelete(type)],
    ['POST', `${G}/snapshot/{snapname}/rollback`, snapRollback(type)],
    ['GET', `${G}/snapshot/{snapname}/config`, snapConfigGet(type)],
    ['PUT', `${G}/snapshot/{snapname}/config`, snapConfigPut(type)],
  );
  for (const a of ['start', 'stop', 'shutdown', 'reboot']) ROUTES.push(['POST', `${G}/status/${a}`, power(type, a)]);
}

/** Match method+path against the simulator's own routes. */
function route(method, p) {
  const segs = p.split('/').filter(Boolean);
  for (const [m, tpl, fn] of ROUTES) {
    const ts = tpl.split('/').filter(Boolean);
    let sg = segs;
    if (ts[ts.length - 1] === '{volume}' && segs.length > ts.length)
      sg = [...segs.slice(0, ts.length - 1), segs.slice(ts.length - 1).join('/')];
    if (ts.length !== sg.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < ts.length && ok; i++) {
      const v = /^\{(\w+)\}$/.exec(ts[i]);
      if (v) params[v[1]] = sg[i];
      else if (ts[i] !== sg[i]) ok = false;
    }
    if (ok) {
      if (m === method) return { handler: fn, pathParams: params, template: tpl };
    }
  }
  return null;
}

module.exports = { route, ROUTES };
