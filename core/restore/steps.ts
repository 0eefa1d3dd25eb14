/**
 * RESTORE_STEPS: a file archive back, as a step table the lifecycle runner executes.
 * verify (sha256 against the record, a full decompress and listing) before anything is touched;
 * for --in-place a safety archive of what is there now; extract (its undo puts the safety
 * archive back); check (every regular file the archive lists is there with its size).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkExtracted, createArchive, DEFAULT_LEVEL, EXTENSION, extractInto, TarTally, verifyArchive } from '../../lib/archive';
import type { ExtractResult } from '../../lib/archive';
import { AutopilotError } from '../../lib/errors';
import { formatBytes } from '../../lib/format';
import type { Logger } from '../../lib/log';
import type { StateManager } from '../../lib/state';
import { stampName } from '../../lib/time';
import type { AutopilotConfig } from '../config/types';
import type { ServiceConfig } from '../plugins/contract';
import type { Step } from '../steps/runner';
import { SAFETY_WORD, type RestorePoint } from './select';

export type RestoreProgress =
  | { phase: 'verify'; service: string; bytes: number; total: number }
  | { phase: 'extract'; service: string; entries: number; total: number }
  | { phase: 'safety'; service: string; bytes: number };

export interface RestoreCtx {
  svc: ServiceConfig;
  config: AutopilotConfig;
  state: StateManager | null;
  log: Logger;
  point: RestorePoint;
  /** where members go: the --to folder, or / in place */
  target: string;
  inPlace: boolean;
  runId: number | null;
  /** what verification listed */
  tally: TarTally;
  extracted?: ExtractResult;
  safety?: { id: number | null; path: string; size: number };
  onProgress?(p: RestoreProgress): void;
  now(): Date;
}

const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

/** A free name for the safety archive: <root>/<service>/<service>_pre-restore_YYYYMMDD_HHMMSS[-N].<ext>. */
export function safetyPath(ctx: RestoreCtx): string {
  const dir = path.join(ctx.config.backup.root, ctx.svc.name);
  const base = `${ctx.svc.name}_${SAFETY_WORD}_${stampName(ctx.now())}`;
  const ext = EXTENSION[ctx.config.backup.compression];
  let name = base + ext;
  for (let n = 2; fs.existsSync(path.join(dir, name)); n++) name = `${base}-${n}${ext}`;
  return path.join(dir, name);
}

const verify: Step<RestoreCtx> = {
  id: 'verify',
  title: 'verification of the archive',
  readOnly: true,
  describe: (ctx) => `sha256 and a full decompress of ${ctx.point.location} (${formatBytes(ctx.point.size)}) before anything is touched`,
  async run(ctx, scope) {
    const p = ctx.point;
    if (!p.sha256) return { ok: false, detail: 'no sha256 is recorded for it: it cannot be checked' };
    const v = await verifyArchive(
      p.location,
      { size: p.size, sha256: p.sha256 },
      {
        signal: scope.signal,
        tally: ctx.tally,
        onProgress: (bytes, total) => ctx.onProgress?.({ phase: 'verify', service: ctx.svc.name, bytes, total }),
      },
    );
    if (scope.signal.aborted) throw new AutopilotError('ABORTED', 'verification was cancelled');
    if (!v.ok) return { ok: false, detail: String(v.error) };
    return { detail: `${entries(v.entries)}, ${ctx.tally.files} files, ${formatBytes(ctx.tally.bytes)}, sha256 as recorded` };
  },
  failMessage: (d) => `the archive failed verification, nothing was changed: ${d}`,
};

const safety: Step<RestoreCtx> = {
  id: 'safety',
  title: 'the safety archive',
  applies: (ctx) => ctx.inPlace,
  describe: (ctx) => `a safety archive of what is there now, into ${safetyPath(ctx)}`,
  async run(ctx, scope) {
    const now = ctx.tally.roots.map((r) => `/${r}`).filter((p) => fs.existsSync(p));
    if (!now.length) return { detail: 'nothing of the archive is there now: no safety archive needed', changed: false };
    const b = ctx.config.backup;
    const dest = safetyPath(ctx);
    const a = await createArchive({
      sources: now,
      compression: b.compression,
      level: b.compression_level ?? DEFAULT_LEVEL[b.compression],
      threads: b.compression_threads,
      dest,
      signal: scope.signal,
      onProgress: (bytes) => ctx.onProgress?.({ phase: 'safety', service: ctx.svc.name, bytes }),
    });
    const v = await verifyArchive(dest, { size: a.size, sha256: a.sha256 }, { signal: scope.signal });
    if (!v.ok)
      throw new AutopilotError('VERIFY_FAILED', `the safety archive ${dest} failed verification: ${v.error}; nothing was restored`);
    const at = new Date().toISOString();
    const id =
      ctx.state?.addArtifact({
        runId: ctx.runId,
        service: ctx.svc.name,
        destination: 'primary',
        location: dest,
        size: a.size,
        sha256: a.sha256,
        createdAt: ctx.now().toISOString(),
        verifiedAt: at,
        verifyStatus: 'ok',
        verifyDetail: entries(v.entries),
      }) ?? null;
    ctx.safety = { id, path: dest, size: a.size };
    ctx.log.info(`safety archive of ${now.join(', ')}: ${dest}`);
    return { detail: `${dest}: ${formatBytes(a.size)} (${now.join(', ')})` };
  },
};

const putBack: Step<RestoreCtx> = {
  id: 'put-back',
  title: 'the safety archive put back',
  describe: (ctx) => (ctx.inPlace ? 'put the safety archive back' : `nothing: what was extracted stays in ${ctx.target}`),
  async run(ctx, scope) {
    if (!ctx.inPlace) return { detail: `nothing to undo: what was extracted stays in ${ctx.target}`, changed: false };
    if (!ctx.safety) return { detail: 'no safety archive was needed: nothing to put back', changed: false };
    const r = await extractInto(ctx.safety.path, '/', { signal: scope.signal });
    return { detail: `${ctx.safety.path} put back: ${r.files} files` };
  },
};

const extract: Step<RestoreCtx> = {
  id: 'extract',
  title: 'the extraction',
  critical: true,
  describe: (ctx) => `extract ${ctx.point.location} into ${ctx.target}${ctx.inPlace ? ' (over the original paths)' : ''}`,
  async run(ctx, scope) {
    const total = ctx.tally.entries;
    ctx.extracted = await extractInto(ctx.point.location, ctx.target, {
      signal: scope.signal,
      onEntry: (n) => ctx.onProgress?.({ phase: 'extract', service: ctx.svc.name, entries: n, total }),
    });
    return { detail: `${ctx.extracted.files} files, ${formatBytes(ctx.extracted.bytes)} into ${ctx.target}` };
  },
  undo: [putBack],
};

const check: Step<RestoreCtx> = {
  id: 'check',
  title: 'the check of what was extracted',
  readOnly: true,
  describe: () => 'every file the archive lists is there, with its size',
  async run(ctx) {
    const x = ctx.extracted as ExtractResult;
    const t = ctx.tally;
    if (x.files !== t.files || x.bytes !== t.bytes)
      return { ok: false, detail: `tar extracted ${x.files} files (${x.bytes} bytes), the archive lists ${t.files} (${t.bytes} bytes)` };
    const problems = await checkExtracted(ctx.target, x.written);
    if (problems.length) return { ok: false, detail: problems.join('; ') };
    return { detail: `${x.files} files, ${formatBytes(x.bytes)}, as the archive lists` };
  },
};

export const RESTORE_STEPS: Step<RestoreCtx>[] = [verify, safety, extract, check];
