/**
 * Schema migrations, applied in order by PRAGMA user_version, each in its own transaction.
 * Append only: never edit a migration that has shipped.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: key/value, runs, backup artifacts, plugin store, job locks
  `
  CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER REFERENCES runs(id),
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed', 'interrupted')),
    dry_run INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    summary TEXT
  );
  CREATE INDEX runs_started ON runs (started_at);
  CREATE INDEX runs_parent ON runs (parent_id);
  CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER REFERENCES runs(id),
    service TEXT NOT NULL,
    destination TEXT NOT NULL,
    location TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    created_at TEXT NOT NULL,
    verified_at TEXT,
    verify_result TEXT,
    protected INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1)),
    deleted_at TEXT,
    UNIQUE (destination, location)
  );
  CREATE INDEX artifacts_service ON artifacts (service, created_at);
  CREATE TABLE plugin_store (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
  );
  CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    proc_start TEXT,
    acquired_at TEXT NOT NULL,
    command TEXT
  );
  `,
  // 2: the start time of the process of a run, so that a reused PID does not keep a dead run 'running'
  `
  ALTER TABLE runs ADD COLUMN proc_start TEXT;
  `,
  // 3: every notification sent, failed or held back by its cooldown
  `
  CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sent', 'failed', 'suppressed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    run_id INTEGER REFERENCES runs(id)
  );
  CREATE INDEX notifications_created ON notifications (created_at);
  `,
  // 4: the steps of a run (an update's pre-checks, snapshot, update, validation, rollback), with timings
  `
  CREATE TABLE run_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed', 'skipped', 'interrupted')),
    detail TEXT
  );
  CREATE INDEX run_steps_run ON run_steps (run_id);
  `,
  // 5: an artifact's verification as a status and a detail, instead of 'ok: …' / 'pending: …' /
  // 'failed: …' strings every reader had to decode; the old strings are split into the new columns.
  // verify_result stays as it was, no longer read or written: the original text remains there to inspect.
  // A string with none of the three prefixes (never written) counts as not verified, its text kept.
  `
  ALTER TABLE artifacts ADD COLUMN verify_status TEXT CHECK (verify_status IN ('ok', 'pending', 'failed'));
  ALTER TABLE artifacts ADD COLUMN verify_detail TEXT;
  UPDATE artifacts SET verify_status = 'ok', verify_detail = NULLIF(ltrim(substr(verify_result, 4)), '')
    WHERE verify_result = 'ok' OR substr(verify_result, 1, 3) = 'ok:';
  UPDATE artifacts SET verify_status = 'pending', verify_detail = NULLIF(ltrim(substr(verify_result, 9)), '')
    WHERE verify_result = 'pending' OR substr(verify_result, 1, 8) = 'pending:';
  UPDATE artifacts SET verify_status = 'failed', verify_detail = NULLIF(ltrim(substr(verify_result, 8)), '')
    WHERE verify_result = 'failed' OR substr(verify_result, 1, 7) = 'failed:';
  UPDATE artifacts SET verify_detail = verify_result WHERE verify_status IS NULL AND verify_result IS NOT NULL;
  `,
  // 6: the warnings a backup ended with (a vzdump task that ended with 'WARNINGS: n'), so listings show them
  `
  ALTER TABLE artifacts ADD COLUMN warning TEXT;
  `,
  // 7: the monitor: each check's current state (what it shows, and its health under it: a check
  // in MAINTENANCE or FLAPPING is still UP or DOWN underneath), raw results (kept a day), hourly
  // and daily aggregates (uptime, p50/p95), every transition of either, and maintenance
  // (manual, or our own work on a service).
  // Results and aggregates are WITHOUT ROWID tables: a few bytes a row. Results are keyed by
  // (time, check), so that a result is appended at the end and old ones go from the front;
  // aggregates by (check, period, start), read per check.
  `
  CREATE TABLE monitor_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('UP', 'DOWN', 'PENDING', 'MAINTENANCE', 'FLAPPING')),
    health TEXT NOT NULL DEFAULT 'PENDING' CHECK (health IN ('UP', 'DOWN', 'PENDING')),
    since TEXT NOT NULL,
    fails INTEGER NOT NULL DEFAULT 0,
    oks INTEGER NOT NULL DEFAULT 0,
    last_at TEXT,
    last_ok INTEGER CHECK (last_ok IN (0, 1)),
    last_ms INTEGER,
    last_detail TEXT,
    last_value REAL,
    last_warning TEXT,
    last_ok_at TEXT,
    seen_at TEXT NOT NULL
  );
  CREATE INDEX monitor_checks_subject ON monitor_checks (subject);
  CREATE TABLE monitor_results (
    check_id INTEGER NOT NULL,
    at INTEGER NOT NULL, -- epoch milliseconds (aggregates: epoch seconds)
    ok INTEGER NOT NULL,
    ms INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (at, check_id)
  ) WITHOUT ROWID;
  CREATE TABLE monitor_aggregates (
    check_id INTEGER NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('h', 'd')),
    start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    p50 INTEGER,
    p95 INTEGER,
    value REAL,
    PRIMARY KEY (check_id, period, start)
  ) WITHOUT ROWID;
  CREATE TABLE monitor_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('state', 'health')),
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
  );
  CREATE INDEX monitor_transitions_check ON monitor_transitions (check_id, at);
  CREATE TABLE maintenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('manual', 'work')),
    run_id INTEGER REFERENCES runs(id),
    ended_at TEXT
  );
  CREATE INDEX maintenance_subject ON maintenance (subject, ends_at);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
