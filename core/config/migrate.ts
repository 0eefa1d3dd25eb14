/**
 * The config file's format version (`version:` at the top, default 1) and the migrations
 * between versions, in the spirit of zigbee2mqtt's settingsMigration: each entry of the table
 * turns the data of version N into version N+1. They run on the parsed data, in memory, before
 * validation, so that a file written for an older homelab-autopilot keeps working and the
 * user is told what to change; the file itself is never rewritten (it may be generated, kept
 * in git, or read-only). A file newer than this homelab-autopilot is refused: its keys may
 * mean something this version cannot know.
 */
import { AutopilotError } from '../../lib/errors';
import type { Locator } from './errors';
import { formatLocation } from './source';

/** The config format this homelab-autopilot reads and writes in its docs. */
export const CONFIG_VERSION = 1;

export type ConfigPath = (string | number)[];

export interface MigrationContext {
  /**
   * Moves the value at `from` to `to` (creating mappings on the way), and records the move so
   * that an error about `to` is reported at the line where the file has `from`. Returns
   * whether there was a value to move.
   */
  move(from: ConfigPath, to: ConfigPath): boolean;
  /** The value at a path, or undefined. */
  get(path: ConfigPath): unknown;
  /** One change the user should make to the file, e.g. "rename backup.foo to backup.bar". */
  note(text: string): void;
}

export interface Migration {
  /** the version it migrates from; it produces from + 1 */
  from: number;
  /** one line: what changed in the format */
  summary: string;
  /** changes `data` in place, through ctx for moves (so that error lines stay right) */
  migrate(data: Record<string, unknown>, ctx: MigrationContext): void;
}

/**
 * The migrations, version N -> N+1, in order. Empty while the format is at version 1; a
 * change of the format adds an entry here and raises CONFIG_VERSION.
 */
export const MIGRATIONS: readonly Migration[] = [];

export interface MigrateOptions {
  /** for tests: another table */
  migrations?: readonly Migration[];
  /** for tests: another current version */
  current?: number;
}

export interface Migrated {
  /** the version the file was written for */
  from: number;
  /** the migrated data (the same object, changed in place) */
  data: Record<string, unknown>;
  /** a locator that maps moved paths back to where they are in the file */
  locator: Locator;
  /** one warning per migrated file, saying how to update it; empty when nothing was migrated */
  warnings: string[];
}

const isMapping = (v: unknown): v is Record<string | number, unknown> => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

function getAt(data: unknown, path: ConfigPath): unknown {
  let cur = data;
  for (const seg of path) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

/**
 * Brings the data of a config file to the current version. `version` itself is left for the
 * schema to check unless it is a whole number: a version that is not a number cannot be
 * migrated, and the schema says what is wrong with it.
 */
export function migrateConfig(data: Record<string, unknown>, locator: Locator, file: string, opts: MigrateOptions = {}): Migrated {
  const migrations = opts.migrations ?? MIGRATIONS;
  const current = opts.current ?? CONFIG_VERSION;
  const declared = data.version;
  const from = declared === undefined ? 1 : declared;
  if (typeof from !== 'number' || !Number.isInteger(from) || from < 1) return { from: 1, data, locator, warnings: [] };
  if (from > current) {
    throw new AutopilotError('CONFIG_INVALID', `${file} is written for a newer homelab-autopilot`, {
      details: [
        `${formatLocation(locator(['version']))}: version: this file is in config format version ${from}, but this homelab-autopilot reads versions up to ${current}`,
      ],
      hint: `upgrade homelab-autopilot to a release that reads config version ${from} (its release notes say which), or rewrite the file for version ${current}`,
    });
  }
  if (from === current) return { from, data, locator, warnings: [] };

  // moves, newest last: a path asked for by the validator is mapped back through them in reverse
  const moves: { from: ConfigPath; to: ConfigPath }[] = [];
  const notes: string[] = [];
  const ctx: MigrationContext = {
    get: (path) => getAt(data, path),
    move(src, dest) {
      const parent = getAt(data, src.slice(0, -1));
      const last = src[src.length - 1];
      if (!isMapping(parent) && !Array.isArray(parent)) return false;
      if (!Object.hasOwn(parent, last)) return false;
      const value = (parent as Record<string | number, unknown>)[last];
      delete (parent as Record<string | number, unknown>)[last];
      let cur: Record<string | number, unknown> = data;
      for (const seg of dest.slice(0, -1)) {
        if (!isMapping(cur[seg]) && !Array.isArray(cur[seg])) cur[seg] = {};
        cur = cur[seg] as Record<string | number, unknown>;
      }
      cur[dest[dest.length - 1]] = value;
      moves.push({ from: src, to: dest });
      return true;
    },
    note: (text) => void notes.push(text),
  };
  for (let v = from; v < current; v++) {
    const m = migrations.find((x) => x.from === v);
    if (!m) {
      // a gap in the table is a bug of ours, not of the file
      throw new AutopilotError('INTERNAL', `no migration of the config format from version ${v} to ${v + 1}`);
    }
    const before = notes.length;
    m.migrate(data, ctx);
    if (notes.length === before) notes.push(m.summary);
  }
  data.version = current;

  const startsWith = (p: ConfigPath, prefix: ConfigPath): boolean => prefix.length <= p.length && prefix.every((s, i) => p[i] === s);
  const back = (p: ConfigPath): ConfigPath => {
    let out = p;
    for (let i = moves.length - 1; i >= 0; i--) {
      const m = moves[i];
      if (startsWith(out, m.to)) out = [...m.from, ...out.slice(m.to.length)];
    }
    return out;
  };
  const migratedLocator: Locator = (p, key) => {
    if (key === undefined) return locator(back(p));
    const full = back([...p, key]);
    const last = full[full.length - 1];
    return typeof last === 'string' ? locator(full.slice(0, -1), last) : locator(full);
  };
  const where = declared === undefined ? file : formatLocation(locator(['version']));
  const warnings = [
    `${where}: ${declared === undefined ? '(no version: key, so version 1)' : `version: ${from}`}: this file is in config format version ${from}; homelab-autopilot now reads version ${current} and migrated it in memory. To update the file (and silence this warning): ${notes.join('; ')}; then set 'version: ${current}' at the top`,
  ];
  return { from, data, locator: migratedLocator, warnings };
}
