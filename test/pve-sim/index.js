'use strict';
// Proxmox VE REST API simulator for tests: an HTTPS server speaking /api2/json like
// pveproxy does (see ../shared/pve-api-notes.md, beside the repository). No dependencies beyond Node
// built-ins and the openssl / tar / zstd / gzip CLIs.
//
//   const { startSimulator } = require('./test/pve-sim');
//   const sim = await startSimulator({ port: 0 });
//   ... sim.apiUrl, sim.token, sim.faults.nodeOffline('pve2') ...
//   await sim.close();

const https = require('https');
const fs = require('fs');
const fsp = require('fs/promises');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFile } = require('child_process');
const { promisify } = require('util');

const { loadSchema, checkParams } = require('./schema');
const { Auth, hasPriv } = require('./auth');
const { TaskManager } = require('./tasks');
const { makeGuest, DEFAULT_GUESTS, defaultStorages, normStorage, parseVolid } = require('./model');
const A = require('./archive');
const { route } = require('./endpoints');
const { pbsVerifyUpid } = require('./vzdump');

const execFileP = promisify(execFile);
const DEFAULT_TOKEN_SECRET = 'b2d3c0de-5a5e-4c1a-9d1e-000000000001';
let schemaWarned = false;

/** An error response: status, message (reason = first line), optional errors, or an empty body. */
class ApiError extends Error {
  constructor(status, message, { errors, empty = false } = {}) {
    super(message);
    this.status = status;
    this.errors = errors;
    this.empty = empty;
  }
}

/** Make (or reuse from dir) a self-signed EC certificate for 127.0.0.1. */
async function ensureCert(dir) {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (!(fs.existsSync(certFile) && fs.existsSync(keyFile))) {
    await fsp.mkdir(dir, { recursive: true });
    await execFileP('/usr/bin/openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '30',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]);
  }
  const certPem = fs.readFileSync(certFile, 'utf8');
  const keyPem = fs.readFileSync(keyFile, 'utf8');
  const fingerprint = new crypto.X509Certificate(certPem).fingerprint256; // "AB:CD:..." uppercase
  return { certFile, keyFile, certPem, keyPem, fingerprint };
}

/** Parse a query string / form body; repeated keys become arrays. */
function parseForm(str) {
  const out = {};
  for (const [k, v] of new URLSearchParams(str)) {
    if (out[k] === undefined) out[k] = v;
    else out[k] = [].concat(out[k], v);
  }
  return out;
}

/** Reason phrases must be a single printable latin1 line. */
const reasonOf = (msg) =>
  String(msg)
    .split('\n')[0]
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 512) || 'Error';

async function startSimulator(opts = {}) {
  opts = { ...opts };
  const ownTmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'pve-sim-'));
  const certDir = opts.certDir || path.join(ownTmp, 'cert');
  const baseDir = opts.certDir || ownTmp; // storage dirs live beside the cert when certDir is given
  const cert = await ensureCert(certDir);

  const schema = loadSchema(opts.apidata);
  if (!schema.ok && !schemaWarned && !opts.quiet) {
    schemaWarned = true;
    process.stderr.write(`pve-sim: WARNING: ${schema.note}\n`);
  }

  let clockOffset = 0;
  const nowMs = () => (typeof opts.now === 'function' ? opts.now() : Date.now()) + clockOffset;
  const nowSec = () => Math.floor(nowMs() / 1000);

  // ---- the cluster model
  const nodeList = opts.standalone
    ? [(opts.nodes && opts.nodes[0]) || { name: 'pve' }]
    : opts.nodes || [{ name: 'pve1' }, { name: 'pve2' }, { name: 'pve3' }];
  const nodes = new Map(
    nodeList.map((n, i) => [
      n.name,
      {
        name: n.name,
        online: n.online !== false,
        nodeid: i + 1,
        ip: n.ip || `10.0.0.${11 + i}`,
        bootSec: nowSec() - 86400 * (3 + i),
      },
    ]),
  );
  const defaultNode = nodeList[0].name;
  const guests = new Map();
  for (const g of opts.guests || (opts.standalone ? DEFAULT_GUESTS.map((x) => ({ ...x, node: defaultNode })) : DEFAULT_GUESTS)) {
    const guest = makeGuest(g);
    if (!nodes.has(guest.node)) throw new Error(`pve-sim: guest ${guest.vmid} is on unknown node '${guest.node}'`);
    guests.set(guest.vmid, guest);
  }
  const storages = new Map();
  for (const s of opts.storages || defaultStorages(baseDir)) {
    const st = normStorage(s);
    if (st.type === 'dir' && !st.path) st.path = path.join(baseDir, 'storage', st.id);
    if (st.path) fs.mkdirSync(path.join(st.path, 'dump'), { recursive: true });
    storages.set(st.id, st);
  }

  const users = opts.users || [{ userid: 'root@pam', password: 'simpass' }];
  const tokens = opts.tokens || [{ id: 'root@pam!autopilot', secret: DEFAULT_TOKEN_SECRET, privsep: false }];

  const timers = new Set();
  const faults = { slow: [], fail: [], taskFaults: [], pbsVerifyFails: new Set() };

  const sim = {
    opts,
    options: opts, // alias: tests may change options (taskDurationMs, legacyErrors, ...) at run time
    templates: opts.templates || [
      'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst',
      'local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz',
    ],
    model: { nodes, guests, storages },
    clusterName: opts.clusterName || (opts.standalone ? '' : 'homelab'),
    fingerprint: cert.fingerprint,
    certPem: cert.certPem,
    certFile: cert.certFile,
    keyFile: cert.keyFile,
    token: `${tokens[0] ? `${tokens[0].id}=${tokens[0].secret}` : ''}`,
    requests: [],
    violations: [],
    unimplemented: [],
    schemaChecked: schema.ok,
    schemaNote: schema.note,
    vzdumpLocks: new Map(),
    // figures a test set: node -> { cpu, memUsed, memTotal, rootUsed, rootTotal }; storage -> { used, total, active }
    nodeStats: new Map(),
    storageUsage: new Map(),
    backupMeta: new Map(),
    _corrupt: new Set(),
    tmpRoot: ownTmp,
    nowMs,
    nowSec,
    advanceClock(ms) {
      clockOffset += Number(ms) || 0;
    },
    nodeBootSec: (n) => (nodes.get(n) ? nodes.get(n).bootSec : nowSec() - 86400),
    isNodeOffline: (n) => !!(nodes.get(n) && !nodes.get(n).online),
    get tasks() {
      return sim.taskManager.tasks;
    },
    guest: (vmid) => guests.get(Number(vmid)) || null,
    storagePath: (id) => (storages.get(id) ? storages.get(id).path || null : null),
    backups(id) {
      const s = storages.get(id);
      return s ? sim.listBackups(s).map((b) => b.volid) : [];
    },
    resetRequests() {
      sim.requests.length = 0;
    },
    addGuest(g) {
      const guest = makeGuest(g);
      if (g.config) guest.config = { ...g.config };
      guests.set(guest.vmid, guest);
      return guest;
    },
    /** Backup items (storage content shape) of a storage. */
    listBackups(s, vmid) {
      if (s.type === 'pbs') {
        return s.pbsBackups
          .filter((b) => vmid === undefined || b.vmid === Number(vmid))
          .map((b) => {
            const it = {
              volid: b.volid,
              format: b.format,
              size: b.size,
              content: 'backup',
              vmid: b.vmid,
              ctime: b.ctime,
              subtype: b.subtype,
            };
            if (b.notes !== undefined) it.notes = String(b.notes).split('\n')[0];
            if (b.protected) it.protected = 1;
            if (b.verification) it.verification = b.verification;
            return it;
          })
          .sort((a, b) => (a.volid < b.volid ? -1 : 1));
      }
      if (s.path) return A.listDirBackups(s, vmid);
      return [];
    },
    /** File path of a dir-storage backup volid, or null (PBS / unknown). */
    volumePath(volid) {
      const pv = parseVolid(volid);
      const s = pv && storages.get(pv.storage);
      if (!s || !s.path || !pv.volname.startsWith('backup/')) return null;
      return path.join(s.path, 'dump', pv.volname.slice('backup/'.length));
    },
    backupExists(volid) {
      const pv = parseVolid(volid);
      const s = pv && storages.get(pv.storage);
      if (!s) return false;
      if (s.type === 'pbs') return s.pbsBackups.some((b) => b.volid === volid);
      const f = sim.volumePath(volid);
      return !!f && fs.existsSync(f);
    },
    removeBackup(volid) {
      const pv = parseVolid(volid);
      const s = pv && storages.get(pv.storage);
      if (!s) return;
      if (s.type === 'pbs') {
        s.pbsBackups = s.pbsBackups.filter((b) => b.volid !== volid);
        return;
      }
      const f = sim.volumePath(volid);
      if (!f) return;
      const m = /^(.*\/vzdump-\w+-\d+-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})/.exec(f);
      for (const x of [f, `${f}.notes`, `${f}.protected`, m ? `${m[1]}.log` : null]) if (x) fs.rmSync(x, { force: true });
      sim.backupMeta.delete(volid);
    },
    /** Can the archive be decompressed (and, for tar, listed)? Used by restores. */
    async archiveReadable(file) {
      try {
        const dec = file.endsWith('.zst') ? ['zstd', ['-t', '-q', file]] : file.endsWith('.gz') ? ['gzip', ['-t', file]] : null;
        if (dec) await execFileP(dec[0], dec[1]);
        if (/\.tar(\.lzo)?$/.test(file)) await execFileP('tar', ['-tf', file]);
        if (/\.vma$/.test(file)) {
          const fd = fs.openSync(file, 'r');
          const b = Buffer.alloc(4);
          fs.readSync(fd, b, 0, 4, 0);
          fs.closeSync(fd);
          if (b.toString('latin1') !== 'VMA\0') return false;
        }
        return true;
      } catch {
        return false;
      }
    },
    _later(ms, fn) {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    },
    _scheduleVerify(entry) {
      const apply = () => {
        entry.verification = { state: faults.pbsVerifyFails.has(entry.vmid) ? 'failed' : 'ok', upid: pbsVerifyUpid('store1', nowSec()) };
      };
      const d = opts.pbsVerifyDelayMs || 0;
      if (d <= 0) apply();
      else sim._later(d, apply);
    },
    /** Take the first failTask fault matching this task (one-shot). */
    _takeTaskFault(type, ids) {
      const list = faults.taskFaults;
      const i = list.findIndex(
        (f) =>
          (f.match.type === undefined || f.match.type === type) &&
          (f.match.vmid === undefined || (ids || []).map(Number).includes(Number(f.match.vmid))),
      );
      if (i < 0) return null;
      return list.splice(i, 1)[0].result;
    },
  };
  sim.taskManager = new TaskManager(sim);
  const auth = new Auth({ users, tokens, nowSec });

  sim.faults = {
    nodeOffline(node, offline = true) {
      const n = nodes.get(node);
      if (!n) throw new Error(`pve-sim: unknown node ${node}`);
      n.online = !offline;
    },
    slow(ms, match) {
      faults.slow.push({ ms, match });
    },
    fail(status, match, count = 1, message) {
      if (typeof status === 'object') {
        message = status.message;
        status = status.status;
      }
      faults.fail.push({ status, match, count, message });
    },
    failTask(match, result) {
      faults.taskFaults.push({ match: match || {}, result });
    },
    moveGuest(vmid, node) {
      const g = guests.get(Number(vmid));
      if (!g || !nodes.has(node)) throw new Error(`pve-sim: moveGuest(${vmid}, ${node}): unknown guest or node`);
      g.node = node;
    },
    expireTickets() {
      auth.expireAll();
    },
    corruptArchive(vmid, on = true) {
      if (on) sim._corrupt.add(Number(vmid));
      else sim._corrupt.delete(Number(vmid));
    },
    pbsVerifyFails(vmid, on = true) {
      if (on) faults.pbsVerifyFails.add(Number(vmid));
      else faults.pbsVerifyFails.delete(Number(vmid));
    },
    /** a node's CPU (0..1), memory and root file system figures (bytes), as /nodes and /nodes/{node}/status report them */
    nodeStats(node, stats) {
      if (!nodes.has(node)) throw new Error(`pve-sim: unknown node ${node}`);
      sim.nodeStats.set(node, { ...(sim.nodeStats.get(node) || {}), ...stats });
    },
    /** a storage's used and total bytes, or active: false (listed without sizes) */
    storageUsage(id, usage) {
      if (!storages.has(id)) throw new Error(`pve-sim: unknown storage ${id}`);
      sim.storageUsage.set(id, { ...(sim.storageUsage.get(id) || {}), ...usage });
    },
    clear() {
      sim.nodeStats.clear();
      sim.storageUsage.clear();
      faults.slow.length = 0;
      faults.fail.length = 0;
      faults.taskFaults.length = 0;
      faults.pbsVerifyFails.clear();
      sim._corrupt.clear();
      for (const n of nodes.values()) n.online = true;
    },
  };
  const matches = (m, key) => !m || (m instanceof RegExp ? m.test(key) : key.includes(String(m)));

  // ---- request handling
  async function handle(req, res, body) {
    const rec = { method: req.method, path: '', params: {}, status: 0, auth: 'none' };
    const send = async (status, payload, reason, extra = {}) => {
      rec.status = status;
      const key = `${req.method} ${rec.path}`;
      let delay = 0;
      for (const s of faults.slow) if (matches(s.match, key)) delay = Math.max(delay, s.ms);
      if (delay)
        await new Promise((r) => {
          const t = setTimeout(() => {
            timers.delete(t);
            r();
          }, delay);
          timers.add(t);
        });
      const buf = payload === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload));
      const headers = {
        'Content-Length': buf.length,
        'Cache-Control': 'max-age=0',
        Pragma: 'no-cache',
        Expires: new Date().toUTCString(),
        Server: 'pve-api-daemon/3.0',
        ...extra,
      };
      if (payload !== null) headers['Content-Type'] = 'application/json;charset=UTF-8';
      res.writeHead(status, reason || undefined, headers);
      res.end(buf);
      sim.requests.push(rec);
    };
    const sendError = async (e) => {
      if (!(e instanceof ApiError)) e = new ApiError(500, String((e && e.message) || e));
      const msg = e.message.endsWith('\n') ? e.message : `${e.message}\n`;
      if (e.empty) return send(e.status, null, reasonOf(msg));
      const payload = { data: null };
      if (e.errors) payload.errors = e.errors;
      if (!opts.legacyErrors) payload.message = msg;
      return send(e.status, payload, reasonOf(msg));
    };
    try {
      const u = new URL(req.url, 'https://127.0.0.1');
      const m = /^\/api2\/json(\/.*)?$/.exec(u.pathname);
      if (!m) {
        rec.path = u.pathname;
        return await send(501, null, `Method '${req.method} ${u.pathname}' not implemented`);
      }
      const segs = (m[1] || '/')
        .split('/')
        .filter(Boolean)
        .map((s) => {
          try {
            return decodeURIComponent(s);
          } catch {
            return s;
          }
        });
      const relPath = `/${segs.join('/')}`;
      rec.path = relPath;
      const method = req.method;
      if (body.length && (method === 'GET' || method === 'DELETE' || method === 'HEAD')) {
        sim.violations.push({ method, path: relPath, problem: 'Unexpected content for method (body on GET/DELETE)' });
        throw new ApiError(501, 'Unexpected content for method', { empty: true });
      }

      // Parameters: query always, body for POST/PUT (form or JSON).
      const params = parseForm(u.search);
      let json = false;
      if (body.length && (method === 'POST' || method === 'PUT')) {
        const ct = String(req.headers['content-type'] || '');
        if (/application\/json/i.test(ct)) {
          json = true;
          let obj;
          try {
            obj = JSON.parse(body.toString('utf8'));
          } catch {
            throw new ApiError(400, 'malformed JSON body');
          }
          if (obj && typeof obj === 'object' && !Array.isArray(obj)) Object.assign(params, obj);
        } else {
          Object.assign(params, parseForm(body.toString('utf8')));
        }
      }
      rec.params = params;
      const key = `${method} ${relPath}`;

      // Injected HTTP failures come first (a proxy or the daemon failing).
      const f = faults.fail.find((x) => x.count > 0 && matches(x.match, key));
      if (f) {
        f.count--;
        if (f.status >= 595 || (f.status === 503 && !f.message)) {
          return await send(f.status, null, f.message || (f.status === 503 ? 'Service Unavailable' : 'No route to host'));
        }
        throw new ApiError(f.status, f.message || (f.status >= 500 ? 'simulated failure' : 'simulated error'));
      }

      // Authentication (empty-body 401s, optional delay).
      const authFail = async (reason) => {
        if (opts.authFailDelayMs)
          await new Promise((r) => {
            const t = setTimeout(() => {
              timers.delete(t);
              r();
            }, opts.authFailDelayMs);
            timers.add(t);
          });
        throw new ApiError(401, reason, { empty: true });
      };
      let who;
      const isTicketCall = relPath === '/access/ticket' && (method === 'POST' || method === 'GET');
      if (isTicketCall) {
        const id = auth.identify(req.headers);
        if (method === 'POST' && id.kind === 'token') {
          rec.auth = 'token';
          throw new ApiError(403, "URI '/access/ticket' not available with API token, need proper ticket.");
        }
        who = { kind: 'none', userid: null };
      } else {
        const id = auth.identify(req.headers);
        rec.auth = id.kind;
        if (id.error) await authFail(id.error);
        if (id.kind === 'ticket' && method !== 'GET') {
          if (!auth.verifyCsrf(String(req.headers.csrfpreventiontoken || ''), id.userid))
            await authFail('Permission denied - invalid csrf token');
        }
        who = id;
      }

      // Find the method in the API schema and in the simulator.
      const sm = schema.ok ? schema.match(relPath) : null;
      if (schema.ok && (!sm || !sm.info[method])) {
        sim.violations.push({ method, path: relPath, problem: `Method '${method} ${relPath}' not implemented (not in the API schema)` });
        throw new ApiError(501, `Method '${method} ${relPath}' not implemented`);
      }
      const info = sm ? sm.info[method] : null;
      const r = isTicketCall ? { handler: (c) => ticketHandler(method, c.p), pathParams: {} } : route(method, relPath);
      if (!r) {
        sim.unimplemented.push({ method, path: relPath });
        throw new ApiError(501, `Method '${method} ${relPath}' not implemented`);
      }
      const pathParams = sm ? sm.pathParams : r.pathParams;

      // A path parameter repeated in the parameters must have the same value.
      for (const [k, v] of Object.entries(pathParams)) {
        if (params[k] !== undefined) {
          if (String(params[k]) !== String(v)) {
            sim.violations.push({
              method,
              path: relPath,
              param: k,
              problem: 'duplicate parameter (already defined in URI) with conflicting values!',
            });
            throw new ApiError(400, 'duplicate parameter (already defined in URI) with conflicting values!');
          }
          delete params[k];
        }
      }
      if (who.kind === 'token' && info && Number(info.allowtoken) === 0) {
        throw new ApiError(403, `URI '${relPath}' not available with API token, need proper ticket.`);
      }

      // Proxied calls: the target node must exist and be reachable.
      if (pathParams.node !== undefined && relPath.startsWith('/nodes/')) {
        const n = nodes.get(pathParams.node);
        rec.node = pathParams.node;
        if (!n)
          throw new ApiError(
            500,
            `hostname lookup '${pathParams.node}' failed - failed to get address info for: ${pathParams.node}: Name or service not known`,
          );
        if (!n.online) return await send(595, null, 'No route to host');
      }

      // Schema check of the parameters (on the target node, as PVE does).
      if (info) {
        const { errors } = checkParams(info, params, pathParams, { json });
        if (Object.keys(errors).length) {
          for (const [p, problem] of Object.entries(errors))
            sim.violations.push({ method, path: relPath, param: p, problem: problem.trim() });
          throw new ApiError(400, 'Parameter verification failed.', { errors });
        }
      }

      const c = makeCtx(who, { ...params, ...pathParams }, pathParams, method, relPath);
      const data = await r.handler(c);
      return await sendOk(data, c.total !== undefined ? { total: c.total } : {});
    } catch (e) {
      if (!(e instanceof ApiError) && !opts.quiet) process.stderr.write(`pve-sim: internal error: ${e && e.stack}\n`);
      return sendError(e);
    }

    async function sendOk(data, extra) {
      return send(200, { data, ...extra });
    }
  }

  async function ticketHandler(method, params) {
    if (method === 'GET') return null;
    const userid = auth.login(params.username, params.password, params.realm);
    if (!userid) {
      if (opts.authFailDelayMs)
        await new Promise((r) => {
          const t = setTimeout(() => {
            timers.delete(t);
            r();
          }, opts.authFailDelayMs);
          timers.add(t);
        });
      throw new ApiError(401, 'authentication failure');
    }
    const data = {
      username: userid,
      ticket: auth.makeTicket(userid),
      CSRFPreventionToken: auth.makeCsrf(userid),
      cap: {
        vms: { 'VM.Audit': 1, 'VM.PowerMgmt': 1, 'VM.Backup': 1, 'VM.Snapshot': 1 },
        storage: { 'Datastore.Audit': 1, 'Datastore.Allocate': 1 },
        nodes: { 'Sys.Audit': 1 },
        access: {},
        dc: {},
      },
    };
    if (!opts.standalone) data.clustername = sim.clusterName;
    return data;
  }

  function makeCtx(who, p, pp, method, relPath) {
    const c = {
      sim,
      p,
      pp,
      who,
      method,
      path: relPath,
      taskUser: who.tokenid || who.userid,
      can: (aclPath, priv) => hasPriv(who, aclPath, priv),
      check(aclPath, priv) {
        if (!hasPriv(who, aclPath, priv)) throw new ApiError(403, `Permission check failed (${aclPath}, ${priv})`);
      },
      die(msg) {
        throw new ApiError(500, msg);
      },
      fail(status, msg, errors) {
        throw new ApiError(status, msg, { errors });
      },
      paramError(errors, violation = false) {
        if (violation) for (const [k, v] of Object.entries(errors)) sim.violations.push({ method, path: relPath, param: k, problem: v });
        throw new ApiError(400, 'Parameter verification failed.', { errors });
      },
    };
    return c;
  }

  // ---- the server
  const server = https.createServer({ key: cert.keyPem, cert: cert.certPem, keepAliveTimeout: 5000 }, (req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (d) => {
      size += d.length;
      if (size <= 64 * 1024 * 1024) chunks.push(d);
    });
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks)).catch(() => {
        try {
          res.destroy();
        } catch {
          /* gone */
        }
      });
    });
  });
  const sockets = new Set();
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  sim.port = server.address().port;
  sim.url = `https://127.0.0.1:${sim.port}`;
  sim.apiUrl = `${sim.url}/api2/json`;
  sim.server = server;

  let closed = false;
  sim.close = async () => {
    if (closed) return;
    closed = true;
    sim.taskManager.close();
    for (const t of timers) clearTimeout(t);
    timers.clear();
    await new Promise((r) => {
      server.close(() => r());
      if (server.closeAllConnections) server.closeAllConnections();
      for (const s of sockets) s.destroy();
    });
    // Our temp dir (cert and default storages unless certDir was given; scratch space).
    // Storage paths given by the caller and certDir are left alone.
    await fsp.rm(ownTmp, { recursive: true, force: true });
  };
  return sim;
}

module.exports = { startSimulator, DEFAULT_TOKEN_SECRET, ApiError };
