/**
 * A service's public URL as the outside sees it, in stages, so that the alert says which one
 * broke: DNS (the name resolved by `resolver`, or the system's servers), then a connection to
 * that address with the URL's name for SNI, Host and the certificate check (TLS), then the
 * status and body. A certificate within warn_days of its end warns.
 */
import type { ExternalConfig } from '../../config/types';
import type { Probe } from '../types';
import { resolveHost } from './dns';
import { fetchOnce, statusProblem } from './http';
import { daysUntil, failureDetail, isoDay, ProbeFailure, runProbe } from './run';

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|EPROTO|ECONNRESET.*TLS/;

/** "TLS" for a handshake or certificate error, "connect" for the rest. */
export function stageOf(e: unknown): 'TLS' | 'connect' {
  const err = e as NodeJS.ErrnoException;
  return TLS_CODES.test(String(err?.code ?? '')) || /certificate|handshake|SSL/i.test(String(err?.message ?? '')) ? 'TLS' : 'connect';
}

export function externalProbe(ext: ExternalConfig): Probe {
  const url = new URL(ext.url);
  const https = url.protocol === 'https:';
  return (env) =>
    runProbe(env, async (signal) => {
      let addr: { address: string; family: number };
      try {
        addr = await resolveHost(url.hostname, ext.resolver, env.timeoutMs, signal);
      } catch (e) {
        throw new ProbeFailure(`DNS: ${failureDetail(e)}`);
      }
      const at = addr.address === url.hostname.replace(/^\[|\]$/g, '') ? '' : ` (${addr.address})`;
      let r;
      try {
        r = await fetchOnce(url, { signal, address: addr, body: ext.body_contains !== undefined });
      } catch (e) {
        throw new ProbeFailure(`${https ? stageOf(e) : 'connect'}: ${url.host}${at}: ${failureDetail(e)}`);
      }
      const days = https && r.validTo ? daysUntil(r.validTo, env.now()) : null;
      const bad = statusProblem(r.status, ext.expect_status);
      if (bad) throw new ProbeFailure(`status: ${bad} from ${url.host}${at}`, days);
      if (ext.body_contains !== undefined && !r.body.includes(ext.body_contains))
        throw new ProbeFailure(`status: ${r.status}, but the body does not contain ${JSON.stringify(ext.body_contains)}`, days);
      const cert = days === null || !r.validTo ? '' : `, certificate valid until ${isoDay(r.validTo)} (${days} days)`;
      const warning =
        days !== null && r.validTo && days <= (ext.warn_days ?? 14) ? `certificate expires in ${days} days (${isoDay(r.validTo)})` : null;
      return { detail: `status ${r.status} in ${r.ms} ms from ${url.host}${at}${cert}`, value: days, warning };
    });
}
