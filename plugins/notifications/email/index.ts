/**
 * Built-in notification plugin `email`: SMTP through nodemailer, with STARTTLS or implicit
 * TLS, authentication, several recipients, a plain-text and an HTML part.
 */
import { SEVERITY_COLOR, type NotificationMessage, type NotificationPluginDefinition } from '../../../core/plugins/contract';

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/**
 * The subject tags the severity once: "[FAILED] Backup of nextcloud on pve1", not "[FAILED] Backup
 * of nextcloud FAILED" (the status word leaves the title when the tag says it), and names the host.
 */
export function emailSubject(m: NotificationMessage): string {
  const word = m.severity === 'critical' ? 'FAILED' : m.severity === 'warning' ? 'WARNING' : '';
  let title = m.title.replace(/[\r\n]+/g, ' ');
  if (word) title = title.replace(new RegExp(` ${word}(?=$| on | \\(|:)`), '');
  const host = typeof m.details?.host === 'string' ? m.details.host : '';
  // before a ": act now", at the end otherwise
  const colon = title.indexOf(':');
  if (host && !title.includes(host)) title = colon > 0 ? `${title.slice(0, colon)} on ${host}${title.slice(colon)}` : `${title} on ${host}`;
  return `${word ? `[${word}] ` : ''}${title}`;
}

export function emailBodies(m: NotificationMessage): { subject: string; text: string; html: string } {
  const text = `${m.title}\n\n${m.text}\n\n-- \nevent: ${m.event}\nsubject: ${m.subject}\ntime: ${m.time}\nhomelab-autopilot`;
  const html = `<!doctype html><html><body style="font-family:sans-serif">
<h2 style="color:${SEVERITY_COLOR[m.severity] ?? '#333'};margin:0 0 12px">${escapeHtml(m.title)}</h2>
<pre style="white-space:pre-wrap;font-size:14px">${escapeHtml(m.text)}</pre>
<p style="color:#666;font-size:12px">event <b>${escapeHtml(m.event)}</b> · subject <b>${escapeHtml(m.subject)}</b> · ${escapeHtml(m.time)} · homelab-autopilot</p>
</body></html>`;
  return { subject: emailSubject(m), text, html };
}

type SmtpError = Error & { code?: string; responseCode?: number; response?: string };

/**
 * nodemailer's errors as the engine reads them: an SMTP 5xx (535: wrong password), a TLS or
 * certificate failure and a refused envelope are permanent; a 4xx and network trouble are not.
 */
function smtpError(e: unknown): Error {
  const err = (e ?? {}) as SmtpError;
  const code = typeof err.responseCode === 'number' ? err.responseCode : undefined;
  const tls = err.code === 'ETLS' || /certificate|CERT_|SSL routines|wrong version number|self[- ]signed/i.test(err.message ?? '');
  const permanent = (code !== undefined && code >= 500) || (code === undefined && (tls || err.code === 'EENVELOPE'));
  return Object.assign(new Error(err.message || String(e)), { status: code, permanent, code: err.code });
}

const plugin: NotificationPluginDefinition = {
  name: 'email',
  kind: 'notification',
  version: '1.0.0',
  apiVersion: '^1.1.0',
  description: 'Sends e-mail over SMTP (STARTTLS or implicit TLS, authentication)',
  channelSchema: {
    properties: {
      host: { type: 'string', minLength: 1, description: 'the SMTP server' },
      port: { type: 'integer', minimum: 1, maximum: 65535, description: 'default 465 with tls: implicit, else 587' },
      tls: {
        enum: ['starttls', 'implicit', 'opportunistic', 'none'],
        default: 'starttls',
        description:
          'starttls: required; implicit: TLS from the first byte (port 465); opportunistic: STARTTLS when offered; none: plain text',
      },
      ca_file: { type: 'string', 'x-path': true, description: 'a CA certificate (PEM) to trust, for a server with a private CA' },
      tls_reject_unauthorized: {
        type: 'boolean',
        default: true,
        description: 'false accepts any certificate (a self-signed one): warned about',
      },
      username: { type: 'string', minLength: 1 },
      password: { type: 'string', 'x-secret': true },
      from: { type: 'string', minLength: 3 },
      to: { type: 'array', minItems: 1, items: { type: 'string', minLength: 3 } },
    },
    required: ['host', 'from', 'to'],
  },
  create(ctx) {
    return {
      async send(message, channel, op) {
        // loaded when mail is sent, not at start-up
        const nodemailer = await import('nodemailer');
        const fs = await import('node:fs/promises');
        const mode = typeof channel.tls === 'string' ? channel.tls : 'starttls';
        const left = (cap: number): number => Math.max(100, Math.min(cap, (op.deadline ?? Date.now() + cap) - Date.now()));
        if (channel.tls_reject_unauthorized === false)
          op.logger.warn(`channel ${String(channel.name)}: the SMTP server's certificate is not checked (tls_reject_unauthorized: false)`);
        const transport = nodemailer.createTransport({
          host: String(channel.host),
          port: typeof channel.port === 'number' ? channel.port : mode === 'implicit' ? 465 : 587,
          secure: mode === 'implicit',
          requireTLS: mode === 'starttls',
          ignoreTLS: mode === 'none',
          auth:
            typeof channel.username === 'string' && channel.username
              ? { user: channel.username, pass: typeof channel.password === 'string' ? channel.password : '' }
              : undefined,
          tls: {
            rejectUnauthorized: channel.tls_reject_unauthorized !== false,
            ca: typeof channel.ca_file === 'string' ? await fs.readFile(channel.ca_file, 'utf8') : undefined,
          },
          // within the channel's budget: a late send must not arrive after we gave up (or retried)
          connectionTimeout: left(10_000),
          greetingTimeout: left(10_000),
          socketTimeout: left(20_000),
        });
        const stop = (): void => transport.close();
        op.signal.addEventListener('abort', stop, { once: true });
        try {
          const { subject, text, html } = emailBodies(message);
          await transport.sendMail({ from: String(channel.from), to: (channel.to as string[]).join(', '), subject, text, html });
        } catch (e) {
          throw smtpError(e);
        } finally {
          op.signal.removeEventListener('abort', stop);
          transport.close();
        }
        ctx.logger.debug(`mail sent to ${(channel.to as string[]).length} recipient(s)`);
      },
    };
  },
};

export default plugin;
