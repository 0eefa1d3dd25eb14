/**
 * The `artifacts` table: every archive and copy a backup made, with its verification, its
 * protection from retention and when retention deleted it. Guest backups have a destination
 * `<prefix>:<storage>` (e.g. `pve:local`), the hypervisor's volume id as location and no sha256.
 */
import { type Db, intOrNull, now, type Row, textOrNull } from './db';

/** What verification found: `pending` when another system verifies later (e.g. a backup server's verify jobs). */
export type VerifyStatus = 'ok' | 'pending' | 'failed';

export interface ArtifactRecord {
  id: number;
  runId: number | null;
  service: string;
  destination: string;
  location: string;
  size: number;
  sha256: string | null;
  createdAt: string;
  verifiedAt: string | null;
  /** null: not verified */
  verifyStatus: VerifyStatus | null;
  /** what verification saw or why it failed, for people (e.g. '12 entries') */
  verifyDetail: string | null;
  protected: boolean;
  deletedAt: string | null;
  /** the warnings the backup ended with (null: none) */
  warning: string | null;
}

export type NewArtifact = Omit<
  ArtifactRecord,
  'id' | 'verifiedAt' | 'verifyStatus' | 'verifyDetail' | 'protected' | 'deletedAt' | 'warning'
> &
  Partial<Pick<ArtifactRecord, 'verifiedAt' | 'verifyStatus' | 'verifyDetail' | 'protected' | 'warning'>>;

export interface ListArtifactsOptions {
  service?: string;
  destination?: string;
  /** also those retention deleted */
  includeDeleted?: boolean;
}

export class ArtifactsTable {
  constructor(private readonly db: Db) {}

  /**
   * Records an artifact; one recorded before at the same destination and location (a file
   * written again under the same name) is replaced, and no longer counts as deleted.
   */
  add(a: NewArtifact): number {
    const res = this.db
      .stmt(
        `INSERT INTO artifacts (run_id, service, destination, location, size, sha256, created_at, verified_at, verify_status, verify_detail, protected, warning)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(destination, location) DO UPDATE SET run_id = excluded.run_id, size = excluded.size, sha256 = excluded.sha256,
           created_at = excluded.created_at, verified_at = excluded.verified_at, verify_status = excluded.verify_status,
           verify_detail = excluded.verify_detail, warning = excluded.warning, deleted_at = NULL`,
      )
      .run(
        a.runId,
        a.service,
        a.destination,
        a.location,
        a.size,
        a.sha256,
        a.createdAt,
        a.verifiedAt ?? null,
        a.verifyStatus ?? null,
        a.verifyDetail ?? null,
        a.protected ? 1 : 0,
        a.warning ?? null,
      );
    return Number(res.lastInsertRowid);
  }

  markDeleted(id: number): void {
    this.db.stmt('UPDATE artifacts SET deleted_at = ? WHERE id = ?').run(now(), id);
  }

  get(id: number): ArtifactRecord | null {
    const row = this.db.stmt('SELECT * FROM artifacts WHERE id = ?').get(id) as Row | undefined;
    return row ? toArtifact(row) : null;
  }

  setProtected(id: number, value: boolean): void {
    this.db.stmt('UPDATE artifacts SET protected = ? WHERE id = ?').run(value ? 1 : 0, id);
  }

  /** Newest first. */
  list(opts: ListArtifactsOptions = {}): ArtifactRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.service) {
      where.push('service = ?');
      args.push(opts.service);
    }
    if (opts.destination) {
      where.push('destination = ?');
      args.push(opts.destination);
    }
    if (!opts.includeDeleted) where.push('deleted_at IS NULL');
    const sql = `SELECT * FROM artifacts ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC, id DESC`;
    return (this.db.stmt(sql).all(...args) as Row[]).map(toArtifact);
  }
}

function toArtifact(r: Row): ArtifactRecord {
  return {
    id: Number(r.id),
    runId: intOrNull(r.run_id),
    service: String(r.service),
    destination: String(r.destination),
    location: String(r.location),
    size: Number(r.size),
    sha256: textOrNull(r.sha256),
    createdAt: String(r.created_at),
    verifiedAt: textOrNull(r.verified_at),
    // the column's CHECK constraint admits only these values (or NULL)
    verifyStatus: textOrNull(r.verify_status) as VerifyStatus | null,
    verifyDetail: textOrNull(r.verify_detail),
    protected: r.protected === 1,
    deletedAt: textOrNull(r.deleted_at),
    warning: textOrNull(r.warning),
  };
}
