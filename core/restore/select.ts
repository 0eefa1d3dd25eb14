/**
 * What `restore` can restore and which archive it takes: the service (only `files` and `host`
 * for now), its recorded archives at every destination (newest first), the pick by --archive,
 * --at and --from, and the folder a restore goes to, checked before anything is touched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutopilotError } from '../../lib/errors';
import { pseudoRootOf } from '../../lib/fsx';
import type { StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import type { ServiceConfig } from '../plugins/contract';
import { listBackups, type ListedBackup } from '../queries';

/** The service types whose archives `restore` handles now. */
export const RESTORABLE_TYPES = ['files', 'host'];

/** The word in the name of a safety archive written before an in-place restore. */
export const SAFETY_WORD = 'pre-restore';

export interface RestorePoint extends ListedBackup {
  /** 'backup': an archive a backup made; 'pre-restore': the safety copy an in-place restore made */
  kind: 'backup' | 'pre-restore';
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether a file name is that of a safety archive of the service (<service>_pre-restore_YYYYMMDD_HHMMSS[-N].tar.zst). */
export function isSafetyName(service: string, file: string): boolean {
  return new RegExp(`^${esc(service)}_${SAFETY_WORD}_\\d{8}_\\d{6}(-\\d+)?\\.tar\\.(zst|gz)$`).test(file);
}

/** The configured service, if `restore` can handle its type; a clear USAGE error otherwise. */
export function restorableService(config: AutopilotConfig, name: string): ServiceConfig {
  const svc = config.services.find((s) => s.name === name);
  if (!svc)
    throw new AutopilotError('USAGE', `no service named '${name}' in the config`, {
      hint: `its services: ${config.services.map((s) => s.name).join(', ') || 'none'}`,
    });
  if (!RESTORABLE_TYPES.includes(svc.type))
    throw new AutopilotError('USAGE', `restore of ${svc.type} services arrives later`, {
      hint: `restore handles ${RESTORABLE_TYPES.join(' and ')} services for now; docs/restore.md says how to restore the others by hand`,
    });
  return svc;
}

/** The service's archives at every destination, newest first (at one time, backup.root's before its copies). */
export function restorePoints(state: StateManager | null, service: string): RestorePoint[] {
  const list = listBackups(state, { service }).filter((a) => !a.destination.includes(':'));
  const rank = (a: ListedBackup): number => (a.destination === 'primary' ? 0 : 1);
  return list
    .map((a) => ({ ...a, kind: isSafetyName(service, path.basename(a.location)) ? ('pre-restore' as const) : ('backup' as const) }))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || rank(a) - rank(b) || b.id - a.id);
}

/**
 * --at: an ISO time, or `YYYY-MM-DD HH:MM[:SS]` in local time; a date alone means the end of
 * that day.
 */
export function parseAt(text: string): Date {
  const t = text.trim();
  const dateOnly = /^\d{4}-\d\d-\d\d$/.test(t);
  const d = dateOnly ? new Date(`${t}T23:59:59.999`) : new Date(t.replace(/^(\d{4}-\d\d-\d\d) (\d)/, '$1T$2'));
  if (Number.isNaN(d.getTime()))
    throw new AutopilotError('USAGE', `--at ${text}: not a time`, { hint: 'for example --at 2026-11-22 or --at "2026-11-22 14:30"' });
  return d;
}

export interface Choice {
  point: RestorePoint;
  /** why this one, for people */
  reason: string;
}

/** The archive to restore: named, or the newest verified one that is present (at or before --at, at --from). */
export function chooseArchive(
  points: RestorePoint[],
  service: string,
  want: { archive?: number; at?: string; from?: string; destinations: string[] },
): Choice {
  const listHint = `'restore ${service} --list' shows what can be restored`;
  if (want.from && !want.destinations.includes(want.from))
    throw new AutopilotError('USAGE', `--from ${want.from}: not a destination`, { hint: `destinations: ${want.destinations.join(', ')}` });
  if (want.archive !== undefined) {
    const p = points.find((x) => x.id === want.archive);
    if (!p) throw new AutopilotError('USAGE', `${service} has no recorded archive with id ${want.archive}`, { hint: listHint });
    if (want.from && p.destination !== want.from)
      throw new AutopilotError('USAGE', `archive ${p.id} is at ${p.destination}, not at ${want.from}`, { hint: listHint });
    if (!p.present)
      throw new AutopilotError('USAGE', `archive ${p.id} (${p.location}) is missing`, { hint: `${listHint}; --from picks a copy` });
    return { point: p, reason: `archive ${p.id}, named with --archive` };
  }
  const at = want.at === undefined ? null : parseAt(want.at);
  const usable = points.filter(
    (p) =>
      p.kind === 'backup' &&
      p.present &&
      p.verifyStatus === 'ok' &&
      (!want.from || p.destination === want.from) &&
      (!at || new Date(p.createdAt).getTime() <= at.getTime()),
  );
  const p = usable[0];
  const where = want.from ? ` at ${want.from}` : '';
  if (!p) {
    const when = at ? ` made at or before ${at.toISOString()}` : '';
    throw new AutopilotError('USAGE', `${service} has no verified archive${when}${where} whose file is present`, { hint: listHint });
  }
  return { point: p, reason: `the newest verified archive${at ? ` at or before ${want.at}` : ''}${where}` };
}

/**
 * The folder of a restore (--to): absolute (relative to the working directory), not / (that is
 * --in-place), not under /proc, /sys or /dev, a folder if it exists, and empty unless `force`.
 */
export function checkTarget(to: string, force: boolean, cwd = process.cwd()): string {
  if (!to.trim()) throw new AutopilotError('USAGE', '--to needs a folder');
  const dir = path.resolve(cwd, to);
  if (dir === '/') throw new AutopilotError('USAGE', '--to / would restore over everything', { hint: 'use --in-place --yes for that' });
  const pseudo = pseudoRootOf(dir);
  if (pseudo) throw new AutopilotError('USAGE', `${dir} is under ${pseudo}, a file system of the kernel`);
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(dir);
  } catch {
    return dir; // created by the restore
  }
  if (!st.isDirectory()) throw new AutopilotError('USAGE', `${dir} exists and is not a folder`);
  if (!force && fs.readdirSync(dir).length > 0)
    throw new AutopilotError('USAGE', `${dir} is not empty`, {
      hint: 'restore into a new or empty folder, or add --force to restore into it anyway (files of the same name are replaced)',
    });
  return dir;
}
