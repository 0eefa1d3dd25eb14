import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { basicConfig, cleanupTmp, json, runCli, tmpDir, write } from '../helpers/cli';
import { Recorder } from '../helpers/recorder';

afterAll(cleanupTmp);

interface Received {
  mail: ParsedMail;
  from: string;
  to: string[];
  secure: boolean;
  user?: string;
}

/**
 * A real SMTP server on 127.0.0.1 (the smtp-server package, with its built-in self-signed
 * certificate); `tempFailures` messages are answered 451 (try again later) before it accepts.
 */
async function smtp(
  options: Partial<SMTPServerOptions>,
  tempFailures = 0,
): Promise<{ port: number; received: Received[]; auths: number; messages: number; close(): Promise<void> }> {
  const received: Received[] = [];
  const counts = { auths: 0, messages: 0 };
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    onAuth(auth, _session, cb) {
      counts.auths++;
      if (auth.username === 'backup' && auth.password === 'smtp-pass-123') cb(null, { user: 'backup' });
      else cb(new Error('invalid username or password'));
    },
    onData(stream, session, cb) {
      if (counts.messages++ < tempFailures) {
        stream.resume();
        stream.on('end', () => cb(Object.assign(new Error('mailbox busy, try again later'), { responseCode: 451 })));
        return;
      }
      simpleParser(stream)
        .then((mail) => {
          received.push({
            mail,
            from: (session.envelope.mailFrom as { address: string }).address,
            to: session.envelope.rcptTo.map((r) => r.address),
            secure: session.secure,
            user: session.user as string | undefined,
          });
          cb();
        })
        .catch(cb);
    },
    ...options,
  });
  // a client that refuses the certificate closes the connection: expected here, not an error of the test
  server.on('error', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    get auths() {
      return counts.auths;
    },
    get messages() {
      return counts.messages;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function configWith(dir: string, channel: string): string {
  return write(
    path.join(dir, 'ha.yaml'),
    basicConfig(dir, { services: '  - name: h\n    type: files\n    paths: [/etc/hostname]' }) + `notifications:\n  channels:\n${channel}`,
  );
}

describe('email through nodemailer to a real SMTP server', () => {
  it('STARTTLS with authentication, to several recipients, text and HTML parts', async () => {
    const server = await smtp({ authOptional: false });
    try {
      const dir = tmpDir();
      write(path.join(dir, 'smtp-pass'), 'smtp-pass-123\n', 0o600);
      const cfg = configWith(
        dir,
        `    - name: mail\n      type: email\n      host: 127.0.0.1\n      port: ${server.port}\n      tls: starttls\n      tls_reject_unauthorized: false\n      username: backup\n      password_file: ./smtp-pass\n      from: autopilot@homelab.lan\n      to: [admin@homelab.lan, oncall@homelab.lan]`,
      );
      const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
      expect(r.code).toBe(0);
      expect(json(r)[0]).toMatchObject({ channel: 'mail', ok: true });
      expect(server.received).toHaveLength(1);
      const got = server.received[0];
      expect(got).toMatchObject({
        from: 'autopilot@homelab.lan',
        to: ['admin@homelab.lan', 'oncall@homelab.lan'],
        secure: true,
        user: 'backup',
      });
      expect(got.mail.subject).toMatch(/^Test message from homelab-autopilot on /);
      expect(got.mail.text).toContain('If you can read this, this channel works.');
      expect(got.mail.html).toContain('<h2');
      expect(r.stderr + r.stdout).not.toContain('smtp-pass-123');
    } finally {
      await server.close();
    }
  });

  it('implicit TLS, and plain SMTP without authentication', async () => {
    const tls = await smtp({ secure: true });
    const plain = await smtp({ disabledCommands: ['STARTTLS', 'AUTH'] });
    try {
      const dir = tmpDir();
      const cfg = configWith(
        dir,
        [
          `    - name: tls\n      type: email\n      host: 127.0.0.1\n      port: ${tls.port}\n      tls: implicit\n      tls_reject_unauthorized: false\n      from: a@homelab.lan\n      to: [b@homelab.lan]`,
          `    - name: plain\n      type: email\n      host: 127.0.0.1\n      port: ${plain.port}\n      tls: none\n      from: a@homelab.lan\n      to: [c@homelab.lan]`,
        ].join('\n'),
      );
      const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
      expect(r.code).toBe(0);
      for (const [server, secure, to] of [
        [tls, true, 'b@homelab.lan'],
        [plain, false, 'c@homelab.lan'],
      ] as const) {
        expect(server.received[0]).toMatchObject({ secure, to: [to], from: 'a@homelab.lan' });
        expect(server.received[0].mail.subject).toMatch(/^Test message from homelab-autopilot on /);
        expect(server.received[0].mail.text).toContain('If you can read this, this channel works.');
      }
    } finally {
      await tls.close();
      await plain.close();
    }
  });

  it('a wrong password is a failed delivery, reported, not a failed job', async () => {
    const server = await smtp({ authOptional: false });
    try {
      const dir = tmpDir();
      const cfg = configWith(
        dir,
        `    - name: mail\n      type: email\n      host: 127.0.0.1\n      port: ${server.port}\n      tls_reject_unauthorized: false\n      username: backup\n      password: wrong-password\n      timeout: 3\n      events: [backup_success]\n      from: a@homelab.lan\n      to: [b@homelab.lan]`,
      );
      const r = await runCli(['backup', 'h', '--json', '--config', cfg]);
      expect(r.code).toBe(0);
      const ch = json(r).notifications[0].channels[0];
      // 535 cannot succeed later: tried once, not until the budget is gone
      expect(ch).toMatchObject({ channel: 'mail', ok: false, attempts: 1 });
      expect(ch.error).toMatch(/Invalid login|invalid username or password/i);
      expect(server.received).toHaveLength(0);
      expect(server.auths).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe('email: what is tried again, and the subject', () => {
  it('an SMTP 4xx is tried again and delivered; a certificate that does not verify fails at once', async () => {
    const busy = await smtp({ disabledCommands: ['STARTTLS', 'AUTH'] }, 1);
    const tls = await smtp({ secure: true });
    try {
      const dir = tmpDir();
      const cfg = configWith(
        dir,
        [
          `    - name: busy\n      type: email\n      host: 127.0.0.1\n      port: ${busy.port}\n      tls: none\n      timeout: 10\n      from: a@homelab.lan\n      to: [b@homelab.lan]`,
          `    - name: tls\n      type: email\n      host: 127.0.0.1\n      port: ${tls.port}\n      tls: implicit\n      timeout: 10\n      from: a@homelab.lan\n      to: [b@homelab.lan]`,
        ].join('\n'),
      );
      const t0 = Date.now();
      const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
      expect(json(r).map((c: { channel: string; ok: boolean; attempts: number }) => [c.channel, c.ok, c.attempts])).toEqual([
        ['busy', true, 2],
        ['tls', false, 1],
      ]);
      expect(json(r)[1].error).toMatch(/certificate/i);
      expect(busy.received).toHaveLength(1);
      expect(Date.now() - t0).toBeLessThan(9000);
    } finally {
      await busy.close();
      await tls.close();
    }
  });

  it('the subject names the failed service once; a recovery digest says recovered', async () => {
    const server = await smtp({ disabledCommands: ['STARTTLS', 'AUTH'] });
    try {
      const dir = tmpDir();
      write(path.join(dir, 'a/f'), 'a');
      const cfg = write(
        path.join(dir, 'ha.yaml'),
        basicConfig(dir, {
          services: `  - name: alpha\n    type: files\n    paths: [./a]\n  - name: nextcloud\n    type: files\n    paths: [./nc]`,
        }) +
          `notifications:\n  channels:\n    - name: mail\n      type: email\n      host: 127.0.0.1\n      port: ${server.port}\n      tls: none\n      from: a@homelab.lan\n      to: [b@homelab.lan]\n`,
      );
      const host = os.hostname();
      await runCli(['backup', 'nextcloud', '--config', cfg]);
      expect(server.received.map((m) => m.mail.subject)).toEqual([`[FAILED] Backup of nextcloud on ${host}`]);
      await runCli(['backup', '--all', '--config', cfg], { clockOffsetMs: 2 * 86_400_000 });
      expect(server.received[1].mail.subject).toBe(`[FAILED] Backup of nextcloud on ${host} (1 of 2 services)`);
      write(path.join(dir, 'nc/f'), 'nc');
      await runCli(['backup', '--all', '--config', cfg], { clockOffsetMs: 2 * 86_400_000 + 60_000 });
      expect(server.received[2].mail.subject).toBe(`Backup of nextcloud recovered on ${host} (2 services backed up)`);
      expect(server.received[2].mail.text).toContain('[recovered] Backup of nextcloud succeeded');
    } finally {
      await server.close();
    }
  });
});

describe('Slack and Discord through their real clients, pointed at a recording server', () => {
  let rec: Recorder;
  beforeEach(async () => {
    rec = await new Recorder().start();
  });
  afterEach(async () => rec.stop());

  it('Slack (@slack/webhook) gets blocks coloured by severity; Discord (discord.js WebhookClient) gets an embed', async () => {
    const dir = tmpDir();
    write(path.join(dir, 'slack-url'), `${rec.url}/services/T000/B000/XXXXSECRET\n`, 0o600);
    rec.answer('/services/T000/B000/XXXXSECRET', { status: 200, body: 'ok', headers: { 'content-type': 'text/plain' } });
    rec.answer('/api/v10/webhooks/123456789012345678/tokenSECRETxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', {
      status: 200,
      body: JSON.stringify({ id: '1', type: 0, content: '', channel_id: '2', embeds: [] }),
    });
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: `  - name: web\n    type: files\n    paths: [${dir}/missing]` }) +
        `notifications:\n  channels:\n    - name: slack\n      type: slack\n      webhook_url_file: ./slack-url\n    - name: discord\n      type: discord\n      webhook_url: https://discord.com/api/webhooks/123456789012345678/tokenSECRETxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n      api_url: ${rec.url}/api\n`,
    );
    const r = await runCli(['backup', 'web', '--json', '--config', cfg]);
    expect(r.code).toBe(1);
    const channels = json(r).notifications[0].channels;
    expect(channels.map((c: { channel: string; ok: boolean }) => [c.channel, c.ok])).toEqual([
      ['slack', true],
      ['discord', true],
    ]);
    const slack = JSON.parse(rec.to('/services/T000/B000/XXXXSECRET')[0].body);
    expect(slack.text).toContain('Backup of web FAILED');
    expect(slack.attachments[0].color).toBe('#dc2626');
    expect(slack.attachments[0].blocks[0]).toMatchObject({ type: 'header', text: { text: 'Backup of web FAILED' } });
    const discord = rec.to('/api/v10/webhooks/123456789012345678/tokenSECRETxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')[0];
    expect(discord.method).toBe('POST');
    const body = JSON.parse(discord.body);
    expect(body.embeds[0]).toMatchObject({
      title: 'Backup of web FAILED',
      color: 0xdc2626,
      fields: [
        { name: 'event', value: 'backup_failed' },
        { name: 'subject', value: 'web' },
      ],
    });
    expect(r.stderr + r.stdout).not.toContain('XXXXSECRET');
  });

  it('Slack honours a 429 Retry-After', async () => {
    const dir = tmpDir();
    rec.answer(
      '/services/T/B/X',
      { status: 429, headers: { 'retry-after': '1', 'content-type': 'text/plain' }, body: 'rate_limited' },
      { status: 200, body: 'ok', headers: { 'content-type': 'text/plain' } },
    );
    const cfg = configWith(dir, `    - name: slack\n      type: slack\n      webhook_url: ${rec.url}/services/T/B/X`);
    const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
    expect(json(r)[0]).toMatchObject({ channel: 'slack', ok: true, attempts: 2 });
    const [a, b] = rec.to('/services/T/B/X');
    expect(b.at - a.at).toBeGreaterThanOrEqual(900);
    expect(r.stderr + r.stdout).not.toContain('tokenSECRET');
  });

  const discordPath = (tokenChar: string) => `/api/v10/webhooks/123456789012345678/${tokenChar.repeat(68)}`;
  const discordUrl = (tokenChar: string) => `https://discord.com/api/webhooks/123456789012345678/${tokenChar.repeat(68)}`;
  const discordOk = { status: 200, body: JSON.stringify({ id: '1', type: 0, content: '', channel_id: '2', embeds: [] }) };
  const slackOk = { status: 200, body: 'ok', headers: { 'content-type': 'text/plain' } };
  const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

  it('markup in an error text reaches neither Slack nor Discord as markup: escaped, and no mentions', async () => {
    const dir = tmpDir();
    rec.answer('/services/T/B/X', slackOk);
    rec.answer(discordPath('a'), discordOk);
    const evil = '<!channel> <@U123> <https://x.example|click> & @everyone **bold** _it_';
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: `  - name: web\n    type: files\n    paths: ["${dir}/${evil}"]` }) +
        `notifications:\n  channels:\n    - name: slack\n      type: slack\n      webhook_url: ${rec.url}/services/T/B/X\n    - name: discord\n      type: discord\n      webhook_url: ${discordUrl('a')}\n      api_url: ${rec.url}/api\n`,
    );
    const r = await runCli(['backup', 'web', '--json', '--config', cfg]);
    expect(json(r).notifications[0].channels.map((c: { ok: boolean }) => c.ok)).toEqual([true, true]);
    const slackRaw = rec.to('/services/T/B/X')[0].body;
    const slack = JSON.parse(slackRaw);
    expect(slack.attachments[0].blocks[1].text.text).toContain(
      '&lt;!channel&gt; &lt;@U123&gt; &lt;https://x.example|click&gt; &amp; @everyone',
    );
    for (const markup of ['<!channel>', '<@U123>', '<https://x.example|click>']) expect(slackRaw).not.toContain(markup);
    const discord = JSON.parse(rec.to(discordPath('a'))[0].body);
    expect(discord.allowed_mentions).toEqual({ parse: [] });
    expect(discord.embeds[0].description).toContain('\\*\\*bold\\*\\* \\_it\\_');
  });

  it('Discord: after a 429 the retry waits retry_after; a rate limit that outlasts the budget says so', async () => {
    const dir = tmpDir();
    const limited = {
      status: 429,
      headers: { 'retry-after': '2', 'x-ratelimit-scope': 'user' },
      body: JSON.stringify({ message: 'You are being rate limited.', retry_after: 2, global: false }),
    };
    rec.answer(discordPath('b'), limited, discordOk);
    rec.answer(discordPath('c'), {
      ...limited,
      headers: { 'retry-after': '30' },
      body: JSON.stringify({ retry_after: 30, global: false }),
    });
    const cfg = configWith(
      dir,
      [
        `    - name: soon\n      type: discord\n      webhook_url: ${discordUrl('b')}\n      api_url: ${rec.url}/api\n      timeout: 10`,
        `    - name: later\n      type: discord\n      webhook_url: ${discordUrl('c')}\n      api_url: ${rec.url}/api\n      timeout: 5`,
      ].join('\n'),
    );
    const r = await runCli(['notify', 'test', '--json', '--config', cfg]);
    const [soon, later] = json(r);
    expect(soon).toMatchObject({ channel: 'soon', ok: true, attempts: 2 });
    const [a, b] = rec.to(discordPath('b'));
    expect(b.at - a.at).toBeGreaterThanOrEqual(1900);
    expect(later).toMatchObject({ channel: 'later', ok: false, attempts: 1 });
    expect(later.error).toMatch(/discord: rate limited on .*; retry after 30\.\d+s/);
    expect(rec.to(discordPath('c'))).toHaveLength(1);
  });

  it('one long error leaves room for every other failure: each channel within its limits, cut between code points', async () => {
    const dir = tmpDir();
    rec.answer('/services/T/B/X', slackOk);
    rec.answer(discordPath('d'), discordOk);
    rec.answer('/phone', { status: 200 });
    const emoji = '😀'.repeat(40);
    const longPaths = Array.from({ length: 60 }, (_, i) => `"./${emoji}-${i}"`).join(', ');
    const others = Array.from({ length: 120 }, (_, i) => `  - name: s${i + 1}\n    type: files\n    paths: [./missing]`).join('\n');
    const cfg = write(
      path.join(dir, 'ha.yaml'),
      basicConfig(dir, { services: `  - name: long\n    type: files\n    paths: [${longPaths}]\n${others}` }) +
        `notifications:\n  channels:\n    - name: slack\n      type: slack\n      webhook_url: ${rec.url}/services/T/B/X\n    - name: discord\n      type: discord\n      webhook_url: ${discordUrl('d')}\n      api_url: ${rec.url}/api\n    - name: phone\n      type: ntfy\n      server: ${rec.url}\n      topic: phone\n      title_template: "Störung ✗ {{title}}"\n`,
    );
    const r = await runCli(['backup', '--all', '--json', '--config', cfg], { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    const more = /\n\.\.\. and \d+ more$/;

    const slack = JSON.parse(rec.to('/services/T/B/X')[0].body).attachments[0].blocks;
    expect(slack[0].text.text.length).toBeLessThanOrEqual(150);
    const section: string = slack[1].text.text;
    expect(section.length).toBeLessThanOrEqual(3000);
    expect(section).toContain('Backup of s1 FAILED');
    expect(section).toMatch(more);
    expect(section).not.toMatch(loneSurrogate);

    const embed = JSON.parse(rec.to(discordPath('d'))[0].body).embeds[0];
    expect(embed.title.length).toBeLessThanOrEqual(256);
    expect(embed.description.length).toBeLessThanOrEqual(4096);
    expect(embed.description).toContain('Backup of s1 FAILED');
    expect(embed.description).toMatch(more);
    expect(embed.description).not.toMatch(loneSurrogate);

    const [ntfy] = rec.to('/phone');
    expect(Buffer.byteLength(ntfy.body)).toBeLessThanOrEqual(4096);
    expect(ntfy.body).toContain('Backup of s1 FAILED');
    expect(ntfy.body).toMatch(more);
    expect(ntfy.body).not.toContain('\uFFFD');
    // the non-ASCII title arrives RFC 2047-encoded, whole
    const title = String(ntfy.headers.title);
    expect(title).toMatch(/^(=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=\s?)+$/);
    const decoded = title.replace(/=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=\s?/g, (_m, b64: string) =>
      Buffer.from(b64, 'base64').toString('utf8'),
    );
    expect(decoded).toBe(`Störung ✗ Backup of long, s1, s2 and 118 more FAILED on ${os.hostname()} (121 of 121 services)`);
  });
});
