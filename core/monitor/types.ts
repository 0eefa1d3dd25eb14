/**
 * The monitor's vocabulary: a probe (one check of one thing, never throwing), the spec of a
 * monitored check (what, how often, how many failures make it DOWN, what it depends on), and
 * what a pass reports. Probes are made by ./probes.ts from the config's health checks and
 * resources; the engine (./engine.ts) schedules specs and keeps their states in state.
 */
import type { StateManager, MonitorState } from '../../lib/state';
import type { ServiceConfig } from '../plugins/contract';

export type { MonitorState };

export interface ProbeResult {
  /** false counts as a failure towards DOWN */
  ok: boolean;
  /** what was seen: "status 200 in 12 ms", "no answer within 5s", "82 % used, full in 9 days" */
  detail: string;
  durationMs: number;
  /** a measured value kept with the result (used %, days until expiry...): the forecast's input, and metrics */
  value?: number | null;
  /** a problem that is not (yet) a failure: a certificate expiring in 10 days, a disk 88 % full */
  warning?: string | null;
}

export interface ProbeEnv {
  signal: AbortSignal;
  /** the check's own time limit; a probe must answer (with ok: false) within it */
  timeoutMs: number;
  now(): Date;
  state: StateManager | null;
  /** the values this check recorded since a time (epoch seconds), oldest first: the disk forecast's input */
  history(sinceEpoch: number): { at: number; value: number }[];
}

/** One check of one thing. Never throws: a failure is `ok: false` with its reason. */
export type Probe = (env: ProbeEnv) => Promise<ProbeResult>;

/**
 * Which side of a subject a check watches; it chooses the alert a DOWN check raises:
 * internal -> service_down, external -> external_access_failed, resource -> resource_threshold,
 * backup -> backup_stale, certificate -> certificate_expiring.
 */
export type CheckSide = 'internal' | 'external' | 'resource' | 'backup' | 'certificate';

export interface MonitorSpec {
  /** stable across runs while the config says the same: `subject/label` */
  key: string;
  /** the service or target it belongs to, `host`, or a hypervisor node (`node:pve1`) */
  subject: string;
  label: string;
  /** the check's type (http, tcp, icmp, dns, tls, command, running, backup, external, disk, memory, load, node) */
  type: string;
  side: CheckSide;
  intervalS: number;
  timeoutMs: number;
  failureThreshold: number;
  recoveryThreshold: number;
  /** the subjects (services or targets) this one depends on */
  dependsOn: string[];
  probe: Probe;
}

/** What probes.ts needs to make a spec's probe: the service, and how to ask its plugin whether it runs. */
export interface ProbeDeps {
  service?: ServiceConfig;
  /** the subject's name when it is not a service (a monitoring target): what a backup check looks up */
  subject?: string;
  /** asks the service's hypervisor or service plugin whether it runs (the `running` check) */
  running?(signal: AbortSignal): Promise<boolean>;
}

/** One check after a pass or in `status`. */
export interface CheckReport {
  key: string;
  subject: string;
  label: string;
  type: string;
  side: CheckSide;
  state: MonitorState;
  since: string;
  ok: boolean | null;
  detail: string | null;
  durationMs: number | null;
  warning: string | null;
  /** set while a subject it depends on is DOWN: "router down" */
  unreachableVia: string | null;
  /** why the check is MAINTENANCE */
  maintenance: string | null;
}

export interface PassReport {
  startedAt: string;
  durationMs: number;
  checks: CheckReport[];
  /** subjects with a check DOWN (not counting those only unreachable) */
  down: string[];
}
