/**
 * The monitor's resource checks, made from the config: free space of the backup root, of
 * every enabled destination and of `monitoring.resources.mounts` (each path once), with a
 * forecast of the day it fills; host memory and 15-minute load per CPU; and hypervisor nodes
 * (./nodes.ts). Each comes as { subject, label, type, probe } for the engine to make a spec of.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import { formatBytes } from '../../lib/format';
import type { Logger } from '../../lib/log';
import type { AutopilotConfig, ResourcesConfig } from '../config/types';
import type { PluginRegistry } from '../plugins/registry';
import { daysUntilFull, describeDays, FORECAST_WINDOW_S } from './forecast';
import { nodeProbes } from './nodes';
import { watchedPaths } from './watched';

export { watchedPaths };
import { runProbe, type Outcome } from './probes/run';
import type { Probe, ProbeEnv } from './types';

export interface ResourceProbe {
  /** 'host', or `node:<name>` */
  subject: string;
  label: string;
  type: 'disk' | 'memory' | 'load' | 'node';
  probe: Probe;
}

const percentText = (v: number): string => `${Math.round(v * 10) / 10} %`;

/** Used space of a file system as df counts it: used / (used + available to us). */
export async function diskUsage(dir: string): Promise<{ usedPercent: number; free: number; total: number }> {
  const s = await fsp.statfs(dir);
  const used = (s.blocks - s.bfree) * s.bsize;
  const free = s.bavail * s.bsize;
  return { usedPercent: used + free > 0 ? (used / (used + free)) * 100 : 0, free, total: s.blocks * s.bsize };
}

/** The judgement of a used percentage with its forecast (shared with the node probes' root disk and storages). */
export function judgeDisk(
  what: string,
  usedPercent: number,
  r: Pick<ResourcesConfig, 'disk_warn_percent' | 'disk_critical_percent' | 'forecast_warn_days'>,
  days: number | null,
): { ok: boolean; warning: string | null } {
  if (usedPercent >= r.disk_critical_percent) return { ok: false, warning: null };
  if (usedPercent >= r.disk_warn_percent)
    return { ok: true, warning: `${what} ${percentText(usedPercent)} used (warning at ${r.disk_warn_percent} %)` };
  if (days !== null && r.forecast_warn_days > 0 && days <= r.forecast_warn_days)
    return { ok: true, warning: `${what} full in ${describeDays(days)} at the growth of the last 7 days` };
  return { ok: true, warning: null };
}

export function diskProbe(dir: string, r: ResourcesConfig): Probe {
  return (env) =>
    runProbe(env, async (): Promise<Outcome> => {
      const u = await diskUsage(dir);
      const nowS = Math.floor(env.now().getTime() / 1000);
      const points = [...env.history(nowS - FORECAST_WINDOW_S), { at: nowS, value: u.usedPercent }];
      const days = daysUntilFull(points);
      const forecast = days === null ? '' : days === 0 ? ', full' : `, full in ${describeDays(days)}`;
      const detail = `${percentText(u.usedPercent)} used, ${formatBytes(u.free)} free of ${formatBytes(u.total)}${forecast}`;
      const j = judgeDisk(dir, u.usedPercent, r, days);
      const value = Math.round(u.usedPercent * 100) / 100;
      return j.ok
        ? { detail, value, warning: j.warning }
        : { ok: false, detail: `${detail} (critical at ${r.disk_critical_percent} %)`, value };
    });
}

/** MemTotal and MemAvailable of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): { total: number; available: number } | null {
  const kb = (key: string): number | null => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  return total && available !== null ? { total, available } : null;
}

export function memoryProbe(r: ResourcesConfig, file = '/proc/meminfo'): Probe {
  return (env: ProbeEnv) =>
    runProbe(env, async () => {
      const m = parseMeminfo(await fsp.readFile(file, 'utf8'));
      if (!m) throw new Error(`${file} has no MemTotal and MemAvailable`);
      const used = (1 - m.available / m.total) * 100;
      const detail = `${percentText(used)} used, ${formatBytes(m.available)} available of ${formatBytes(m.total)}`;
      const warning = used >= r.memory_warn_percent ? `memory ${percentText(used)} used (warning at ${r.memory_warn_percent} %)` : null;
      return { detail, value: Math.round(used * 100) / 100, warning };
    });
}

export function loadProbe(r: ResourcesConfig, file = '/proc/loadavg'): Probe {
  return (env: ProbeEnv) =>
    runProbe(env, async () => {
      const load15 = Number((await fsp.readFile(file, 'utf8')).trim().split(/\s+/)[2]);
      if (!Number.isFinite(load15)) throw new Error(`${file} has no 15-minute load`);
      const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
      const per = Math.round((load15 / cpus) * 100) / 100;
      const detail = `15-minute load ${load15} on ${cpus} CPU${cpus === 1 ? '' : 's'} (${per} per CPU)`;
      const warning = per >= r.load_warn_per_cpu ? `load ${per} per CPU (warning at ${r.load_warn_per_cpu})` : null;
      return { detail, value: per, warning };
    });
}

/**
 * The resource probes of the config. Async because the nodes of each hypervisor are learnt by
 * asking its plugin once (./nodes.ts); the host's own probes need nothing asked.
 */
export async function resourceProbes(
  config: AutopilotConfig,
  registry: PluginRegistry,
  logger: Logger,
  signal: AbortSignal = new AbortController().signal,
): Promise<ResourceProbe[]> {
  const r = config.monitoring.resources;
  if (!r.enabled) return [];
  const out: ResourceProbe[] = watchedPaths(config).map((dir) => ({
    subject: 'host',
    label: `disk ${dir}`,
    type: 'disk',
    probe: diskProbe(dir, r),
  }));
  out.push({ subject: 'host', label: 'memory', type: 'memory', probe: memoryProbe(r) });
  out.push({ subject: 'host', label: 'load', type: 'load', probe: loadProbe(r) });
  if (r.nodes) out.push(...(await nodeProbes(config, registry, logger, signal)));
  return out;
}
