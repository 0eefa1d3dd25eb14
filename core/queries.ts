/**
 * What the listing commands read from state (`history`, `backups list`, `backups protect`,
 * `notifications list`), so that bin/ reaches state only through core. Each function takes the
 * state a command opened, or null when there is none yet (a read-only open finds no database):
 * then there is nothing recorded.
 */
import * as fs from 'node:fs';
import { AutopilotError } from '../lib/errors';
import type { ArtifactRecord, NotificationRecord, RunRecord, StateManager } from '../lib/state';

export type { ArtifactRecord, NotificationRecord, RunRecord, VerifyStatus } from '../lib/state';

export interface HistoryEntry extends RunRecord {
  durationMs: number | null;
  /** the service runs under this run, oldest first */
  children: RunRecord[];
}

export interface ListedBackup extends ArtifactRecord {
  /** whether the file is there now */
  present: boolean;
}

/** How long a run took; null while it runs. */
export function runDurationMs(run: RunRecord): number | null {
  return run.endedAt ? new Date(run.endedAt).getTime() - new Date(run.startedAt).getTime() : null;
}

/** Top-level runs, newest first, each with the service runs under it. */
export function listHistory(state: StateManager | null, opts: { kind?: string; limit?: number } = {}): HistoryEntry[] {
  if (!state) return [];
  return state.listRuns({ kind: opts.kind, limit: opts.limit, parentId: null }).map((r) => ({
    ...r,
    durationMs: runDurationMs(r),
    // a job run covers at most the configured services: 1000 is no limit in practice
    children: state.listRuns({ parentId: r.id, limit: 1000 }).reverse(),
  }));
}

/**
 * Whether an artifact is there now. A destination with a ':' is a hypervisor's storage
 * (`pve:local`): its volumes are not files this host can see, so they count as present until
 * retention deletes them.
 */
export function artifactPresent(a: ArtifactRecord): boolean {
  return a.deletedAt === null && (a.destination.includes(':') || fs.existsSync(a.location));
}

/** Recorded backups, newest first, with whether each is still there. */
export function listBackups(
  state: StateManager | null,
  opts: { service?: string; destination?: string; includeDeleted?: boolean } = {},
): ListedBackup[] {
  if (!state) return [];
  return state.listArtifacts(opts).map((a) => ({ ...a, present: artifactPresent(a) }));
}

/** Protects a backup from retention (or lifts the protection); returns it as it is now. */
export function protectBackup(state: StateManager | null, id: number, protect: boolean): ArtifactRecord {
  const artifact = state?.getArtifact(id) ?? null;
  if (!state || !artifact || artifact.deletedAt) {
    throw new AutopilotError('USAGE', `no backup archive with id ${id}${artifact?.deletedAt ? ' (it was pruned)' : ''}`, {
      hint: "'backups list --json' shows the ids",
    });
  }
  state.setArtifactProtected(id, protect);
  return state.getArtifact(id)!;
}

/** Notifications sent, failed or held back, newest first. */
export function listNotifications(state: StateManager | null, opts: { channel?: string; limit?: number } = {}): NotificationRecord[] {
  return state ? state.listNotifications(opts) : [];
}
