/**
 * `state rebuild`: the way back from an empty or damaged state database. The old file is kept
 * aside, a new database is started, and the records of the archives this tool wrote are made
 * again from the files on disk: for every configured service, in backup.root and every
 * destination, each archive with its name, size, sha256 and a full verification. Runs,
 * notifications and protections are not on disk and stay only in the old file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { verifyArchive } from '../../lib/archive';
import { AutopilotError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { isDamagedState, StateManager, type VerifyStatus } from '../../lib/state';
import { stampName } from '../../lib/time';
import type { AutopilotConfig } from '../config/types';
import { destinations, isOurArchiveName } from './prune';

export interface RebuiltArchive {
  service: string;
  destination: string;
  location: string;
  size: number;
  sha256: string | null;
  createdAt: string;
  verifyStatus: VerifyStatus;
  verifyDetail: string;
}

export interface RebuildReport {
  stateFile: string;
  /** where the old database was moved (null: there was none) */
  keptAs: string | null;
  /** why it was rebuilt: what was wrong with the old one, or 'forced' */
  reason: string;
  archives: RebuiltArchive[];
}

/** The time in an archive name (<service>_YYYYMMDD_HHMMSS[-N].tar.*), local time as it was written. */
export function timeOfName(file: string): Date | null {
  const m = /_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?:-\d+)?\.tar\.(?:zst|gz)$/.exec(file);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  return new Date(y, mo - 1, d, h, mi, s);
}

/** What is wrong with the state database: null when it is sound (or there is none yet). */
function problem(stateDir: string): string | null {
  try {
    StateManager.openReadOnly(stateDir)?.close();
    return null;
  } catch (e) {
    // only an empty or damaged file is set aside: one this user cannot read, or a busy one, is not
    if (isDamagedState(e)) return (e as Error).message;
    throw e;
  }
}

export async function rebuildState(
  config: AutopilotConfig,
  opts: { force: boolean; signal: AbortSignal; logger: Logger; now?: Date },
): Promise<RebuildReport> {
  const stateDir = config.global.state_dir;
  const stateFile = path.join(stateDir, 'state.db');
  const wrong = problem(stateDir);
  if (!wrong && fs.existsSync(stateFile) && !opts.force) {
    throw new AutopilotError('USAGE', `the state database ${stateFile} is sound: nothing to rebuild`, {
      hint: 'give --force to keep it aside and rebuild the records of archives anyway (its runs and notifications stay in the old file)',
    });
  }
  const keptAs = StateManager.setAside(stateDir, stampName(opts.now ?? new Date()));
  if (keptAs) opts.logger.warn(`the old state database is kept as ${keptAs}`);
  const state = StateManager.open(stateDir);
  const archives: RebuiltArchive[] = [];
  try {
    for (const svc of config.services) {
      const d = destinations(config, svc);
      for (const dest of [d.primary, ...d.copies]) {
        for (const a of await scan(svc.name, dest.name, path.join(dest.path, svc.name), opts.signal)) {
          state.addArtifact({ runId: null, ...a, verifiedAt: new Date().toISOString() });
          archives.push(a);
          opts.logger.info(`recorded ${a.location}: ${a.verifyStatus}, ${a.verifyDetail}`);
        }
      }
    }
  } finally {
    state.close();
  }
  return { stateFile, keptAs, reason: wrong ?? (keptAs ? 'forced' : 'there was no state database'), archives };
}

/** The archives of one service in one folder, each verified (the files are read, never changed). */
async function scan(service: string, destination: string, dir: string, signal: AbortSignal): Promise<RebuiltArchive[]> {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => isOurArchiveName(service, n));
  } catch {
    return [];
  }
  const out: RebuiltArchive[] = [];
  for (const n of names.sort()) {
    if (signal.aborted) throw new AutopilotError('ABORTED', 'the rebuild was cancelled');
    const location = path.join(dir, n);
    const v = await verifyArchive(location, {}, { signal });
    out.push({
      service,
      destination,
      location,
      size: v.size,
      sha256: v.sha256,
      createdAt: (timeOfName(n) ?? fs.statSync(location).mtime).toISOString(),
      verifyStatus: v.ok ? 'ok' : 'failed',
      verifyDetail: v.ok ? `${v.entries} ${v.entries === 1 ? 'entry' : 'entries'}` : String(v.error),
    });
  }
  return out;
}
