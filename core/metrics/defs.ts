/**
 * Every metric: its name (after the prefix), kind, labels and help. docs/metrics.md describes
 * the same list for people; keep the two together.
 */
export const PREFIX = 'homelab_autopilot_';

const CHECK = ['subject', 'check', 'type'] as const;

export const METRIC_DEFS = {
  buildInfo: { name: 'build_info', kind: 'gauge', labels: ['version'], help: 'Always 1; the version of homelab-autopilot.' },
  checkUp: {
    name: 'check_up',
    kind: 'gauge',
    labels: CHECK,
    help: '1 when the check is UP, 0 when it is DOWN or FLAPPING; absent while PENDING or in MAINTENANCE.',
  },
  checkState: {
    name: 'check_state',
    kind: 'gauge',
    labels: [...CHECK, 'state'],
    help: 'The state of the check: 1 for its current state (UP, DOWN, PENDING, MAINTENANCE, FLAPPING), 0 for the others.',
  },
  checkResponse: { name: 'check_response_seconds', kind: 'gauge', labels: CHECK, help: 'How long the last run of the check took.' },
  checkValue: {
    name: 'check_value',
    kind: 'gauge',
    labels: CHECK,
    help: 'The value the last run of the check measured (disk: used percent; memory: used percent; load per CPU; certificate: days left).',
  },
  checkLastOk: {
    name: 'check_last_ok_timestamp_seconds',
    kind: 'gauge',
    labels: CHECK,
    help: 'When the check last succeeded (Unix time).',
  },
  jobLastSuccess: {
    name: 'job_last_success_timestamp_seconds',
    kind: 'gauge',
    labels: ['kind'],
    help: 'When the newest successful run of the job ended (Unix time).',
  },
  jobLastRun: {
    name: 'job_last_run_timestamp_seconds',
    kind: 'gauge',
    labels: ['kind'],
    help: 'When the newest run of the job ended (Unix time).',
  },
  jobLastDuration: {
    name: 'job_last_run_duration_seconds',
    kind: 'gauge',
    labels: ['kind'],
    help: 'How long the newest finished run of the job took.',
  },
  jobLastStatus: {
    name: 'job_last_status',
    kind: 'gauge',
    labels: ['kind', 'status'],
    help: 'How the newest finished run of the job ended: 1 for its status (success, failed, interrupted), 0 for the others.',
  },
  jobRunning: { name: 'job_running', kind: 'gauge', labels: ['kind'], help: 'Runs of the job under way now.' },
  backupSize: {
    name: 'backup_last_size_bytes',
    kind: 'gauge',
    labels: ['service'],
    help: 'The size of the newest verified backup of the service.',
  },
  backupTime: {
    name: 'backup_last_timestamp_seconds',
    kind: 'gauge',
    labels: ['service'],
    help: 'When the newest verified backup of the service was made (Unix time).',
  },
  fsUsedRatio: {
    name: 'filesystem_used_ratio',
    kind: 'gauge',
    labels: ['path'],
    help: 'Used space of the file system holding the path, 0 to 1 (as df counts it).',
  },
  fsAvail: {
    name: 'filesystem_avail_bytes',
    kind: 'gauge',
    labels: ['path'],
    help: 'Space left for this user on the file system holding the path.',
  },
  fsSize: { name: 'filesystem_size_bytes', kind: 'gauge', labels: ['path'], help: 'The size of the file system holding the path.' },
  notifications: {
    name: 'notifications_total',
    kind: 'counter',
    labels: ['channel', 'status'],
    help: 'Notifications recorded in state per channel and status (sent, failed, suppressed by a cooldown).',
  },
} as const satisfies Record<string, { name: string; kind: 'gauge' | 'counter'; labels: readonly string[]; help: string }>;

export type MetricDefs = typeof METRIC_DEFS;
