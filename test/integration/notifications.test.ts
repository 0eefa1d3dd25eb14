import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { basicConfig, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';
import { Recorder } from '../helpers/recorder';

let rec: Recorder;
beforeEach(async () => {
  rec = await new Recorder().start();
});
afterEach(async () => rec.stop());
afterAll(cleanupTmp);

function config(dir: string, channels: string, services: string, extra = ''): string {
  return write(path.join(dir, 'ha.yaml'), basicConfig(dir, { services }) + `notifications:\n${extra}  channels:\n${channels}`);
}

describe('notification channels, against a recording server on 127.0.0.1', () => {
  it('notify test reaches webhook (HMAC-signed), ntfy, gotify and command channels', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'secrets/hmac'), 'a-long-hmac-secret\n', 0o600);
    const hook = write(
      path.join(dir, 'hook.sh'),
      `#!/bin/sh\n{ echo "$HA_EVENT|$HA_SEVERITY|$HA_TITLE"; cat; } > ${dir}/command.out\n`,
      0o755,
    );
    const cfg = config(
      dir,
      [
        `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      hmac_secret_file: ./secrets/hmac`,
        `    - name: phone\n      type: ntfy\n      server: ${rec.url}\n      topic: homelab\n      token: tk_secret_token`,
        `    - name: gotify\n      type: gotify\n      url: ${rec.url}/gotify\n      token: AppToken123`,
        `    - name: script\n      type: command\n      command: [${hook}]`,
      ].join('\n'),
      '  - name: h\n    type: files\n    paths: [/etc/hostname]',
    );
    const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(json(r).map((c: { channel: string; ok: boolean }) => [c.channel, c.ok])).toEqual([
      ['hook', true],
      ['phone', true],
      ['gotify', true],
      ['script', true],
    ]);
    const [h] = rec.to('/hook');
    const body = JSON.parse(h.body);
    expect(body).toMatchObject({ event: 'test', severity: 'info', title: expect.stringContaining('Test message from homelab-autopilot') });
    expect(h.headers['x-homelab-autopilot-signature']).toBe(
      `sha256=${createHmac('sha256', 'a-long-hmac-secret').update(h.body).digest('hex')}`,
    );
    const [n] = rec.to('/homelab');
    expect(n.headers).toMatchObject({
      title: expect.stringContaining('Test message'),
      priority: '3',
      authorization: 'Bearer tk_secret_token',
    });
    const [g] = rec.to('/gotify/message');
    expect(g.headers['x-gotify-key']).toBe('AppToken123');
    expect(JSON.parse(g.body)).toMatchObject({ title: expect.stringContaining('Test message'), priority: 2 });
    const out = fs.readFileSync(path.join(dir, 'command.out'), 'utf8').split('\n');
    expect(out[0]).toMatch(/^test\|info\|Test message from homelab-autopilot/);
    expect(JSON.parse(out.slice(1).join('\n'))).toMatchObject({ event: 'test' });
    expect(r.stderr + r.stdout).not.toContain('tk_secret_token');
  });

  it('a failure is sent once, held back on the next cron run, and its recovery always goes through', async () => {
    const dir = tmpDir();
    const cfg = config(
      dir,
      `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook`,
      `  - name: web\n    type: files\n    paths: [${dir}/web]`,
    );
    const first = await runCli(['backup', 'web', '--config', cfg]);
    expect(first.code).toBe(1);
    expect(rec.to('/hook')).toHaveLength(1);
    expect(JSON.parse(rec.to('/hook')[0].body)).toMatchObject({
      event: 'backup_failed',
      severity: 'critical',
      subject: 'web',
      title: 'Backup of web FAILED',
    });

    const second = await runCli(['backup', 'web', '--config', cfg]); // another process: the state remembers
    expect(second.code).toBe(1);
    expect(rec.to('/hook')).toHaveLength(1);

    write(path.join(dir, 'web/index.html'), '<h1>hi</h1>');
    const fixed = await runCli(['backup', 'web', '--config', cfg]);
    expect(fixed.code).toBe(0);
    // the channel only asks for warnings and worse, but a recovery goes where the failure went
    expect(rec.to('/hook')).toHaveLength(2);
    expect(JSON.parse(rec.to('/hook')[1].body)).toMatchObject({ event: 'backup_success', subject: 'web' });

    await runCli(['backup', 'web', '--config', cfg]); // another success, within the cooldown: held back
    expect(rec.to('/hook')).toHaveLength(2);

    const list = json(await runCli(['notifications', 'list', '--json', '--config', cfg]));
    expect(list.map((n: { event: string; status: string }) => [n.event, n.status])).toEqual([
      ['backup_success', 'suppressed'],
      ['backup_success', 'sent'],
      ['backup_failed', 'suppressed'],
      ['backup_failed', 'sent'],
    ]);
  });

  // the decisions themselves, at their boundaries, are unit-tested with a fake clock (test/unit/notify-engine.test.ts)
  it('a failure that persists is sent again after repeat_interval; a failure nobody received is sent again on the next run', async () => {
    const dir = tmpDir();
    rec.answer('/hook', { status: 500 });
    const cfg = config(
      dir,
      `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      timeout: 1`,
      `  - name: web\n    type: files\n    paths: [${dir}/web]`,
      '  repeat_interval: 600\n',
    );
    expect((await runCli(['backup', 'web', '--config', cfg])).code).toBe(1); // delivery fails (500 until the budget ends)
    const failedTries = rec.to('/hook').length;
    expect(failedTries).toBeGreaterThanOrEqual(1);
    rec.answer('/hook', { status: 200 });
    await runCli(['backup', 'web', '--config', cfg]); // nobody got it: sent again, and this time it arrives
    expect(rec.to('/hook')).toHaveLength(failedTries + 1);
    await runCli(['backup', 'web', '--config', cfg]); // within repeat_interval: held back
    expect(rec.to('/hook')).toHaveLength(failedTries + 1);
    await runCli(['backup', 'web', '--config', cfg], { clockOffsetMs: 600_000 }); // a run ten minutes later: sent again
    expect(rec.to('/hook')).toHaveLength(failedTries + 2);
  });

  it('templates override the title and text; notify test --channel tries one channel', async () => {
    const dir = tmpDir();
    const cfg = config(
      dir,
      `    - name: a\n      type: webhook\n      url: ${rec.url}/a\n      title_template: "[{{host}}] {{severity}}: {{title}}"\n      text_template: "{{event}} about {{subject}}"\n    - name: b\n      type: webhook\n      url: ${rec.url}/b`,
      '  - name: h\n    type: files\n    paths: [/etc/hostname]',
    );
    const r = await runCli(['notify', 'test', '--channel', 'a', '--json', '--config', cfg]);
    expect(json(r).map((c: { channel: string }) => c.channel)).toEqual(['a']);
    expect(rec.to('/b')).toHaveLength(0);
    const msg = JSON.parse(rec.to('/a')[0].body);
    expect(msg.title).toMatch(/^\[.+\] info: Test message from homelab-autopilot/);
    expect(msg.text).toMatch(/^test about /);
    const bad = await runCli(['notify', 'test', '--channel', 'nope', '--config', cfg]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("no notification channel named 'nope'");
  });

  it('backup --all sends one digest per channel instead of one message per service', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'a/f'), 'a');
    const cfg = config(
      dir,
      `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      events: [backup_failed, backup_success]`,
      `  - name: alpha\n    type: files\n    paths: [./a]\n  - name: broken\n    type: files\n    paths: [./missing]\n  - name: gamma\n    type: files\n    paths: [./a]`,
    );
    const r = await runCli(['backup', '--all', '--json', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(rec.to('/hook')).toHaveLength(1);
    const msg = JSON.parse(rec.to('/hook')[0].body);
    // the title names the failed service
    expect(msg).toMatchObject({
      event: 'backup_failed',
      severity: 'critical',
      subject: 'backup --all',
      title: expect.stringMatching(/^Backup of broken FAILED on \S+ \(1 of 3 services\)$/),
    });
    expect(msg.text).toContain('Backup of broken FAILED');
    expect(msg.text).toContain('Backup of alpha succeeded');
    expect(msg.details.items).toHaveLength(3);
    expect(json(r).notifications[0]).toMatchObject({ decision: 'sent', channels: [{ channel: 'hook', ok: true, attempts: 1 }] });
  });

  it('a channel that does not answer never delays the others, nor the job result', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'a/f'), 'a');
    rec.answer('/slow', { delayMs: 20_000 });
    const cfg = config(
      dir,
      `    - name: slow\n      type: webhook\n      url: ${rec.url}/slow\n      timeout: 2\n      events: [backup_success]\n    - name: fast\n      type: webhook\n      url: ${rec.url}/fast\n      events: [backup_success]`,
      '  - name: alpha\n    type: files\n    paths: [./a]',
    );
    const r = await runCli(['backup', 'alpha', '--json', '--config', cfg]);
    expect(r.code).toBe(0); // the job succeeded; a channel failing does not change that
    const [slow] = rec.to('/slow');
    const [fast] = rec.to('/fast');
    // the run ended without the answer the slow channel would have given after 20s: it gave up on it (closed the request) instead
    expect(slow.answeredAt).toBeUndefined();
    expect(slow.closedAt).toBeDefined();
    // and the fast channel was answered while the slow one was still being waited for
    expect(fast.answeredAt).toBeLessThan(slow.closedAt as number);
    const channels = json(r).notifications[0].channels;
    expect(channels.find((c: { channel: string }) => c.channel === 'fast')).toMatchObject({ ok: true });
    expect(channels.find((c: { channel: string }) => c.channel === 'slow')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/no answer within 2s/),
    });
    expect(r.stderr).toMatch(/could not be sent to slow/);
  });

  it('a 429 answer is retried after the Retry-After it names', async () => {
    const dir = tmpDir();
    rec.answer('/hook', { status: 429, headers: { 'retry-after': '2' }, body: '{"error":"rate limited"}' }, { status: 200 });
    const cfg = config(
      dir,
      `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook`,
      '  - name: h\n    type: files\n    paths: [/etc/hostname]',
    );
    const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(json(r)[0]).toMatchObject({ channel: 'hook', ok: true, attempts: 2 });
    const [a, b] = rec.to('/hook');
    expect(b.at - a.at).toBeGreaterThanOrEqual(1900);
  });

  it('a channel that keeps failing is reported, and notify test exits 1', async () => {
    const dir = tmpDir();
    rec.answer('/hook', { status: 500, body: 'boom' });
    const cfg = config(
      dir,
      `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      timeout: 3`,
      '  - name: h\n    type: files\n    paths: [/etc/hostname]',
    );
    const r = await runCli(['notify', 'test', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^hook\s+webhook\s+FAILED\s+\d+\s+\S+\s+127\.0\.0\.1:\d+ answered 500 Internal Server Error: boom \(after \d+ attempts\)$/m,
    );
    expect(rec.to('/hook').length).toBeGreaterThanOrEqual(2);
  });

  it('config validate names a channel whose plugin is not installed', async () => {
    const dir = tmpDir();
    const cfg = config(dir, '    - name: pager\n      type: pagerduty', '  - name: h\n    type: files\n    paths: [/etc/hostname]');
    const r = await runCli(['config', 'validate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /ha\.yaml:\d+:\d+: notifications\.channels\.pager\.type: no notification plugin named 'pagerduty' is installed \(installed: command, discord, email, gotify, ntfy, slack, webhook\)/,
    );
  });

  it('a failure that comes back after its recovery goes out once the cooldown is over, not a repeat_interval later', async () => {
    const dir = tmpDir();
    const cfg = config(
      dir,
      `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook`,
      `  - name: web\n    type: files\n    paths: [${dir}/web]`,
      '  cooldown: 3600\n  repeat_interval: 86400\n',
    );
    const at = (minutes: number) => ({ clockOffsetMs: minutes * 60_000 });
    await runCli(['backup', 'web', '--config', cfg], at(0)); // 10:00 fails: sent
    write(path.join(dir, 'web/index.html'), 'hi');
    await runCli(['backup', 'web', '--config', cfg], at(30)); // 10:30 recovers: sent
    fs.rmSync(path.join(dir, 'web'), { recursive: true });
    await runCli(['backup', 'web', '--config', cfg], at(45)); // 10:45 fails again: within the cooldown
    expect(rec.to('/hook').map((r) => JSON.parse(r.body).event)).toEqual(['backup_failed', 'backup_success']);
    await runCli(['backup', 'web', '--config', cfg], at(61)); // 11:01: a new incident, past the cooldown
    expect(rec.to('/hook').map((r) => JSON.parse(r.body).event)).toEqual(['backup_failed', 'backup_success', 'backup_failed']);
  });

  it('budgets hold within 1 s with several hung channels at once, under forced garbage collections', async () => {
    const dir = tmpDir();
    rec.answer('/hook', { delayMs: 40_000 });
    rec.answer('/phone', { delayMs: 40_000 });
    rec.answer('/gotify/message', { delayMs: 40_000 });
    // an SMTP server that accepts the connection and never says a word
    const sockets: net.Socket[] = [];
    const smtp = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    const smtpPort = (smtp.address() as net.AddressInfo).port;
    try {
      const cfg = config(
        dir,
        [
          `    - name: hook\n      type: webhook\n      url: ${rec.url}/hook\n      timeout: 2`,
          `    - name: phone\n      type: ntfy\n      server: ${rec.url}\n      topic: phone\n      timeout: 2`,
          `    - name: gotify\n      type: gotify\n      url: ${rec.url}/gotify\n      token: AppToken123\n      timeout: 2`,
          `    - name: mail\n      type: email\n      host: 127.0.0.1\n      port: ${smtpPort}\n      tls: none\n      from: a@homelab.lan\n      to: [b@homelab.lan]\n      timeout: 2`,
        ].join('\n'),
        '  - name: h\n    type: files\n    paths: [/etc/hostname]',
      );
      const gc = path.join(__dirname, '..', 'helpers', 'gc-pressure.js');
      const t0 = Date.now();
      const r = await runCli(['notify', 'test', '--json', '--config', cfg], {
        env: { NODE_OPTIONS: `--expose-gc --require ${gc}` },
        timeoutMs: 50_000,
      });
      const wall = Date.now() - t0;
      expect(r.code).toBe(1);
      const results = json<{ channel: string; ok: boolean; durationMs: number; error: string }[]>(r);
      expect(results.map((c) => [c.channel, c.ok])).toEqual([
        ['hook', false],
        ['phone', false],
        ['gotify', false],
        ['mail', false],
      ]);
      for (const c of results) {
        expect(c.durationMs).toBeLessThan(3000);
        expect(c.error).toMatch(/no answer within 2s/);
      }
      // the hung requests were given up (closed) by us within the budget, not answered 40 s later
      for (const p of ['/hook', '/phone', '/gotify/message']) {
        const [req] = rec.to(p);
        expect(req.answeredAt).toBeUndefined();
        expect((req.closedAt as number) - req.at).toBeLessThan(3000);
      }
      // the whole command: start-up, a 2 s budget, the end
      expect(wall).toBeLessThan(10_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => smtp.close(r));
    }
  });

  it('permanent errors fail at once (400, 401, 404, a malformed URL); a 503 is tried again', async () => {
    const dir = tmpDir();
    rec.answer('/bad', { status: 400, body: 'bad request' });
    rec.answer('/unauthorized', { status: 401, body: 'who are you' });
    rec.answer('/gone', { status: 404, body: 'no such hook' });
    rec.answer('/busy', { status: 503 }, { status: 200 });
    const channel = (name: string, url: string): string => `    - name: ${name}\n      type: webhook\n      url: ${url}\n      timeout: 10`;
    const cfg = config(
      dir,
      [
        channel('bad', `${rec.url}/bad`),
        channel('unauthorized', `${rec.url}/unauthorized`),
        channel('gone', `${rec.url}/gone`),
        channel('malformed', '"http://[::1/hook"'),
        channel('busy', `${rec.url}/busy`),
      ].join('\n'),
      '  - name: h\n    type: files\n    paths: [/etc/hostname]',
    );
    const t0 = Date.now();
    const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
    const results = json<{ channel: string; ok: boolean; attempts: number; error?: string }[]>(r);
    expect(results.map((c) => [c.channel, c.ok, c.attempts])).toEqual([
      ['bad', false, 1],
      ['unauthorized', false, 1],
      ['gone', false, 1],
      ['malformed', false, 1],
      ['busy', true, 2],
    ]);
    expect(results[1].error).toMatch(/answered 401 Unauthorized: who are you$/);
    expect(rec.to('/bad')).toHaveLength(1);
    expect(rec.to('/unauthorized')).toHaveLength(1);
    expect(rec.to('/gone')).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(9000); // nobody waited for a budget of 10 s
  });

  it('a webhook token a receiver echoes in its error is masked in the log, --json, state and notifications list', async () => {
    const dir = tmpDir();
    const token = 'Zq7TokenOfTheHook0042';
    rec.answer(`/hooks/${token}`, { status: 404, body: `{"error":"unknown hook ${token}"}` });
    write(path.join(dir, 'hook-url'), `${rec.url}/hooks/${token}?channel=ops\n`, 0o600);
    const cfg = config(
      dir,
      '    - name: hook\n      type: webhook\n      url_file: ./hook-url',
      `  - name: web\n    type: files\n    paths: [${dir}/web]`,
    );
    const r = await runCli(['backup', 'web', '--json', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(rec.to(`/hooks/${token}`)).toHaveLength(1);
    const channel = json(r).notifications[0].channels[0];
    expect(channel).toMatchObject({ ok: false, error: expect.stringContaining('unknown hook ********') });
    const list = await runCli(['notifications', 'list', '--json', '--config', cfg]);
    expect(json(list)[0]).toMatchObject({ status: 'failed', error: expect.stringContaining('unknown hook ********') });
    const log = fs.readFileSync(path.join(dir, 'logs/homelab-autopilot.log'), 'utf8');
    expect(log).toContain('unknown hook ********');
    const db = fs
      .readdirSync(path.join(dir, 'state'))
      .map((f) => fs.readFileSync(path.join(dir, 'state', f)).toString('latin1'))
      .join('');
    for (const text of [r.stdout, r.stderr, list.stdout, list.stderr, log, db]) expect(text).not.toContain(token);
  });
});
