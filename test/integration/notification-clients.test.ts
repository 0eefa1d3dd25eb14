import type { AddressInfo } from 'node:net';
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

/** A real SMTP server on 127.0.0.1 (the smtp-server package, with its built-in self-signed certificate). */
async function smtp(options: Partial<SMTPServerOptions>): Promise<{ port: number; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    onAuth(auth, _session, cb) {
      if (auth.username === 'backup' && auth.password === 'smtp-pass-123') cb(null, { user: 'backup' });
      else cb(new Error('invalid username or password'));
    },
    onData(stream, session, cb) {
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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return { port, received, close: () => new Promise((r) => server.close(() => r())) };
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
      expect(ch).toMatchObject({ channel: 'mail', ok: false });
      expect(ch.error).toMatch(/Invalid login|invalid username or password/i);
      expect(server.received).toHaveLength(0);
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
});
