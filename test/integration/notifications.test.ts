import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
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
    expect(msg).toMatchObject({
      event: 'backup_failed',
      severity: 'critical',
      subject: 'backup --all',
      title: expect.stringMatching(/^Backup: 1 of 3 services FAILED on /),
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
});
