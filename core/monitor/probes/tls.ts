/**
 * Certificate expiry: a TLS handshake with host:port (or the url's), the server's certificate
 * read whether it is trusted or not, then judged: expired or not trusted (unless `insecure`)
 * fails; within `warn_days` of its end it warns. value = days left.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { HealthCheck } from '../../health/checks';
import type { Probe } from '../types';
import { caLoader } from './http';
import { daysUntil, isoDay, type Outcome, ProbeFailure, runProbe } from './run';

export type TlsCheck = Extract<HealthCheck, { type: 'tls' }>;

export interface PeerCertificate {
  validTo: Date;
  validFrom: Date;
  subject: string;
  issuer: string;
  /** null when the chain and the name were verified */
  authError: string | null;
}

/** Where a tls check connects: host and port, from `host`/`port` or the url (default port 443). */
export function tlsTarget(c: TlsCheck): { host: string; port: number } {
  if (c.host) return { host: c.host.replace(/^\[|\]$/g, ''), port: c.port ?? 443 };
  const u = new URL(c.url as string);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: c.port ?? (u.port ? Number(u.port) : 443) };
}

/** A handshake that keeps the certificate even when it is not trusted; rejects on network errors and when the signal aborts. */
export function peerCertificate(host: string, port: number, o: { ca?: Buffer; signal: AbortSignal }): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host,
      port,
      servername: net.isIP(host) ? undefined : host,
      rejectUnauthorized: false,
      ca: o.ca,
      ALPNProtocols: ['http/1.1'],
    });
    const onAbort = (): void => void sock.destroy(new Error('aborted'));
    o.signal.addEventListener('abort', onAbort, { once: true });
    const done = (fn: () => void): void => {
      o.signal.removeEventListener('abort', onAbort);
      sock.destroy();
      fn();
    };
    sock.once('secureConnect', () => {
      const cert = sock.getPeerCertificate();
      if (!cert || !cert.valid_to) return done(() => reject(new ProbeFailure('the server sent no certificate')));
      const name = (x: tls.Certificate | undefined): string => (x?.CN ? `CN=${String(x.CN)}` : x?.O ? `O=${String(x.O)}` : '?');
      const authError = sock.authorized ? null : String(sock.authorizationError ?? 'not trusted');
      done(() =>
        resolve({
          validTo: new Date(cert.valid_to),
          validFrom: new Date(cert.valid_from),
          subject: name(cert.subject),
          issuer: name(cert.issuer),
          authError,
        }),
      );
    });
    sock.once('error', (e: Error) => done(() => reject(e)));
  });
}

/** The judgement of a certificate shared by the tls and the external probes. */
export function judgeCertificate(cert: PeerCertificate, now: Date, warnDays: number, insecure: boolean): Outcome {
  const days = daysUntil(cert.validTo, now);
  if (days < 0) return { ok: false, detail: `certificate expired on ${isoDay(cert.validTo)} (${-days} days ago)`, value: days };
  if (cert.validFrom > now) return { ok: false, detail: `certificate not valid before ${isoDay(cert.validFrom)}`, value: days };
  if (cert.authError && !insecure)
    return { ok: false, detail: `certificate not trusted: ${cert.authError} (issued by ${cert.issuer})`, value: days };
  const detail = `certificate valid until ${isoDay(cert.validTo)} (${days} days)${cert.authError ? `, not verified: ${cert.authError}` : ''}`;
  return { detail, value: days, warning: days <= warnDays ? `certificate expires in ${days} days (${isoDay(cert.validTo)})` : null };
}

export function tlsProbe(c: TlsCheck): Probe {
  const { host, port } = tlsTarget(c);
  const ca = caLoader(c.ca_file);
  return (env) =>
    runProbe(env, async (signal) => {
      const cert = await peerCertificate(host, port, { ca: ca(), signal });
      return judgeCertificate(cert, env.now(), c.warn_days ?? 14, c.insecure === true);
    });
}
