/**
 * Commands inside a guest (updates): `pct exec` for a container and `qm guest exec` (through the
 * QEMU guest agent) for a VM when the guest runs on this very node, else ssh to an address the
 * guest reported. A failure before the command reached the guest (the runner missing, ssh
 * unable to connect or log in) is reported with `changed: false`: nothing ran, so the update
 * engine rolls nothing back.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { ExecResult, OperationContext, PluginContext } from '../../../core/plugins/contract';
import type { GuestLocation, ProxmoxApi } from './api';

export interface GuestExecOptions {
  via: 'auto' | 'pct' | 'ssh';
  pct: string;
  qm: string;
  ssh: string;
  ssh_user: string;
  ssh_key?: string;
}

const HINT = 'nothing was changed; check how commands reach the guest (plugins.proxmox.guest_exec)';

/** An error that says the command never reached the guest. */
const notReached = (message: string, cause?: unknown): Error =>
  Object.assign(new Error(message, { cause }), { changed: false, hint: HINT });

// ssh's own failures (it exits 255): the connection, the host key, the login
const SSH_OWN_FAILURE = /^(Permission denied|ssh: |Host key verification failed|Connection (refused|timed out|closed))/m;

async function run(
  ctx: PluginContext,
  label: string,
  command: string,
  args: string[],
  o: { signal: AbortSignal; timeoutMs: number },
): Promise<ExecResult> {
  try {
    return await ctx.exec(command, args, o);
  } catch (e) {
    if (o.signal.aborted) throw e;
    throw notReached(`cannot run commands in ${label}: ${(e as Error).message}`, e);
  }
}

export async function execInGuest(
  ctx: PluginContext,
  api: ProxmoxApi,
  g: GuestExecOptions,
  guest: { vmid: number; label: string; loc: GuestLocation },
  argv: string[],
  op: OperationContext & { timeoutMs?: number },
): Promise<ExecResult> {
  const { vmid, label, loc } = guest;
  const local = loc.node === hostname().split('.')[0];
  const via = g.via === 'auto' ? (local ? 'pct' : 'ssh') : g.via;
  const timeoutMs = op.timeoutMs ?? 1800_000;
  if (via === 'pct') {
    if (loc.kind === 'lxc') return run(ctx, label, g.pct, ['exec', String(vmid), '--', ...argv], { signal: op.signal, timeoutMs });
    // qm guest exec: through the QEMU guest agent; it prints JSON with the exit code and output
    const args = ['guest', 'exec', String(vmid), '--timeout', String(Math.ceil(timeoutMs / 1000)), '--', ...argv];
    const r = await run(ctx, label, g.qm, args, { signal: op.signal, timeoutMs: timeoutMs + 10_000 });
    if (r.code !== 0) return r;
    try {
      const j = JSON.parse(r.stdout) as { exitcode?: number; 'out-data'?: string; 'err-data'?: string };
      return { code: j.exitcode ?? null, signal: null, stdout: j['out-data'] ?? '', stderr: j['err-data'] ?? '' };
    } catch {
      return r;
    }
  }
  // an address the guest reported (its agent is inside the guest): only a plain IP is used
  const ips = (await api.ips(vmid, { signal: op.signal })).filter((ip) => isIP(ip) !== 0);
  const host = ips.find((ip) => isIP(ip) === 4) ?? ips[0];
  if (!host) {
    throw Object.assign(new Error(`cannot reach ${label} over ssh: no address of it is known`), {
      changed: false,
      hint: 'give it a static IP in its network config, or run homelab-autopilot on its node (guest_exec.via: pct)',
    });
  }
  const quote = (x: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`);
  const keyArgs = g.ssh_key ? ['-i', g.ssh_key] : [];
  const args = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', ...keyArgs, `${g.ssh_user}@${host}`, '--', argv.map(quote).join(' ')];
  const r = await run(ctx, label, g.ssh, args, { signal: op.signal, timeoutMs });
  if (r.code === 255 && SSH_OWN_FAILURE.test(r.stderr)) {
    throw notReached(`cannot reach ${label} to run commands in it: ${r.stderr.trim().split('\n').slice(-1)[0]}`);
  }
  return r;
}
