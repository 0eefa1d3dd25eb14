/** The `notifications` table: every notification sent, failed or held back by its cooldown. */
import { type Db, intOrNull, now, type Row, textOrNull } from './db';

export interface NotificationRecord {
  id: number;
  createdAt: string;
  channel: string;
  event: string;
  severity: string;
  subject: string;
  title: string;
  status: 'sent' | 'failed' | 'suppressed';
  attempts: number;
  error: string | null;
  runId: number | null;
}

export class NotificationsTable {
  constructor(private readonly db: Db) {}

  record(n: Omit<NotificationRecord, 'id' | 'createdAt'>): number {
    const res = this.db
      .stmt(
        'INSERT INTO notifications (created_at, channel, event, severity, subject, title, status, attempts, error, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(now(), n.channel, n.event, n.severity, n.subject, n.title, n.status, n.attempts, n.error, n.runId);
    return Number(res.lastInsertRowid);
  }

  /** Newest first. */
  list(opts: { channel?: string; limit?: number } = {}): NotificationRecord[] {
    const limit = opts.limit ?? 50;
    const rows = (
      opts.channel
        ? this.db.stmt('SELECT * FROM notifications WHERE channel = ? ORDER BY id DESC LIMIT ?').all(opts.channel, limit)
        : this.db.stmt('SELECT * FROM notifications ORDER BY id DESC LIMIT ?').all(limit)
    ) as Row[];
    return rows.map(toNotification);
  }
}

function toNotification(r: Row): NotificationRecord {
  return {
    id: Number(r.id),
    createdAt: String(r.created_at),
    channel: String(r.channel),
    event: String(r.event),
    severity: String(r.severity),
    subject: String(r.subject),
    title: String(r.title),
    status: r.status as NotificationRecord['status'],
    attempts: Number(r.attempts),
    error: textOrNull(r.error),
    runId: intOrNull(r.run_id),
  };
}
