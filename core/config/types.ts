import type { KeepOptions } from '../../lib/retention';
import type { ServiceConfig } from '../plugins/contract';
import type { HealthCheck } from '../health/checks';

export interface GlobalConfig {
  state_dir: string;
  log_dir: string;
  log_level: 'error' | 'warn' | 'info' | 'debug';
  log_format: 'human' | 'json';
  log_max_size_mb: number;
  log_max_files: number;
  lock_wait: number;
  plugins_dir?: string;
}

export interface DestinationConfig {
  name: string;
  path: string;
  retention?: KeepOptions;
  enabled: boolean;
  /** refuse to copy when path is not a mounted file system of its own */
  require_mount?: boolean;
}

export interface BackupConfig {
  root: string;
  /** refuse to write when root is not a mounted file system of its own */
  require_mount?: boolean;
  compression: 'zstd' | 'gzip';
  compression_level?: number;
  compression_threads: number;
  verify: boolean;
  timeout: number;
  retention: KeepOptions;
  destinations: DestinationConfig[];
  guests: GuestBackupConfig;
  /** keys hypervisor plugins add (HypervisorPluginDefinition.backupSchema), validated against their schemas; read by those plugins */
  [pluginKey: string]: unknown;
}

export interface GuestBackupConfig {
  storage: string;
  path?: string;
  mode: 'snapshot' | 'suspend' | 'stop';
  compress: 'zstd' | 'gzip' | 'lzo' | 'none';
  parallel_nodes: number;
  notes_template?: string;
  protected: boolean;
}

export interface ChannelConfig {
  name: string;
  type: string;
  enabled: boolean;
  events?: string[];
  min_severity: 'info' | 'warning' | 'critical';
  title_template?: string;
  text_template?: string;
  timeout?: number;
  [key: string]: unknown;
}

export interface NotificationsConfig {
  cooldown: number;
  repeat_interval: number;
  digest: boolean;
  timeout: number;
  channels: ChannelConfig[];
}

export interface UpdatesConfig {
  settle_seconds: number;
  check_interval: number;
  keep_snapshots: number;
  timeout: number;
  min_free_mb: number;
  lock_wait: number;
  parallel: number;
}

export interface AutopilotConfig {
  /** the config format (core/config/migrate.ts): always the current one once loaded, older files being migrated */
  version: number;
  global: GlobalConfig;
  backup: BackupConfig;
  notifications: NotificationsConfig;
  monitoring: MonitoringConfig;
  updates: UpdatesConfig;
  schedules: SchedulesConfig;
  daemon: DaemonConfig;
  metrics: MetricsConfig;
  plugins: Record<string, Record<string, unknown>>;
  services: (ServiceConfig & { retention?: KeepOptions; timeout?: number; description?: string })[];
}

/** A duration as written: seconds, or a number with a unit (lib/duration.ts). */
export type Duration = number | string;

export interface ExternalConfig {
  url: string;
  expect_status?: number | number[];
  body_contains?: string;
  resolver?: string;
  timeout?: number;
  interval?: Duration;
  warn_days: number;
}

export interface MonitoringTarget {
  name: string;
  description?: string;
  enabled: boolean;
  health_checks: HealthCheck[];
  depends_on?: string[];
  external?: ExternalConfig;
}

export interface MaintenanceWindowConfig {
  name?: string;
  services?: string[];
  cron: string;
  duration: Duration;
}

export interface ResourcesConfig {
  enabled: boolean;
  interval: Duration;
  mounts: string[];
  disk_warn_percent: number;
  disk_critical_percent: number;
  forecast_warn_days: number;
  memory_warn_percent: number;
  load_warn_per_cpu: number;
  nodes: boolean;
}

export interface MonitoringConfig {
  interval: Duration;
  timeout: number;
  failure_threshold: number;
  recovery_threshold: number;
  concurrency: number;
  flapping: { changes: number; window: Duration };
  retention: { raw: Duration; hourly: Duration; daily: Duration };
  targets: MonitoringTarget[];
  resources: ResourcesConfig;
  maintenance: MaintenanceWindowConfig[];
}

export interface JobScheduleConfig {
  cron?: string;
  enabled?: boolean;
  args?: string[];
  timeout?: Duration;
  catch_up?: boolean;
  ping_url?: string;
}

export interface SchedulesConfig {
  timezone?: string;
  catch_up: boolean;
  backup?: string | JobScheduleConfig;
  update?: string | JobScheduleConfig;
  restore_test?: string | JobScheduleConfig;
  monitor?: boolean | Duration | { enabled?: boolean; interval?: Duration; ping_url?: string };
}

export interface DaemonConfig {
  listen: string;
  port: number;
  token?: string;
  shutdown_timeout: number;
}

export interface MetricsConfig {
  textfile?: string;
}
