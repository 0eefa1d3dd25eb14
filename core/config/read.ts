/**
 * Reading the raw config: parses the main file and the services.d/*.yaml files beside it with
 * positions (so that every error names file:line:col), merges their services, reports a
 * service defined twice, interpolates ${ENV}, and migrates an older format in memory. Only a
 * main file that cannot be parsed stops here; the other problems of this stage (services.d
 * files, duplicates, unset variables) are handed on in `errors`, so that validate.ts reports
 * them with its own in one list.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutopilotError } from '../../lib/errors';
import { configInvalid, type Locator } from './errors';
import { MODULE_NAME, type FoundConfig } from './find';
import { migrateConfig, type MigrateOptions } from './migrate';
import { formatLocation, locate, parseSource, type SourceFile } from './source';

interface ServiceOrigin {
  src: SourceFile;
  /** path of the service mapping inside its file */
  at: (string | number)[];
}

export interface RawConfig {
  file: string;
  dir: string;
  main: SourceFile;
  /** the path of the config inside the main file ([] or ['homelab-autopilot'] for package.json) */
  mainPrefix: (string | number)[];
  extraFiles: string[];
  /** the data, in the current config format (older files are migrated in memory) */
  data: Record<string, unknown>;
  serviceOrigins: ServiceOrigin[];
  locator: Locator;
  /** the config format version the file is written in */
  fileVersion: number;
  /** how to update a migrated file */
  warnings: string[];
  /** problems found while reading (`file:line:col: path: message`), reported with validation's */
  errors: string[];
}

function readSource(file: string): SourceFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new AutopilotError('CONFIG_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`);
  }
  return parseSource(file, text);
}

const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${VAR} and ${VAR:-default} in every string; $${ writes a literal ${. */
function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  at: (string | number)[],
  missing: (path: (string | number)[], name: string) => void,
): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    return value.replace(ENV_REF, (m, name: string | undefined, def: string | undefined) => {
      if (m === '$${') return '${';
      const v = env[name as string];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      missing(at, name as string);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...at, i], missing));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, [...at, k], missing);
    return out;
  }
  return value;
}

/**
 * services.d/*.yaml beside the main file: each holds one service mapping, or `services: [...]`.
 * Their services are appended to root.services (with their origins); returns the files read.
 */
function readServicesDir(dir: string, root: Record<string, unknown>, serviceOrigins: ServiceOrigin[], errors: string[]): string[] {
  const extraFiles: string[] = [];
  const sdir = path.join(dir, 'services.d');
  if (!fs.existsSync(sdir) || !fs.statSync(sdir).isDirectory()) return extraFiles;
  const files = fs
    .readdirSync(sdir)
    .filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.'))
    .sort();
  for (const f of files) {
    const file = path.join(sdir, f);
    extraFiles.push(file);
    const src = readSource(file);
    if (src.syntaxErrors.length) {
      errors.push(...src.syntaxErrors);
      continue;
    }
    const content = src.data;
    if (content === null || content === undefined) continue;
    if (typeof content !== 'object' || Array.isArray(content)) {
      errors.push(
        `${formatLocation(locate(src, []))}: a services.d file holds one service (a mapping with name and type) or 'services:' with a list`,
      );
      continue;
    }
    const obj = content as Record<string, unknown>;
    const list: { value: unknown; at: (string | number)[] }[] = [];
    if ('services' in obj) {
      const others = Object.keys(obj).filter((k) => k !== 'services');
      for (const k of others)
        errors.push(`${formatLocation(locate(src, [], k))}: ${k}: unknown key '${k}': a services.d file may only hold 'services'`);
      if (!Array.isArray(obj.services)) errors.push(`${formatLocation(locate(src, ['services']))}: services: must be a list`);
      else obj.services.forEach((v, i) => list.push({ value: v, at: ['services', i] }));
    } else list.push({ value: obj, at: [] });
    if (!Array.isArray(root.services)) root.services = root.services === undefined ? [] : root.services;
    if (Array.isArray(root.services)) {
      for (const item of list) {
        (root.services as unknown[]).push(item.value);
        serviceOrigins.push({ src, at: item.at });
      }
    }
  }
  return extraFiles;
}

/** A service defined twice is an error naming both places. */
function duplicateServiceErrors(services: unknown, locator: Locator): string[] {
  const out: string[] = [];
  if (!Array.isArray(services)) return out;
  const firstSeen = new Map<string, number>();
  (services as unknown[]).forEach((svc, i) => {
    const name = svc && typeof svc === 'object' ? (svc as Record<string, unknown>).name : undefined;
    if (typeof name !== 'string') return;
    const prev = firstSeen.get(name);
    if (prev === undefined) firstSeen.set(name, i);
    else {
      out.push(
        `${formatLocation(locator(['services', i, 'name']))}: services[${i}].name: service '${name}' is defined twice: here and at ${formatLocation(locator(['services', prev, 'name']))}; rename or remove one`,
      );
    }
  });
  return out;
}

/**
 * Reads the config found: the main file, then services.d, duplicates, ${ENV}. A main file that
 * does not parse is refused here (CONFIG_INVALID, with every syntax error); the other problems
 * come back in `errors`. The data comes back in the current format (migrated in memory).
 */
export function readRawConfig(found: FoundConfig, env: NodeJS.ProcessEnv = process.env, migrate: MigrateOptions = {}): RawConfig {
  const main = readSource(found.file);
  const dir = path.dirname(found.file);
  const mainPrefix = found.packageProp ? [MODULE_NAME] : [];
  const errors: string[] = [...main.syntaxErrors];
  let data: unknown = main.syntaxErrors.length ? {} : main.data;
  if (found.packageProp) data = (data as Record<string, unknown>)[MODULE_NAME];
  if (!main.syntaxErrors.length && (data === null || data === undefined)) {
    throw new AutopilotError('CONFIG_INVALID', `${found.file} is empty`, { hint: 'start from examples/quickstart.yaml' });
  }
  if (!main.syntaxErrors.length && (typeof data !== 'object' || Array.isArray(data))) {
    errors.push(`${formatLocation(locate(main, mainPrefix))}: the config must be a mapping of sections (global, backup, services, …)`);
    data = {};
  }
  const root = data as Record<string, unknown>;
  const serviceOrigins: ServiceOrigin[] = [];
  if (Array.isArray(root.services)) root.services.forEach((_, i) => serviceOrigins.push({ src: main, at: [...mainPrefix, 'services', i] }));
  const extraFiles = readServicesDir(dir, root, serviceOrigins, errors);

  const locator: Locator = (p, key) => {
    if (p[0] === 'services' && typeof p[1] === 'number' && serviceOrigins[p[1]]) {
      const o = serviceOrigins[p[1]];
      return locate(o.src, [...o.at, ...p.slice(2)], key);
    }
    return locate(main, [...mainPrefix, ...p], key);
  };
  errors.push(...duplicateServiceErrors(root.services, locator));

  const interpolated = interpolate(root, env, [], (p, name) => {
    errors.push(
      `${formatLocation(locator(p))}: ${p.length ? p.join('.') : '(top level)'}: environment variable ${name} is not set (use \${${name}:-default} for a default)`,
    );
  }) as Record<string, unknown>;

  // nothing to validate without the main file: stop at its syntax errors
  if (main.syntaxErrors.length) throw configInvalid(errors, [found.file, ...extraFiles]);
  // before anything reads the data (plugins_dir, validation): the rest of the code knows only the current format
  const migrated = migrateConfig(interpolated, locator, found.file, migrate);
  return {
    file: found.file,
    dir,
    main,
    mainPrefix,
    extraFiles,
    data: migrated.data,
    serviceOrigins,
    locator: migrated.locator,
    fileVersion: migrated.from,
    warnings: migrated.warnings,
    errors,
  };
}
