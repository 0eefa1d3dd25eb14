/** The update engine's types: its requests, results and reports, and the driver interface. */
import type { Clock } from '../../lib/async';
import type { Logger } from '../../lib/log';
import type { StateManager } from '../../lib/state';
import type { AutopilotConfig } from '../config/types';
import type { CheckResult } from '../health/checks';
import type { DeliveryReport, NotificationEngine } from '../notify/engine';
import type { OperationContext, ServiceStart, SnapshotInfo, UpdateResult } from '../plugins/contract';
import type { PluginRegistry } from '../plugins/host';
import type { StepReport } from '../steps/runner';

export type StepId = 'precheck' | 'snapshot' | 'update' | 'validate' | 'cleanup' | 'rollback' | 'revalidate';

/** One step of an update as reported (and, with --json, printed): with the health checks it ran. */
export type StepResult = StepReport<{ checks: CheckResult[] }>;

export interface ServiceUpdateResult {
  service: string;
  type: string;
  /** rolled_back: the update failed and the service is back as it was; rollback_failed: needs a person */
  status: 'success' | 'unchanged' | 'rolled_back' | 'rollback_failed' | 'failed' | 'interrupted' | 'planned';
  error?: string;
  hint?: string;
  snapshot?: SnapshotInfo;
  steps: StepResult[];
  durationMs: number;
  /** what to do by hand when the rollback failed */
  manual?: string;
  /** the error's code when it failed before anything ran (LOCKED: another run holds its lock) */
  code?: string;
  /** an earlier update of it that did not finish (its process died), found before this one began */
  unfinished?: string;
}

export interface UpdateReport {
  runId: number | null;
  dryRun: boolean;
  ok: boolean;
  interrupted: boolean;
  startedAt: string;
  durationMs: number;
  services: ServiceUpdateResult[];
  notifications: DeliveryReport[];
}

export interface UpdateRequest {
  services: string[];
  all: boolean;
  dryRun: boolean;
  /** services updated at once (default updates.parallel, 1: one after the other) */
  parallel?: number;
  /** ms to wait for another update of the same service (default updates.lock_wait) */
  lockWaitMs?: number;
}

export interface UpdateEngineDeps {
  config: AutopilotConfig;
  registry: PluginRegistry;
  logger: Logger;
  state: StateManager | null;
  signal: AbortSignal;
  notifier?: NotificationEngine;
  onStep?(service: string, step: StepResult): void;
  /** time, for tests (default: the real clock) */
  clock?: Clock;
}

export interface UpdateSettings {
  settleMs: number;
  intervalMs: number;
  keep: number;
  timeoutMs: number;
  minFreeBytes: number;
  command?: (string | string[])[];
}

/** How one service is snapshotted, updated and rolled back: a guest of a hypervisor, or a plugin's updater. */
export interface Driver {
  /** for messages: "<guest> via <hypervisor plugin>" */
  what: string;
  describe(op: OperationContext, s: UpdateSettings): Promise<{ snapshot: string; update: string; rollback: string }>;
  precheck(op: OperationContext, s: UpdateSettings): Promise<string[]>;
  snapshot(name: string, op: OperationContext): Promise<SnapshotInfo>;
  update(op: OperationContext, s: UpdateSettings): Promise<UpdateResult>;
  rollback(snap: SnapshotInfo, op: OperationContext): Promise<void>;
  /** the autopilot snapshots there are, oldest first */
  snapshots(op: OperationContext): Promise<SnapshotInfo[]>;
  deleteSnapshot(snap: SnapshotInfo, op: OperationContext): Promise<void>;
  running?(op: OperationContext): Promise<boolean>;
  /** fetches the new version without touching the service; changed: false = up to date (docker-compose: pull) */
  prepare?(op: OperationContext): Promise<UpdateResult>;
  /** when each container or process last started (a restart within the settle window fails validation) */
  starts?(op: OperationContext): Promise<ServiceStart[]>;
  /** the command to roll back by hand */
  manual(snap: SnapshotInfo): string;
}

/** Autopilot's own snapshots are named autopilot_YYYYMMDD_HHMMSS. */
export const SNAP_PREFIX = 'autopilot_';
