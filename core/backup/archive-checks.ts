/**
 * What an archive backup checks around its own work, in the records state keeps of the
 * service: archives an earlier run wrote but never finished verifying (it was killed), archives
 * dated in the future (the clock was set back since), and records that point outside the
 * destination's folder (a state copied from another host): those are reported, never deleted.
 */
import * as fs from 'node:fs';
import { verifyArchive } from '../../lib/archive';
import type { ArtifactRecord, StateManager } from '../../lib/state';
import { stampText } from '../../lib/time';
import { entries, setAside, type ArchiveCtx } from './archive-parts';
import { insideDestination, isOurArchiveName, type Destination } from './prune';
import * as path from 'node:path';

const all = (ctx: ArchiveCtx): Destination[] => [ctx.dest.primary, ...ctx.dest.copies];

/**
 * Archives recorded as written but not yet verified by a run that is over (it was killed while
 * verifying: we hold the backup lock, so no other run is verifying them now): each is verified
 * now and kept, or set aside when it fails; a record whose file is gone is closed.
 */
export async function finishLeftovers(ctx: ArchiveCtx, signal: AbortSignal): Promise<void> {
  const state = ctx.deps.state as StateManager;
  for (const d of all(ctx)) {
    const left = state
      .listArtifacts({ service: ctx.svc.name, destination: d.name })
      .filter((a) => a.verifyStatus === 'pending' && insideDestination(a, d) && isOurArchiveName(ctx.svc.name, path.basename(a.location)));
    for (const a of left) await finishOne(ctx, state, a, signal);
  }
}

async function finishOne(ctx: ArchiveCtx, state: StateManager, a: ArtifactRecord, signal: AbortSignal): Promise<void> {
  const again = (v: Pick<ArtifactRecord, 'verifyStatus' | 'verifyDetail'>, location = a.location): number =>
    state.addArtifact({ ...a, location, verifiedAt: new Date().toISOString(), ...v });
  if (!fs.existsSync(a.location)) {
    state.markArtifactDeleted(a.id);
    ctx.log.info(`${a.location}, left unverified by an earlier run that was stopped, is gone: its record is closed`);
    return;
  }
  if (!ctx.deps.config.backup.verify) {
    again({ verifyStatus: null, verifyDetail: null });
    ctx.log.info(`recorded ${a.location}, left by an earlier run that was stopped before it ended`);
    return;
  }
  const v = await verifyArchive(a.location, { size: a.size, sha256: a.sha256 }, { signal });
  if (signal.aborted) return;
  if (v.ok) {
    again({ verifyStatus: 'ok', verifyDetail: entries(v.entries) });
    ctx.log.info(`verified ${a.location}, left unverified by an earlier run that was stopped: ${entries(v.entries)}; it is kept`);
    return;
  }
  const failed = await setAside(a.location);
  state.markArtifactDeleted(a.id);
  again({ verifyStatus: 'failed', verifyDetail: String(v.error) }, failed);
  const w = `${a.location}, left unverified by an earlier run that was stopped, failed verification (${v.error}): kept as ${failed}`;
  ctx.result.warnings.push(w);
  ctx.log.warn(w);
}

/** Warnings about records of the service dated after now (a clock set back), and records outside their destination's folder. */
export function recordWarnings(ctx: ArchiveCtx): string[] {
  const state = ctx.deps.state as StateManager;
  const now = ctx.deps.clock.now().getTime();
  const out: string[] = [];
  const future: ArtifactRecord[] = [];
  for (const d of all(ctx)) {
    const list = state.listArtifacts({ service: ctx.svc.name, destination: d.name });
    // a minute of slack: the archive of this run is dated when it started
    future.push(...list.filter((a) => new Date(a.createdAt).getTime() > now + 60_000));
    const outside = list.filter((a) => isOurArchiveName(ctx.svc.name, path.basename(a.location)) && !insideDestination(a, d));
    if (outside.length)
      out.push(
        `${outside.length} recorded backup${outside.length > 1 ? 's' : ''} of ${d.name} ${outside.length > 1 ? 'lie' : 'lies'} outside ${d.path} (e.g. ${outside[0].location}): ` +
          'retention leaves them alone (was the state copied from another host or folder?)',
      );
  }
  if (future.length) {
    const latest = future.reduce((x, y) => (x.createdAt > y.createdAt ? x : y));
    out.push(
      `${future.length} recorded backup${future.length > 1 ? 's are' : ' is'} dated in the future (up to ${stampText(new Date(latest.createdAt))}): ` +
        "was the clock set back? The backup this run made is kept whatever retention says; check the host's time",
    );
  }
  return out;
}
