/**
 * The `kv` table (JSON values under dotted keys), the plugins' namespaced `plugin_store`,
 * and typed accessors for the keys the engines share, so that no engine assembles a key itself.
 */
import { AutopilotError } from '../errors';
import { type Db, now } from './db';

/** A namespaced key/value store for one plugin. */
export interface KeyValueStore {
  get<T = unknown>(key: string, fallback?: T): T | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): void;
  exists(key: string): boolean;
}

export class KvTable {
  constructor(private readonly db: Db) {}

  get<T = unknown>(key: string, fallback?: T): T | undefined {
    const row = this.db.stmt('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : fallback;
  }

  set(key: string, value: unknown): void {
    if (value === undefined) throw new AutopilotError('STATE_FAILED', `cannot store undefined under '${key}'`);
    this.db
      .stmt(
        'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      )
      .run(key, JSON.stringify(value), now());
  }

  delete(key: string): void {
    this.db.stmt('DELETE FROM kv WHERE key = ?').run(key);
  }

  exists(key: string): boolean {
    return this.db.stmt('SELECT 1 FROM kv WHERE key = ?').get(key) !== undefined;
  }

  /** Every key under a dotted prefix: list('update.snapshots') gives { nextcloud: [...], app: [...] }. */
  list(prefix: string): Record<string, unknown> {
    const rows = this.db
      .stmt("SELECT key, value FROM kv WHERE substr(key, 1, length(?) + 1) = ? || '.' ORDER BY key")
      .all(prefix, prefix) as { key: string; value: string }[];
    const out: Record<string, unknown> = {};
    for (const r of rows) out[r.key.slice(prefix.length + 1)] = JSON.parse(r.value);
    return out;
  }
}

/** The store a plugin gets: its own namespace, invisible to others. */
export function pluginStore(db: Db, plugin: string): KeyValueStore {
  return {
    get<T>(key: string, fallback?: T): T | undefined {
      const row = db.stmt('SELECT value FROM plugin_store WHERE plugin = ? AND key = ?').get(plugin, key) as { value: string } | undefined;
      return row ? (JSON.parse(row.value) as T) : fallback;
    },
    set(key: string, value: unknown): void {
      db.stmt(
        'INSERT INTO plugin_store (plugin, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      ).run(plugin, key, JSON.stringify(value ?? null), now());
    },
    delete(key: string): void {
      db.stmt('DELETE FROM plugin_store WHERE plugin = ? AND key = ?').run(plugin, key);
    },
    exists(key: string): boolean {
      return db.stmt('SELECT 1 FROM plugin_store WHERE plugin = ? AND key = ?').get(plugin, key) !== undefined;
    },
  };
}

/**
 * The notification engine's cooldown: when an event was last sent about an incident, and which
 * failures are open. An incident is `<subject>#<severity>[:<cause>]` (the engine builds it), so
 * that a critical alert never waits behind a warning about the same subject. Keys:
 * `notify.last.<event>.<incident>`, `notify.failing.<event>.<incident>`; earlier versions keyed
 * by the bare subject, and such an open failure still ends with its recovery.
 */
export class CooldownStore {
  constructor(private readonly kv: KvTable) {}

  /** When `event` about `incident` was last delivered (ISO time), if ever. */
  lastSent(event: string, incident: string): string | undefined {
    return this.kv.get<string>(`notify.last.${event}.${incident}`);
  }

  markSent(event: string, incident: string, iso: string): void {
    this.kv.set(`notify.last.${event}.${incident}`, iso);
  }

  /** Whether a failure `event` about `incident` was reported and has not recovered yet. */
  isFailing(event: string, incident: string): boolean {
    return this.kv.exists(`notify.failing.${event}.${incident}`);
  }

  /** A failure was reported at `iso` (kept when it is already open). */
  markFailing(event: string, incident: string, iso: string): void {
    if (!this.isFailing(event, incident)) this.kv.set(`notify.failing.${event}.${incident}`, iso);
  }

  /** The open incidents of failure `event` about `subject`, whatever their severity or cause. */
  openIncidents(event: string, subject: string): string[] {
    return Object.keys(this.kv.list(`notify.failing.${event}`)).filter((k) => k === subject || k.startsWith(`${subject}#`));
  }

  clearFailing(event: string, incident: string): void {
    this.kv.delete(`notify.failing.${event}.${incident}`);
  }
}

/**
 * The snapshots an updater took of a service (`update.snapshots.<service>`), kept so that old
 * ones can be removed after a later good update. lib/ does not know the plugin contract's
 * snapshot type, so the caller names it; only `id` is read here.
 */
export class UpdateSnapshotStore {
  constructor(private readonly kv: KvTable) {}

  list<T extends { id: string }>(service: string): T[] {
    return this.kv.get<T[]>(`update.snapshots.${service}`) ?? [];
  }

  add<T extends { id: string }>(service: string, snap: T): void {
    this.kv.set(`update.snapshots.${service}`, [...this.list<T>(service), snap]);
  }

  /** Forgets snapshot `id` of `service` (the snapshot itself is the updater's to delete). */
  remove(service: string, id: string): void {
    this.kv.set(
      `update.snapshots.${service}`,
      this.list(service).filter((s) => s.id !== id),
    );
  }
}
