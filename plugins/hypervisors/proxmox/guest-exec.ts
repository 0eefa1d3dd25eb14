/**
 * Commands inside a guest (updates): `pct exec` for a container and `qm guest exec` (through the
 * QEMU guest agent) for a VM when the guest runs on this very node, else ssh to an address the
 * guest reported. A failure before the command reached the guest (the runner missing, ssh
 * unable to connect or log in) is reported with `changed: false`: nothing ran, so the update
 * engine rolls nothing back. Over ssh, whether the command started is not guessed from ssh's
 * messages (they differ by version, and carry a "user@host: " prefix or not): the remote
 * command first writes a marker of ours to stderr; without the marker, nothing ran.
 */
import { randomBytes } from 'node:crypto';
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
  /** the known_hosts file the guests' host keys are checked against (strictly) */
  ssh_known_hosts?: string;
}

const HINT = 'nothing was changed; check how commands reach the guest (plugins.proxmox.guest_exec)';

/** An error that says the command never reached the guest. */
const notReached = (message: string, cause?: unknown): Error =>
  Object.assign(new Error(message, { cause }), { changed: false, hint: HINT });

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
    // only a runner that could not be started (missing, not executable) means nothing ran; a
    // time-out or a cancel ended a command that had started, which may have changed the guest
    if (o.signal.aborted || (e as { code?: string }).code !== 'EXEC_FAILED') throw e;
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
  const hostKeys = g.ssh_known_hosts ? ['-o', `UserKnownHostsFile=${g.ssh_known_hosts}`, '-o', 'StrictHostKeyChecking=yes'] : [];
  const marker = `homelab-autopilot-started-${randomBytes(6).toString('hex')}`;
  const remote = `printf '%s\\n' ${marker} >&2 && ${argv.map(quote).join(' ')}`;
  const args = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', ...keyArgs, ...hostKeys, `${g.ssh_user}@${host}`, '--', remote];
  const r = await run(ctx, label, g.ssh, args, { signal: op.signal, timeoutMs });
  const lines = r.stderr.split('\n');
  // a shell start-up file may write before it without a newline, a forced tty adds \r after it
  const at = lines.findIndex((l) => l.replace(/\r$/, '').endsWith(marker));
  if (at < 0) {
    // the remote command never started: ssh could not connect, verify the host, or log in (whatever its words)
    const said = lines.map((l) => l.trim()).filter(Boolean);
    throw notReached(`cannot reach ${label} to run commands in it: ${said.at(-1) ?? `ssh exited ${r.code ?? r.signal} and said nothing`}`);
  }
  // what ssh said before the command started (a warning about a new host key) stays; the marker goes
  const before = lines[at].replace(/\r$/, '').slice(0, -marker.length);
  return { ...r, stderr: [...lines.slice(0, at), ...(before ? [before] : []), ...lines.slice(at + 1)].join('\n') };
}
