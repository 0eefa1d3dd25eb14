/**
 * dns probes: a name resolved (A or AAAA) with node:dns's Resolver, against `server` or the
 * servers of the system's resolv.conf, with a time-out of its own and cancel() on abort; the
 * answer must contain any of `expect` when given. `resolveHost` is shared with the external
 * probe.
 */
import { promises as dns } from 'node:dns';
import * as net from 'node:net';
import type { HealthCheck } from '../../health/checks';
import type { Probe } from '../types';
import { ProbeFailure, runProbe } from './run';

export type DnsCheck = Extract<HealthCheck, { type: 'dns' }>;

const WORDS: Record<string, string> = {
  ENOTFOUND: 'no such name (NXDOMAIN)',
  ENODATA: 'no record of that type',
  ETIMEOUT: 'the server did not answer',
  ECONNREFUSED: 'the server refused the query',
  ESERVFAIL: 'the server failed (SERVFAIL)',
  EREFUSED: 'the server refused the query (REFUSED)',
  ECANCELLED: 'cancelled',
};

/** A server as `server`/`resolver` give it (address, address:port, [v6]:port), in the form Resolver.setServers takes. */
export function dnsServer(raw: string): string {
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?$/.exec(raw);
  if (v6 && net.isIPv6(v6[1])) return v6[2] ? `[${v6[1]}]:${v6[2]}` : v6[1];
  if (net.isIP(raw)) return raw;
  const v4 = /^([0-9.]+):([0-9]{1,5})$/.exec(raw);
  if (v4 && net.isIPv4(v4[1]) && Number(v4[2]) >= 1 && Number(v4[2]) <= 65535) return raw;
  throw new ProbeFailure(`invalid DNS server ${JSON.stringify(raw)}: an address, address:port, or [IPv6]:port`);
}

/** A resolver against `server` (or the system's servers), cancelled when the signal aborts. */
function resolverFor(server: string | undefined, timeoutMs: number, signal: AbortSignal): { r: dns.Resolver; done: () => void } {
  const r = new dns.Resolver({ timeout: Math.max(1, Math.round(timeoutMs)), tries: 1 });
  if (server) r.setServers([dnsServer(server)]);
  const cancel = (): void => r.cancel();
  signal.addEventListener('abort', cancel, { once: true });
  return { r, done: () => signal.removeEventListener('abort', cancel) };
}

function dnsError(name: string, type: string, server: string | undefined, e: unknown): ProbeFailure {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const via = server ? ` (asked ${server})` : '';
  return new ProbeFailure(`${name} ${type}: ${WORDS[code] ?? (e as Error).message}${via}`);
}

/** An address in one canonical form ("::1" for "0:0::1"), so that expect compares equal. */
const canonical = (a: string): string => (net.isIPv6(a) ? new URL(`http://[${a}]/`).hostname.slice(1, -1) : a);

export function dnsProbe(c: DnsCheck): Probe {
  const type = c.record_type ?? 'A';
  const expect = c.expect === undefined ? [] : (Array.isArray(c.expect) ? c.expect : [c.expect]).map(canonical);
  return (env) =>
    runProbe(env, async (signal) => {
      const t0 = performance.now();
      const { r, done } = resolverFor(c.server, env.timeoutMs, signal);
      let got: string[];
      try {
        got = type === 'AAAA' ? await r.resolve6(c.query) : await r.resolve4(c.query);
      } catch (e) {
        throw dnsError(c.query, type, c.server, e);
      } finally {
        done();
      }
      const ms = Math.round(performance.now() - t0);
      const answer = `${c.query} ${type} ${got.join(', ')}${c.server ? ` (from ${c.server})` : ''} in ${ms} ms`;
      if (expect.length && !got.map(canonical).some((a) => expect.includes(a)))
        throw new ProbeFailure(`${answer}: expected ${expect.join(' or ')}`, ms);
      return { detail: answer, value: ms };
    });
}

/**
 * The address to connect to for a host: itself when it is an address, else its A records
 * (then AAAA when it has none), asked of `server` or the system's servers.
 */
export async function resolveHost(
  host: string,
  server: string | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ address: string; family: number }> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (net.isIP(bare)) return { address: bare, family: net.isIP(bare) };
  const { r, done } = resolverFor(server, timeoutMs, signal);
  try {
    try {
      const v4 = await r.resolve4(bare);
      if (v4.length) return { address: v4[0], family: 4 };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENODATA') throw dnsError(bare, 'A', server, e);
    }
    try {
      const v6 = await r.resolve6(bare);
      if (v6.length) return { address: v6[0], family: 6 };
    } catch (e) {
      throw dnsError(bare, 'AAAA', server, e);
    }
    throw new ProbeFailure(`${bare}: no address${server ? ` (asked ${server})` : ''}`);
  } finally {
    done();
  }
}
