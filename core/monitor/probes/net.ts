/**
 * tcp (a connection, its time) and icmp (one echo request through iputils `ping`, run without
 * a shell, with the host validated again before it reaches the command line).
 */
import * as net from 'node:net';
import { execFile } from '../../../lib/exec';
import { AutopilotError } from '../../../lib/errors';
import type { HealthCheck } from '../../health/checks';
import type { Probe } from '../types';
import { ProbeFailure, runProbe } from './run';

export type TcpCheck = Extract<HealthCheck, { type: 'tcp' }>;
export type IcmpCheck = Extract<HealthCheck, { type: 'icmp' }>;

export function tcpProbe(c: TcpCheck): Probe {
  const host = c.host.replace(/^\[|\]$/g, '');
  return (env) =>
    runProbe(env, (signal) => {
      const t0 = performance.now();
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port: c.port });
        const onAbort = (): void => void sock.destroy(new Error('aborted'));
        signal.addEventListener('abort', onAbort, { once: true });
        const done = (e?: Error): void => {
          signal.removeEventListener('abort', onAbort);
          sock.destroy();
          const ms = Math.round(performance.now() - t0);
          if (e) reject(e);
          else resolve({ detail: `connected in ${ms} ms`, value: ms });
        };
        sock.once('connect', () => done());
        sock.once('error', (e) => done(e));
      });
    });
}

/** A host name or address that may reach ping's command line: never an option, nothing a shell would read. */
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?|[0-9A-Fa-f:.]+)$/;

export function icmpHost(raw: string): string {
  const host = raw.replace(/^\[|\]$/g, '');
  if (!HOST.test(host) || host.startsWith('-')) throw new ProbeFailure(`invalid host for ping: ${JSON.stringify(raw)}`);
  return host;
}

/** What ping's failure means, in words a user can act on. */
export function pingProblem(stderr: string, code: number | null): string {
  const text = stderr.trim().split('\n').filter(Boolean).slice(-2).join(' | ');
  if (/operation not permitted|permission denied|socket:|cap_net_raw/i.test(text))
    return `ping is not permitted here (${text}): give it the capability (setcap cap_net_raw+ep $(command -v ping)) or let our group open ICMP sockets (sysctl net.ipv4.ping_group_range)`;
  return text || `ping exited with ${code}`;
}

export function icmpProbe(c: IcmpCheck): Probe {
  return (env) =>
    runProbe(env, async (signal) => {
      const host = icmpHost(c.host);
      // ping's own wait for the reply, in whole seconds, within the probe's time limit
      const wait = String(Math.max(1, Math.floor(env.timeoutMs / 1000)));
      let r;
      try {
        r = await execFile('ping', ['-c', '1', '-n', '-W', wait, '--', host], { signal, timeoutMs: env.timeoutMs + 1000 });
      } catch (e) {
        if (e instanceof AutopilotError && e.code === 'EXEC_FAILED' && (e.cause as NodeJS.ErrnoException)?.code === 'ENOENT')
          throw new ProbeFailure('ping is not installed: install iputils-ping');
        throw e;
      }
      const rtt = /time[=<]([0-9.]+) ?ms/.exec(r.stdout);
      if (r.code === 0 && rtt) return { detail: `reply from ${host} in ${rtt[1]} ms`, value: Number(rtt[1]) };
      if (r.code === 1) {
        const icmpError = /^From .*$/m.exec(r.stdout);
        throw new ProbeFailure(`no reply from ${host}${icmpError ? `: ${icmpError[0].replace(/ icmp_seq=\d+/, '')}` : ` within ${wait}s`}`);
      }
      throw new ProbeFailure(pingProblem(r.stderr, r.code));
    });
}
