#!/usr/bin/env node
'use strict';
// Quick self-check of the PVE simulator: `node test/pve-sim/selfcheck.js` (exit 0 = fine).

const https = require('https');
const assert = require('assert');
const { execFileSync } = require('child_process');
const { startSimulator } = require('./index');

let sim;
let agent;

function call(method, p, { params, json, headers = {}, body: rawBody } = {}) {
  return new Promise((resolve, reject) => {
    let pathQs = `/api2/json${p}`;
    let body = rawBody;
    const h = { ...headers };
    if (params && (method === 'GET' || method === 'DELETE')) pathQs += `?${new URLSearchParams(params)}`;
    else if (params) {
      body = new URLSearchParams(params).toString();
      h['Content-Type'] = 'application/x-www-form-urlencoded';
    }
    if (json) {
      body = JSON.stringify(json);
      h['Content-Type'] = 'application/json';
    }
    if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
    const req = https.request({ host: '127.0.0.1', port: sim.port, method, path: pathQs, headers: h, ca: sim.certPem, agent }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = null;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          /* not json */
        }
        resolve({ status: res.statusCode, reason: res.statusMessage, text, json: parsed });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const TOK = () => ({ Authorization: `PVEAPIToken=${sim.token}` });
const tok = (method, p, o = {}) => call(method, p, { ...o, headers: { ...TOK(), ...(o.headers || {}) } });

async function waitTask(node, upid) {
  for (let i = 0; i < 200; i++) {
    const r = await tok('GET', `/nodes/${node}/tasks/${encodeURIComponent(upid)}/status`);
    assert.strictEqual(r.status, 200, r.text);
    if (r.json.data.status === 'stopped') return r.json.data;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error('task did not finish');
}

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check('schema check is active', async () => {
  assert.strictEqual(sim.schemaChecked, true, sim.schemaNote);
});

check('token auth (= and space forms); no auth -> 401 empty "No ticket"', async () => {
  const r = await tok('GET', '/version');
  assert.strictEqual(r.status, 200);
  assert.ok(r.json.data.version);
  const r2 = await call('GET', '/version', { headers: { Authorization: `PVEAPIToken ${sim.token}` } });
  assert.strictEqual(r2.status, 200);
  const r3 = await call('GET', '/version');
  assert.strictEqual(r3.status, 401);
  assert.strictEqual(r3.reason, 'No ticket');
  assert.strictEqual(r3.text, '');
  const r4 = await call('GET', '/version', { headers: { Authorization: 'PVEAPIToken=root@pam!autopilot=wrong' } });
  assert.strictEqual(r4.status, 401);
  assert.strictEqual(r4.reason, 'Authentication failed!');
  assert.strictEqual(r4.text, '');
});

check('ticket login + CSRF; missing CSRF -> 401 empty; token refused on /access/ticket', async () => {
  const bad = await call('POST', '/access/ticket', { params: { username: 'root@pam', password: 'nope' } });
  assert.strictEqual(bad.status, 401);
  assert.deepStrictEqual(bad.json, { data: null, message: 'authentication failure\n' });
  const r = await call('POST', '/access/ticket', { params: { username: 'root@pam', password: 'simpass' } });
  assert.strictEqual(r.status, 200, r.text);
  const { ticket, CSRFPreventionToken: csrf } = r.json.data;
  assert.match(ticket, /^PVE:root@pam:[0-9A-F]{8}::/);
  assert.match(csrf, /^[0-9A-F]{8}:/);
  const cookie = { Cookie: `PVEAuthCookie=${encodeURIComponent(ticket)}` };
  assert.strictEqual((await call('GET', '/nodes', { headers: cookie })).status, 200);
  const noCsrf = await call('POST', '/nodes/pve1/lxc/103/status/start', { headers: cookie });
  assert.strictEqual(noCsrf.status, 401);
  assert.strictEqual(noCsrf.reason, 'Permission denied - invalid csrf token');
  assert.strictEqual(noCsrf.text, '');
  const withCsrf = await call('POST', '/nodes/pve1/lxc/103/snapshot', {
    headers: { ...cookie, CSRFPreventionToken: csrf },
    params: { snapname: 'before' },
  });
  assert.strictEqual(withCsrf.status, 200, withCsrf.text);
  assert.match(withCsrf.json.data, /^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzsnapshot:103:root@pam:$/);
  assert.strictEqual((await waitTask('pve1', withCsrf.json.data)).exitstatus, 'OK');
  const renew = await call('POST', '/access/ticket', { params: { username: 'root@pam', password: ticket } });
  assert.strictEqual(renew.status, 200);
  const tk = await tok('POST', '/access/ticket', { params: { username: 'root@pam', password: 'simpass' } });
  assert.strictEqual(tk.status, 403);
  assert.match(tk.json.message, /not available with API token/);
  sim.advanceClock(2 * 3600 * 1000 + 1000);
  const expired = await call('GET', '/nodes', { headers: cookie });
  assert.strictEqual(expired.status, 401);
  assert.strictEqual(expired.reason, 'Authentication failed!');
  sim.advanceClock(-(2 * 3600 * 1000 + 1000));
});

check("boolean 'true' refused (400), JSON true accepted", async () => {
  const r = await tok('GET', '/nodes/pve1/tasks', { params: { errors: 'true' } });
  assert.strictEqual(r.status, 400);
  assert.strictEqual(r.json.errors.errors, "type check ('boolean') failed - got 'true'");
  assert.strictEqual(r.reason, 'Parameter verification failed.');
  const j = await tok('POST', '/nodes/pve1/lxc/103/status/start', { json: { skiplock: false } });
  assert.strictEqual(j.status, 200, j.text);
  assert.strictEqual((await waitTask('pve1', j.json.data)).exitstatus, 'OK');
  sim.violations.length = 0;
});

check('sync/async asymmetries and nextid string', async () => {
  const r = await tok('POST', '/nodes/pve1/lxc/100/status/start');
  assert.strictEqual(r.status, 500);
  assert.strictEqual(r.reason, 'CT 100 already running');
  assert.deepStrictEqual(r.json, { data: null, message: 'CT 100 already running\n' });
  const q = await tok('POST', '/nodes/pve3/qemu/102/status/start');
  assert.strictEqual(q.status, 200);
  const st = await waitTask('pve3', q.json.data);
  assert.strictEqual(st.exitstatus, 'VM 102 already running');
  assert.strictEqual(st.endtime, undefined);
  const n = await tok('GET', '/cluster/nextid');
  assert.strictEqual(n.json.data, '104');
  const taken = await tok('GET', '/cluster/nextid', { params: { vmid: 100 } });
  assert.strictEqual(taken.status, 400);
  assert.strictEqual(taken.json.errors.vmid, 'VM 100 already exists');
  const wrongNode = await tok('GET', '/nodes/pve2/lxc/100/status/current');
  assert.strictEqual(wrongNode.status, 500);
  assert.strictEqual(wrongNode.reason, "Configuration file 'nodes/pve2/lxc/100.conf' does not exist");
});

check('vzdump to local with compress=zstd writes a real tar.zst', async () => {
  const r = await tok('POST', '/nodes/pve1/vzdump', {
    params: { vmid: '100', storage: 'local', compress: 'zstd', mode: 'snapshot', 'notes-template': '{{guestname}} on {{node}}', remove: 0 },
  });
  assert.strictEqual(r.status, 200, r.text);
  assert.match(r.json.data, /:vzdump:100:root@pam!autopilot:$/);
  const st = await waitTask('pve1', r.json.data);
  assert.strictEqual(st.exitstatus, 'OK');
  assert.strictEqual(st.user, 'root@pam');
  assert.strictEqual(st.tokenid, 'autopilot');
  const log = await tok('GET', `/nodes/pve1/tasks/${encodeURIComponent(r.json.data)}/log`, { params: { limit: 0 } });
  const lines = log.json.data.map((l) => l.t);
  const m = lines.map((l) => /creating vzdump archive '([^']+)'/.exec(l)).find(Boolean);
  assert.ok(m, lines.join('\n'));
  assert.match(m[1], /\/dump\/vzdump-lxc-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$/);
  assert.ok(lines.some((l) => /^INFO: archive file size: \d+(KB|MB)$/.test(l)));
  assert.strictEqual(lines[lines.length - 1], 'TASK OK');
  const listing = execFileSync('sh', ['-c', 'zstd -dc "$1" | tar -t', 'sh', m[1]], { encoding: 'utf8' });
  assert.ok(listing.includes('./etc/hostname'), listing);
  const content = await tok('GET', '/nodes/pve1/storage/local/content', { params: { content: 'backup', vmid: 100 } });
  assert.strictEqual(content.json.data.length, 1);
  const it = content.json.data[0];
  assert.strictEqual(it.format, 'tar.zst');
  assert.strictEqual(it.notes, 'web on pve1');
  assert.strictEqual(it.subtype, 'lxc');
  assert.deepStrictEqual(sim.backups('local'), [it.volid]);
});

check('vzdump for a guest on another node returns "OK"', async () => {
  const r = await tok('POST', '/nodes/pve1/vzdump', { params: { vmid: '101', storage: 'local' } });
  assert.strictEqual(r.status, 200);
  assert.strictEqual(r.json.data, 'OK');
});

check('task log paging (1-based n, default limit 50, total)', async () => {
  const upid = sim.tasks.find((t) => t.type === 'vzdump').upid;
  const all = await tok('GET', `/nodes/pve1/tasks/${encodeURIComponent(upid)}/log`, { params: { limit: 0 } });
  const total = all.json.total;
  assert.ok(total > 5);
  assert.strictEqual(all.json.data[0].n, 1);
  const page = await tok('GET', `/nodes/pve1/tasks/${encodeURIComponent(upid)}/log`, { params: { start: 2, limit: 3 } });
  assert.deepStrictEqual(
    page.json.data.map((l) => l.n),
    [3, 4, 5],
  );
  assert.strictEqual(page.json.total, total);
  const wrong = await tok('GET', `/nodes/pve2/tasks/${encodeURIComponent(upid)}/status`);
  assert.strictEqual(wrong.status, 400);
  assert.strictEqual(wrong.json.errors.upid, 'no such task');
});

check('offline node -> 595 empty body, resources show offline/unknown', async () => {
  sim.faults.nodeOffline('pve2');
  const r = await tok('GET', '/nodes/pve2/lxc');
  assert.strictEqual(r.status, 595);
  assert.strictEqual(r.reason, 'No route to host');
  assert.strictEqual(r.text, '');
  const res = await tok('GET', '/cluster/resources');
  const g = res.json.data.find((x) => x.id === 'lxc/101');
  assert.strictEqual(g.status, 'unknown');
  assert.strictEqual(g.name, undefined);
  assert.strictEqual(res.json.data.find((x) => x.id === 'node/pve2').status, 'offline');
  const unknown = await tok('GET', '/nodes/nope/status');
  assert.strictEqual(unknown.status, 500);
  assert.match(unknown.reason, /^hostname lookup 'nope' failed/);
  sim.faults.clear();
});

check('undeclared parameter -> 400 and recorded in violations; unknown path 501', async () => {
  sim.violations.length = 0;
  const r = await tok('GET', '/nodes/pve1/lxc', { params: { bogus: 1 } });
  assert.strictEqual(r.status, 400);
  assert.strictEqual(r.json.errors.bogus, 'property is not defined in schema and the schema does not allow additional properties');
  assert.strictEqual(sim.violations.length, 1);
  assert.strictEqual(sim.violations[0].param, 'bogus');
  const u = await tok('GET', '/foo');
  assert.strictEqual(u.status, 501);
  assert.strictEqual(u.reason, "Method 'GET /foo' not implemented");
  const b = await tok('GET', '/version', { body: 'x=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.strictEqual(b.status, 501);
  assert.strictEqual(b.reason, 'Unexpected content for method');
  sim.violations.length = 0;
});

check('snapshot list ends with current; interfaces null when stopped', async () => {
  const s = await tok('GET', '/nodes/pve1/lxc/103/snapshot');
  assert.deepStrictEqual(
    s.json.data.map((x) => x.name),
    ['before', 'current'],
  );
  const stop = await tok('POST', '/nodes/pve1/lxc/103/status/stop');
  assert.strictEqual(stop.status, 200, stop.text);
  await waitTask('pve1', stop.json.data);
  const i = await tok('GET', '/nodes/pve1/lxc/103/interfaces');
  assert.deepStrictEqual(i.json, { data: null });
  const i2 = await tok('GET', '/nodes/pve1/lxc/100/interfaces');
  assert.deepStrictEqual(
    i2.json.data.map((x) => x.name),
    ['lo', 'eth0'],
  );
});

check('vzdump: global lock wait, lockwait timeout -> unexpected status (no TASK line)', async () => {
  sim.opts.lockwaitScaleMs = 100; // 1 "minute" = 100 ms
  sim.opts.vzdumpDurationMs = () => 400;
  const a = await tok('POST', '/nodes/pve1/vzdump', { params: { vmid: '103', storage: 'nas' } });
  const b = await tok('POST', '/nodes/pve1/vzdump', { params: { vmid: '100', storage: 'nas', lockwait: 1 } });
  const sb = await waitTask('pve1', b.json.data);
  assert.strictEqual(sb.exitstatus, 'unexpected status');
  const lb = sim.tasks.find((t) => t.upid === b.json.data).log;
  assert.strictEqual(lb[0], 'INFO: trying to get global lock - waiting...');
  assert.ok(!lb.some((l) => l.startsWith('TASK ')));
  const c = await tok('POST', '/nodes/pve1/vzdump', { params: { vmid: '100', storage: 'nas', compress: 'gzip' } });
  assert.strictEqual((await waitTask('pve1', a.json.data)).exitstatus, 'OK');
  const sc = await waitTask('pve1', c.json.data);
  assert.strictEqual(sc.exitstatus, 'OK');
  const lc = sim.tasks.find((t) => t.upid === c.json.data).log;
  assert.ok(lc.includes('INFO: got global lock'), lc.join('\n'));
  delete sim.opts.vzdumpDurationMs;
});

check('vzdump: failures (unknown VM, wrong content, storage+dumpdir, failTask, interrupt)', async () => {
  const run = async (params) => {
    const r = await tok('POST', '/nodes/pve1/vzdump', { params });
    assert.strictEqual(r.status, 200, r.text);
    return [await waitTask('pve1', r.json.data), sim.tasks.find((t) => t.upid === r.json.data).log];
  };
  let [st, log] = await run({ vmid: '999', storage: 'local' });
  assert.strictEqual(st.exitstatus, 'job errors');
  assert.ok(log.includes("ERROR: Backup of VM 999 failed - unable to find VM '999'"));
  assert.deepStrictEqual(log.slice(-2), ['INFO: Backup job finished with errors', 'TASK ERROR: job errors']);
  [st] = await run({ vmid: '100', storage: 'local-lvm' });
  assert.strictEqual(st.exitstatus, "can't use storage 'local-lvm' for backups - wrong content type");
  [st] = await run({ vmid: '100', storage: 'local', dumpdir: '/tmp' });
  assert.strictEqual(st.exitstatus, "cannot use options 'storage' and 'dumpdir' at the same time");
  sim.faults.failTask({ type: 'vzdump', vmid: 100 }, 'disk full');
  [st, log] = await run({ vmid: '100', storage: 'local' });
  assert.strictEqual(st.exitstatus, 'job errors');
  assert.ok(log.includes('ERROR: Backup of VM 100 failed - disk full'));
  sim.faults.failTask({ type: 'vzdump' }, 'warnings');
  [st, log] = await run({ vmid: '100', storage: 'local' });
  assert.strictEqual(st.exitstatus, 'WARNINGS: 2');
  assert.strictEqual(log.filter((l) => l.startsWith('WARN: ')).length, 2);
  sim.opts.vzdumpDurationMs = () => 2000;
  const r = await tok('POST', '/nodes/pve1/vzdump', { params: { vmid: '100', storage: 'local' } });
  await new Promise((res) => setTimeout(res, 50));
  assert.strictEqual(sim.guest(100).lock, 'backup');
  const locked = await tok('POST', '/nodes/pve1/lxc/100/snapshot', { params: { snapname: 'x1' } });
  assert.strictEqual((await waitTask('pve1', locked.json.data)).exitstatus, 'CT is locked (backup)');
  const del = await tok('DELETE', `/nodes/pve1/tasks/${encodeURIComponent(r.json.data)}`);
  assert.deepStrictEqual(del.json, { data: null });
  st = await waitTask('pve1', r.json.data);
  assert.strictEqual(st.exitstatus, 'received interrupt');
  assert.deepStrictEqual(sim.tasks.find((t) => t.upid === r.json.data).log.slice(-2), [
    'ERROR: interrupted by signal',
    'TASK ERROR: received interrupt',
  ]);
  assert.strictEqual(sim.guest(100).lock, null);
  delete sim.opts.vzdumpDurationMs;
});

check('vzdump: PBS volids, verification, protected, prune retention', async () => {
  const r = await tok('POST', '/nodes/pve3/vzdump', { params: { vmid: '102', storage: 'pbs', protected: 1 } });
  const st = await waitTask('pve3', r.json.data);
  assert.strictEqual(st.exitstatus, 'OK');
  const log = sim.tasks.find((t) => t.upid === r.json.data).log;
  assert.ok(log.some((l) => /^INFO: creating Proxmox Backup Server archive 'vm\/102\/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'$/.test(l)));
  assert.ok(!log.some((l) => l.includes('archive file size')));
  const c = await tok('GET', '/nodes/pve3/storage/pbs/content', { params: { content: 'backup' } });
  const it = c.json.data[0];
  assert.match(it.volid, /^pbs:backup\/vm\/102\//);
  assert.strictEqual(it.format, 'pbs-vm');
  assert.strictEqual(it.protected, 1);
  assert.strictEqual(it.verification.state, 'ok');
  // protected backups cannot be deleted
  const d = await tok('DELETE', `/nodes/pve3/storage/pbs/content/${encodeURIComponent(it.volid)}`);
  assert.match((await waitTask('pve3', d.json.data)).exitstatus, /^cannot remove protected archive/);
  // retention: keep-last=2 on nas for CT 103
  for (let i = 0; i < 3; i++) {
    sim.advanceClock(60000);
    const b = await tok('POST', '/nodes/pve1/vzdump', {
      params: { vmid: '103', storage: 'nas', 'prune-backups': 'keep-last=2', remove: 1 },
    });
    assert.strictEqual((await waitTask('pve1', b.json.data)).exitstatus, 'OK');
  }
  const left = sim.backups('nas').filter((v) => v.includes('-103-'));
  assert.strictEqual(left.length, 2, left.join(' '));
  const plog = sim.tasks.filter((t) => t.type === 'vzdump').pop().log;
  assert.ok(plog.includes('INFO: prune older backups with retention: keep-last=2'), plog.join('\n'));
});

check('restore: CT from a backup, corrupt archive fails, exists -> 500, storage without rootdir -> 400', async () => {
  const volid = sim.backups('local').find((v) => v.includes('-lxc-100-'));
  const exists = await tok('POST', '/nodes/pve1/lxc', { params: { vmid: 100, ostemplate: volid, restore: 1, storage: 'local-lvm' } });
  assert.strictEqual(exists.status, 500);
  assert.strictEqual(exists.reason, "CT 100 already exists on node 'pve1'");
  const noroot = await tok('POST', '/nodes/pve1/lxc', { params: { vmid: 200, ostemplate: volid, restore: 1 } });
  assert.strictEqual(noroot.status, 400);
  assert.strictEqual(noroot.json.errors.storage, "storage 'local' does not support container directories");
  const ok = await tok('POST', '/nodes/pve1/lxc', { params: { vmid: 200, ostemplate: volid, restore: 1, storage: 'local-lvm' } });
  assert.match(ok.json.data, /:vzrestore:200:/);
  assert.strictEqual((await waitTask('pve1', ok.json.data)).exitstatus, 'OK');
  assert.strictEqual(sim.guest(200).config.hostname, 'web');
  sim.faults.corruptArchive(103);
  const b = await tok('POST', '/nodes/pve1/vzdump', { params: { vmid: '103', storage: 'local', compress: 'zstd' } });
  await waitTask('pve1', b.json.data);
  const bad = sim.backups('local').find((v) => v.includes('-lxc-103-'));
  const r = await tok('POST', '/nodes/pve1/lxc', { params: { vmid: 201, ostemplate: bad, restore: 1, storage: 'local-lvm' } });
  assert.match((await waitTask('pve1', r.json.data)).exitstatus, /^unable to restore CT 201 - /);
  sim.faults.clear();
});

check('privilege-separated token: 403 on objects, silent filtering on lists', async () => {
  const saved = sim.token;
  const r = await call('GET', '/nodes/pve1/lxc', { headers: { Authorization: 'PVEAPIToken=root@pam!ro=ro-secret' } });
  assert.deepStrictEqual(
    r.json.data.map((x) => x.vmid),
    [100],
  );
  const s = await call('POST', '/nodes/pve1/lxc/100/status/stop', { headers: { Authorization: 'PVEAPIToken=root@pam!ro=ro-secret' } });
  assert.strictEqual(s.status, 403);
  assert.strictEqual(s.reason, 'Permission check failed (/vms/100, VM.PowerMgmt)');
  assert.strictEqual(sim.token, saved);
});

check('fail/slow faults, legacy errors, standalone cluster status', async () => {
  sim.faults.fail(503, /GET \/version/);
  const a = await tok('GET', '/version');
  assert.strictEqual(a.status, 503);
  assert.strictEqual((await tok('GET', '/version')).status, 200);
  sim.faults.fail({ status: 500, message: 'boom' }, '/cluster/resources', 2);
  const b = await tok('GET', '/cluster/resources');
  assert.strictEqual(b.status, 500);
  assert.strictEqual(b.reason, 'boom');
  assert.strictEqual(b.json.message, 'boom\n');
  sim.faults.clear();
  sim.faults.slow(150, /\/version/);
  const t0 = Date.now();
  await tok('GET', '/version');
  assert.ok(Date.now() - t0 >= 140);
  sim.faults.clear();
  sim.opts.legacyErrors = true;
  const l = await tok('POST', '/nodes/pve1/lxc/100/status/start');
  assert.deepStrictEqual(l.json, { data: null });
  assert.strictEqual(l.reason, 'CT 100 already running');
  sim.opts.legacyErrors = false;
  const other = await startSimulator({ standalone: true, quiet: true });
  try {
    const cs = other.model.nodes.size;
    assert.strictEqual(cs, 1);
  } finally {
    await other.close();
  }
});

async function main() {
  agent = new https.Agent({ keepAlive: false });
  sim = await startSimulator({
    taskDurationMs: 50,
    tokens: [
      { id: 'root@pam!autopilot', secret: 'b2d3c0de-5a5e-4c1a-9d1e-000000000001', privsep: false },
      { id: 'root@pam!ro', secret: 'ro-secret', privsep: true, privs: { '/vms/100': ['VM.Audit'] } },
    ],
  });
  let failed = 0;
  try {
    for (const [name, fn] of checks) {
      try {
        await fn();
        console.log(`ok   - ${name}`);
      } catch (e) {
        failed++;
        console.log(`FAIL - ${name}\n       ${e.stack.split('\n').slice(0, 3).join('\n       ')}`);
      }
    }
    if (sim.violations.length) {
      failed++;
      console.log('FAIL - unexpected violations:', sim.violations);
    }
    if (sim.unimplemented.length) console.log('note: unimplemented calls:', sim.unimplemented);
  } finally {
    await sim.close();
  }
  console.log(failed ? `${failed} check(s) failed` : `all ${checks.length} checks passed (schema: ${sim.schemaNote})`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
