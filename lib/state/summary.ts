/**
 * What metrics read: the newest job run of each kind, the newest good backup of each service,
 * and notification counts, each in one query over its table (never one query per service or
 * check), so that a scrape stays fast however much state there is.
 */
import { type Db, type Row, textOrNull } from './db';

export interface JobSummary {
  kind: string;
  /** the newest finished top-level run of this kind (dry runs left out) */
  lastStatus: 'success' | 'failed' | 'interrupted';
  lastStartedAt: string;
  lastEndedAt: string;
  /** when the newest successful run ended (null: never) */
  lastSuccessAt: string | null;
  /** top-level runs of this kind running now */
  running: number;
}

export interface BackupSummary {
  service: string;
  /** where the newest one is */
  destination: string;
  size: number;
  createdAt: string;
}

export interface NotificationCount {
  channel: string;
  status: string;
  count: number;
}

export class SummaryQueries {
  constructor(private readonly db: Db) {}

  /** Per kind of top-level run (backup, update, monitor, restore_test...). */
  jobs(): JobSummary[] {
    const rows = this.db
      .stmt(
        `SELECT kind,
           (SELECT status FROM runs l WHERE l.kind = r.kind AND l.parent_id IS NULL AND l.dry_run = 0 AND l.status != 'running'
              ORDER BY l.id DESC LIMIT 1) AS last_status,
           (SELECT started_at || '|' || ended_at FROM runs l WHERE l.kind = r.kind AND l.parent_id IS NULL AND l.dry_run = 0
              AND l.status != 'running' ORDER BY l.id DESC LIMIT 1) AS last_times,
           max(CASE WHEN status = 'success' THEN ended_at END) AS last_success,
           sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running
         FROM runs r WHERE parent_id IS NULL AND dry_run = 0 GROUP BY kind ORDER BY kind`,
      )
      .all() as Row[];
    const out: JobSummary[] = [];
    for (const r of rows) {
      const status = textOrNull(r.last_status);
      const times = textOrNull(r.last_times);
      if (!status || !times) continue; // only running ones so far
      const [started, ended] = times.split('|');
      out.push({
        kind: String(r.kind),
        lastStatus: status as JobSummary['lastStatus'],
        lastStartedAt: started,
        lastEndedAt: ended || started,
        lastSuccessAt: textOrNull(r.last_success),
        running: Number(r.running ?? 0),
      });
    }
    return out;
  }

  /**
   * The newest backup of each service that was verified (or is left to a backup server's own
   * verification: `pending`) and is still there.
   */
  newestBackups(): BackupSummary[] {
    const rows = this.db
      .stmt(
        `SELECT service, destination, size, created_at FROM (
           SELECT service, destination, size, created_at,
             row_number() OVER (PARTITION BY service ORDER BY created_at DESC, id DESC) AS n
           FROM artifacts WHERE deleted_at IS NULL AND verify_status IN ('ok', 'pending'))
         WHERE n = 1 ORDER BY service`,
      )
      .all() as Row[];
    return rows.map((r) => ({
      service: String(r.service),
      destination: String(r.destination),
      size: Number(r.size),
      createdAt: String(r.created_at),
    }));
  }

  /** Notifications recorded, per channel and status (sent, failed, suppressed). */
  notificationCounts(): NotificationCount[] {
    const rows = this.db
      .stmt('SELECT channel, status, count(*) AS n FROM notifications GROUP BY channel, status ORDER BY channel, status')
      .all() as Row[];
    return rows.map((r) => ({ channel: String(r.channel), status: String(r.status), count: Number(r.n) }));
  }
}
