/**
 * The backup engine's types and the few rules its two runners share: the per-service
 * deadline, and how an error becomes a failed (or interrupted) result.
 */
import type { Clock } from '../../lib/async';
import { AutopilotError, describeError, isAbortError } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { mask } from '../../lib/mask';
import type { StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import type { DeliveryReport, NotificationEngine } from '../notify/engine';
import type { ServiceConfig } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';

/** The destination name of backup.root. */
export const PRIMARY = 'primary';

export interface BackupRequest {
  services: string[];
  all: boolean;
  dryRun: boolean;
  /** ms to wait for another backup run (default from global.lock_wait) */
  lockWaitMs?: number;
}

export interface CopyResult {
  destination: string;
  path: string;
  ok: boolean;
  error?: string;
}

export interface PruneResult {
  destination: string;
  path: string;
  reason: string;
  /** false when deleting it failed (it stays recorded) */
  ok: boolean;
  error?: string;
}

export interface ServicePlan {
  sources: { path: string; present: boolean; required: boolean }[];
  exclude: string[];
  files: number;
  bytes: number;
  archive: string;
  copies: { destination: string; path: string }[];
  prune: { destination: string; path: string; reason: string }[];
  /** a native (hypervisor) backup: where and how */
  guest?: {
    node: string;
    state: string;
    storage: string;
    kind: string;
    mode: string;
    compress: string;
    rule: string;
    method?: string;
    label?: string;
    managed?: boolean;
  };
}

export interface ServiceBackupResult {
  service: string;
  type: string;
  status: 'success' | 'failed' | 'planned' | 'interrupted';
  error?: string;
  hint?: string;
  archive?: { path: string; size: number; sha256: string; entries: number | null; verified: boolean };
  copies: CopyResult[];
  pruned: PruneResult[];
  warnings: string[];
  /** a success the backup tool itself ended with warnings about (for example a hypervisor task that ended with warnings): shown as 'warning' */
  warned?: boolean;
  durationMs: number;
  plan?: ServicePlan;
  /** a native (hypervisor) backup: the node it ran on, the storage, the mode, the task */
  guest?: { node: string; storage: string; kind: string; mode: string; rule: string; task?: string };
}

export interface BackupReport {
  runId: number | null;
  dryRun: boolean;
  ok: boolean;
  interrupted: boolean;
  startedAt: string;
  durationMs: number;
  services: ServiceBackupResult[];
  /** what the notification engine did with this run's events */
  notifications: DeliveryReport[];
}

export type BackupEvent =
  | { type: 'service-start'; service: string; index: number; total: number }
  /** bytes written to the archive; with phase 'verify', bytes of it read back of `total` */
  | { type: 'progress'; service: string; bytes: number; elapsedMs: number; phase?: 'archive' | 'verify'; total?: number }
  | { type: 'status'; service: string; message: string }
  | { type: 'service-done'; result: ServiceBackupResult };

export interface BackupEngineDeps {
  config: AutopilotConfig;
  registry: PluginRegistry;
  logger: Logger;
  /** the state database; null on a dry run against a machine that has none yet */
  state: StateManager | null;
  signal: AbortSignal;
  onEvent?(e: BackupEvent): void;
  /** where backup_success / backup_failed go (not on dry runs) */
  notifier?: NotificationEngine;
  /** time, for tests (default: the real clock) */
  clock?: Clock;
}

/** What both runners need from the engine. */
export interface RunnerDeps extends Omit<BackupEngineDeps, 'notifier' | 'clock'> {
  clock: Clock;
}

export type ResultBase = Pick<ServiceBackupResult, 'service' | 'type' | 'copies' | 'pruned' | 'warnings'> & Partial<ServiceBackupResult>;

export const emptyResult = (svc: ServiceConfig): ServiceBackupResult => ({
  service: svc.name,
  type: svc.type,
  status: 'success',
  copies: [],
  pruned: [],
  warnings: [],
  durationMs: 0,
});

/** The time one service's backup may take, as a signal that also aborts with the run's. */
export function serviceDeadline(
  config: AutopilotConfig,
  svc: ServiceConfig & { timeout?: number },
  run: AbortSignal,
): { timeoutMs: number; deadline: AbortSignal; signal: AbortSignal; until: number } {
  const timeoutMs = (svc.timeout ?? config.backup.timeout) * 1000;
  const deadline = AbortSignal.timeout(timeoutMs);
  return { timeoutMs, deadline, signal: AbortSignal.any([run, deadline]), until: Date.now() + timeoutMs };
}

/** A failed (or, when the run was cancelled, interrupted) result; the error's hint is kept. */
export function toFailure(base: ResultBase, e: unknown, started: number, run: AbortSignal, logger: Logger): ServiceBackupResult {
  const interrupted = run.aborted || (isAbortError(e) && !(e instanceof AutopilotError && e.code === 'TIMEOUT'));
  const err = e instanceof AutopilotError ? e : null;
  if (!err && !interrupted) logger.debug(`unexpected error backing up ${base.service}: ${(e as Error)?.stack ?? String(e)}`);
  return {
    ...base,
    status: interrupted ? 'interrupted' : 'failed',
    error: mask(interrupted ? 'cancelled' : describeError(e)),
    hint: err?.hint,
    durationMs: Date.now() - started,
  };
}

/** The status a service run is recorded with. */
export const runStatus = (r: ServiceBackupResult): 'interrupted' | 'success' | 'failed' =>
  r.status === 'interrupted' ? 'interrupted' : r.status === 'success' ? 'success' : 'failed';
