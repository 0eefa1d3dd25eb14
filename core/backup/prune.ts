/**
 * Which recorded backups retention removes (lib/retention.ts has the keep-* rules), for the
 * archives this tool wrote (per destination) and for a hypervisor's backups on a file storage.
 * Only backups this tool recorded are ever candidates, never one that failed verification
 * (kept aside for inspection), and the newest verified one is always kept.
 */
import * as path from 'node:path';
import { isInside } from '../../lib/fsx';
import { computePrune, keepsSomething, type KeepOptions, type PruneDecision } from '../../lib/retention';
import type { ArtifactRecord, StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import type { ServiceConfig } from '../plugins/contract';
import { PRIMARY } from './types';

export interface Destination {
  name: string;
  path: string;
  retention: KeepOptions;
  /** refuse to write there unless it is a mounted file system of its own */
  requireMount?: boolean;
}

/** backup.root (as PRIMARY) and every enabled destination, each with its retention. */
export function destinations(
  config: AutopilotConfig,
  svc: ServiceConfig & { retention?: KeepOptions },
): { primary: Destination; copies: Destination[] } {
  const b = config.backup;
  return {
    primary: { name: PRIMARY, path: b.root, retention: svc.retention ?? b.retention, requireMount: b.require_mount === true },
    copies: b.destinations
      .filter((d) => d.enabled !== false)
      .map((d) => ({
        name: d.name,
        path: d.path,
        retention: d.retention ?? svc.retention ?? b.retention,
        requireMount: d.require_mount === true,
      })),
  };
}

/** Our archive names: <service>_YYYYMMDD_HHMMSS[-N].tar.zst|.tar.gz */
export function isOurArchiveName(service: string, file: string): boolean {
  const esc = service.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${esc}_\\d{8}_\\d{6}(-\\d+)?\\.tar\\.(zst|gz)$`).test(file);
}

export interface Decision {
  artifact: ArtifactRecord;
  decision: PruneDecision;
}

/**
 * The keep-* decision for each recorded backup of a service at one destination.
 * `pin` says which one is the newest verified backup (always kept); `extra` adds a backup not
 * written yet (a dry run previews the state after a good backup: the new one is the newest).
 */
function decide(
  state: StateManager | null,
  keep: KeepOptions,
  list: ArtifactRecord[],
  pins: [ArtifactRecord | undefined, string][],
  extra?: Date,
): Decision[] {
  if (!state || !keepsSomething(keep)) return [];
  const candidates = list.map((a) => ({ id: String(a.id), time: new Date(a.createdAt), protected: a.protected }));
  const pinned = new Map<string, string>();
  if (extra) {
    candidates.push({ id: 'new', time: extra, protected: false });
    pinned.set('new', 'newest verified backup');
  } else for (const [pin, reason] of pins) if (pin && !pinned.has(String(pin.id))) pinned.set(String(pin.id), reason);
  const byId = new Map(list.map((a) => [String(a.id), a]));
  return computePrune(candidates, keep, pinned)
    .filter((d) => byId.has(d.id))
    .map((d) => ({ artifact: byId.get(d.id) as ArtifactRecord, decision: d }));
}

/** Whether a recorded archive lies in the destination's folder (a state copied from another host may point elsewhere). */
export const insideDestination = (a: ArtifactRecord, dest: Destination): boolean => isInside(a.location, dest.path);

/**
 * Our own archives of a service at one of our destinations. Only records inside the
 * destination's folder take part; `justMade` (the location of the archive this run wrote) is
 * always kept, even when older archives are dated later (a clock set back).
 */
export function archiveDecisions(
  state: StateManager | null,
  svc: ServiceConfig,
  dest: Destination,
  verifyOn: boolean,
  extra?: Date,
  justMade?: string,
): Decision[] {
  if (!state) return [];
  const list = state
    .listArtifacts({ service: svc.name, destination: dest.name })
    .filter((a) => isOurArchiveName(svc.name, path.basename(a.location)) && a.verifyStatus !== 'failed' && insideDestination(a, dest));
  // the newest verified archive; with verification turned off, the newest archive
  const newest = list.find((a) => a.verifyStatus === 'ok') ?? (verifyOn ? undefined : list[0]);
  const made = justMade === undefined ? undefined : list.find((a) => a.location === justMade);
  return decide(
    state,
    dest.retention,
    list,
    [
      [made, 'the backup this run made'],
      [newest, newest?.verifyStatus ? 'newest verified backup' : 'newest backup'],
    ],
    extra,
  );
}

/** A hypervisor's backups of a guest that we recorded on one storage (recorded under `destination`). */
export function guestDecisions(
  state: StateManager | null,
  svc: ServiceConfig,
  destination: string,
  keep: KeepOptions,
  extra?: Date,
): Decision[] {
  if (!state) return [];
  const list = state.listArtifacts({ service: svc.name, destination }).filter((a) => a.verifyStatus !== 'failed');
  const verified = list.find((a) => a.verifyStatus === 'ok' || a.verifyStatus === 'pending');
  // a backup only listed by its storage (not verified) is kept as the newest one when none was verified
  const newest = verified ?? list[0];
  return decide(state, keep, list, [[newest, verified ? 'newest verified backup' : 'newest backup']], extra);
}
