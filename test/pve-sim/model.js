'use strict';
// The simulated cluster: nodes, guests (CTs and VMs) and storages, and the JSON shapes
// PVE returns for them (notes §4.2-4.6, §4.14).

const crypto = require('crypto');
const path = require('path');

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function hwaddr(vmid, idx = 0) {
  const b = [(vmid >> 16) & 0xff, (vmid >> 8) & 0xff, (vmid + idx) & 0xff].map((x) => x.toString(16).toUpperCase().padStart(2, '0'));
  return `BC:24:11:${b.join(':')}`;
}

function defaultIp(vmid) {
  return `10.0.0.${vmid % 250 || 1}/24`;
}

/** Build a guest from the user's description, with a realistic default config. */
function makeGuest(g) {
  const vmid = Number(g.vmid);
  const type = g.type === 'qemu' ? 'qemu' : 'lxc';
  const name = g.name || (type === 'lxc' ? `CT${vmid}` : `VM ${vmid}`);
  const ips = Array.isArray(g.ips) ? g.ips : [defaultIp(vmid)];
  let config;
  if (type === 'lxc') {
    config = {
      arch: 'amd64',
      cores: 1,
      hostname: name,
      memory: 512,
      swap: 512,
      ostype: 'debian',
      net0: `name=eth0,bridge=vmbr0,hwaddr=${hwaddr(vmid)}${ips[0] ? `,ip=${ips[0]}` : ''},type=veth`,
      rootfs: `local-lvm:vm-${vmid}-disk-0,size=8G`,
      unprivileged: 1,
      features: 'nesting=1',
    };
  } else {
    config = {
      boot: 'order=scsi0;net0',
      cores: 2,
      memory: 2048,
      name,
      agent: '1',
      ostype: 'l26',
      net0: `virtio=${hwaddr(vmid)},bridge=vmbr0,firewall=1`,
      scsi0: `local-lvm:vm-${vmid}-disk-0,iothread=1,size=32G`,
      scsihw: 'virtio-scsi-single',
      smbios1: `uuid=${crypto.randomUUID()}`,
      vmgenid: crypto.randomUUID(),
      sockets: 1,
    };
  }
  if (g.template) config.template = 1;
  Object.assign(config, g.config || {});
  return {
    vmid,
    type,
    node: g.node,
    name,
    status: g.status === 'running' ? 'running' : 'stopped',
    ips,
    template: g.template ? 1 : 0,
    lock: g.lock || null,
    hamanaged: !!g.hamanaged,
    agent: g.agent !== false,
    snapshots: [],
    parent: null,
    config,
    startedAt: Date.now(),
  };
}

function digest(obj) {
  return crypto.createHash('sha1').update(JSON.stringify(obj)).digest('hex');
}

/** Parse "local:backup/x" -> {storage, volname}. */
function parseVolid(volid) {
  const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i.exec(volid || '');
  return m ? { storage: m[1], volname: m[2] } : null;
}

const DEFAULT_GUESTS = [
  { vmid: 100, type: 'lxc', node: 'pve1', name: 'web', status: 'running' },
  { vmid: 101, type: 'lxc', node: 'pve2', name: 'dns', status: 'running' },
  { vmid: 102, type: 'qemu', node: 'pve3', name: 'nextcloud', status: 'running' },
  { vmid: 103, type: 'lxc', node: 'pve1', name: 'media', status: 'stopped' },
];

function defaultStorages(baseDir) {
  return [
    { id: 'local', type: 'dir', path: path.join(baseDir, 'storage', 'local'), content: 'backup,vztmpl,iso', shared: 0 },
    { id: 'local-lvm', type: 'lvmthin', content: 'rootdir,images', shared: 0, vgname: 'pve', thinpool: 'data' },
    { id: 'pbs', type: 'pbs', datastore: 'store1', server: '10.0.0.50', content: 'backup', shared: 1 },
    { id: 'nas', type: 'dir', path: path.join(baseDir, 'storage', 'nas'), content: 'backup', shared: 1 },
  ];
}

function normStorage(s) {
  const content = Array.isArray(s.content) ? s.content.join(',') : String(s.content || '');
  return {
    ...s,
    content,
    contentList: content.split(',').filter(Boolean),
    shared: s.shared ? 1 : s.type === 'pbs' ? 1 : 0,
    pbsBackups: [], // PBS snapshots kept in memory
  };
}

/** VM/CT item as returned by the lxc/qemu list and status/current (notes §4.5/4.6). */
function guestStatus(g, nowMs, { legacyVmidStrings = false } = {}) {
  const running = g.status === 'running';
  const memMax = (Number(g.config.memory) || 512) * MiB;
  const cores = Number(g.config.cores) || 1;
  const it = {
    vmid: g.type === 'lxc' && legacyVmidStrings ? String(g.vmid) : g.vmid,
    status: g.status,
    name: g.type === 'lxc' ? String(g.config.hostname || `CT${g.vmid}`).replace(/\s/g, '') : g.config.name || `VM ${g.vmid}`,
    cpus: cores,
    maxmem: memMax,
    maxdisk: (g.type === 'lxc' ? 8 : 32) * GiB,
    disk: g.type === 'lxc' ? Math.floor(1.3 * GiB) : 0,
    mem: running ? Math.floor(memMax * 0.23) : 0,
    uptime: running ? Math.max(1, Math.floor((nowMs - g.startedAt) / 1000)) : 0,
    cpu: running ? 0.0123 : 0,
    netin: running ? 123456 : 0,
    netout: running ? 65432 : 0,
    diskread: running ? 1048576 : 0,
    diskwrite: running ? 524288 : 0,
  };
  if (g.type === 'lxc') {
    it.type = 'lxc';
    it.maxswap = (Number(g.config.swap) || 0) * MiB;
    it.swap = 0;
  } else {
    it.memhost = it.mem;
    if (running) {
      it.qmpstatus = 'running';
      it['running-machine'] = 'pc-i440fx-9.2+pve1';
      it['running-qemu'] = '9.2.0';
    } else it.qmpstatus = 'stopped';
  }
  if (running) it.pid = 10000 + g.vmid;
  if (g.lock) it.lock = g.lock;
  if (g.template) it.template = 1;
  if (g.config.tags) it.tags = g.config.tags;
  return it;
}

module.exports = { makeGuest, guestStatus, digest, parseVolid, hwaddr, DEFAULT_GUESTS, defaultStorages, normStorage, GiB, MiB };
