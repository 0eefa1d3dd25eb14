/**
 * The plugin host: finds plugins in the built-in folder and in plugins.d, checks each one
 * (file permissions, shape, apiVersion, schemas, options) before creating it, and keeps a
 * registry of what loaded and what failed and why. One bad plugin is reported and set
 * aside; it never stops the others.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type Semver from 'semver';
import { AutopilotError, describeError } from '../../lib/errors';
import { checkPermissions, runningAsRoot, unsafeReason } from '../../lib/trust';
import { execFile } from '../../lib/exec';
import { httpRequest } from '../../lib/http';
import type { Logger } from '../../lib/log';
import type { KeyValueStore } from '../../lib/state';
import { entrySchema, expandSecrets } from '../config/schema';
import { getValidator, type Validator } from '../config/validators';
import { hostVersion } from '../paths';
import { GuestProvider } from './guests';
import {
  PLUGIN_API_VERSION,
  type HypervisorPlugin,
  type HypervisorPluginDefinition,
  type JsonSchema,
  type NotificationPlugin,
  type PluginContext,
  type PluginDefinition,
  type PluginKind,
  type ServicePlugin,
} from './contract';

export type PluginSource = 'built-in' | 'plugins.d';

export interface PluginRecord {
  name: string;
  kind: PluginKind | null;
  version: string | null;
  apiVersion: string | null;
  description: string | null;
  source: PluginSource;
  file: string;
  status: 'loaded' | 'failed';
  reason: string | null;
}

interface Candidate {
  source: PluginSource;
  /** the file or folder found */
  location: string;
  /** the module to import */
  entry: string;
}

interface CheckedDefinition {
  def: PluginDefinition;
  record: PluginRecord;
  options?: { schema: JsonSchema; validate: Validator };
}

const KINDS: PluginKind[] = ['hypervisor', 'service', 'notification'];
const PLUGIN_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const CODE_FILE = /\.(c|m)?js$/;

// ---- discovery ---------------------------------------------------------------------------------

/** Built-in plugins live in <root>/<kind>s/<name>/index.js. */
export function builtinCandidates(root: string): Candidate[] {
  const out: Candidate[] = [];
  for (const kindDir of ['hypervisors', 'services', 'notifications']) {
    const dir = path.join(root, kindDir);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      const entry = path.join(dir, name, 'index.js');
      if (fs.existsSync(entry)) out.push({ source: 'built-in', location: path.join(dir, name), entry });
    }
  }
  return out;
}

/** plugins.d holds .js/.cjs/.mjs files and folders with a package.json. */
export function pluginsDirCandidates(dir: string, failures: PluginRecord[]): Candidate[] {
  const out: Candidate[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const full = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(full);
    } catch (e) {
      failures.push(failed(name, 'plugins.d', full, `cannot read it: ${describeError(e)}`));
      continue;
    }
    if (st.isFile() && CODE_FILE.test(name)) out.push({ source: 'plugins.d', location: full, entry: full });
    else if (st.isDirectory()) {
      const pkgFile = path.join(full, 'package.json');
      if (!fs.existsSync(pkgFile)) {
        failures.push(failed(name, 'plugins.d', full, 'a plugin folder needs a package.json (with "main" naming its entry file)'));
        continue;
      }
      try {
        const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { main?: string };
        const entry = path.resolve(full, pkg.main ?? 'index.js');
        const within = (p: string, dir: string): boolean => p.startsWith(dir + path.sep);
        const realFull = fs.realpathSync(full);
        if (!within(entry, full) || (fs.existsSync(entry) && !within(fs.realpathSync(entry), realFull))) {
          failures.push(
            failed(
              name,
              'plugins.d',
              full,
              `package.json "main" (${pkg.main}) points outside the plugin folder: a plugin must be self-contained`,
            ),
          );
          continue;
        }
        out.push({ source: 'plugins.d', location: full, entry });
      } catch (e) {
        failures.push(failed(name, 'plugins.d', full, `package.json is not valid JSON: ${describeError(e)}`));
      }
    }
  }
  return out;
}

function failed(name: string, source: PluginSource, file: string, reason: string, def?: Partial<PluginDefinition>): PluginRecord {
  return {
    name,
    kind: (def?.kind as PluginKind) ?? null,
    version: typeof def?.version === 'string' ? def.version : null,
    apiVersion: typeof def?.apiVersion === 'string' ? def.apiVersion : null,
    description: typeof def?.description === 'string' ? def.description : null,
    source,
    file,
    status: 'failed',
    reason,
  };
}

// ---- checking a definition -------------------------------------------------------------------------

let semverModule: typeof Semver | null = null;
function semver(): typeof Semver {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  semverModule ??= require('semver') as typeof Semver;
  return semverModule;
}

/** The schema a plugin's options or a service's keys are checked against, as the host uses it. */
export function effectiveSchema(schema: JsonSchema): JsonSchema {
  return { type: 'object', ...expandSecrets(schema) };
}

function compileSchema(schema: JsonSchema, what: string): { schema: JsonSchema; validate: Validator } {
  try {
    return { schema, validate: getValidator(schema) };
  } catch (e) {
    throw new Error(`${what} is not a valid JSON schema: ${describeError(e)}`);
  }
}

/**
 * The schemas the host validates against for a definition, in their final form: its options,
 * and the entry schema of a service or channel of its type (the build precompiles these for
 * built-ins; for others, compiling them here proves them valid before a config needs them).
 */
export function definitionSchemas(def: PluginDefinition): { what: string; schema: JsonSchema }[] {
  const out: { what: string; schema: JsonSchema }[] = [];
  if (def.optionsSchema !== undefined) out.push({ what: 'optionsSchema', schema: effectiveSchema(def.optionsSchema) });
  if (def.kind === 'service') out.push({ what: 'serviceSchema', schema: entrySchema('service', def.serviceSchema) });
  if (def.kind === 'notification') out.push({ what: 'channelSchema', schema: entrySchema('channel', def.channelSchema) });
  if (def.kind === 'hypervisor') {
    for (const [type, schema] of Object.entries(def.guestTypes ?? {}))
      out.push({ what: `guestTypes.${type}`, schema: entrySchema('service', schema) });
  }
  return out;
}

function checkDefinition(value: unknown, c: Candidate): CheckedDefinition | PluginRecord {
  const fallbackName = path.basename(c.location).replace(CODE_FILE, '');
  if (!value || typeof value !== 'object')
    return failed(
      fallbackName,
      c.source,
      c.location,
      'it exports no plugin definition (an object with name, kind, version, apiVersion and create)',
    );
  const def = value as Partial<PluginDefinition> & Record<string, unknown>;
  const name = typeof def.name === 'string' ? def.name : fallbackName;
  const bad = (reason: string): PluginRecord => failed(name, c.source, c.location, reason, def);
  if (typeof def.name !== 'string' || !PLUGIN_NAME.test(def.name))
    return bad(`'name' must be a plain name (letters, digits, '-', '_'), got ${JSON.stringify(def.name)}`);
  if (!KINDS.includes(def.kind as PluginKind)) return bad(`'kind' must be one of ${KINDS.join(', ')}, got ${JSON.stringify(def.kind)}`);
  // built-ins ship with this very version of the host: scripts/precompile.js checks their versions at build time (and semver costs ~15 ms to load)
  const checkVersions = c.source !== 'built-in' || process.env.HOMELAB_AUTOPILOT_CHECK_BUILTINS === '1';
  if (typeof def.version !== 'string' || (checkVersions && !semver().valid(def.version)))
    return bad(`'version' must be a semver version such as 1.0.0, got ${JSON.stringify(def.version)}`);
  if (typeof def.apiVersion !== 'string' || (checkVersions && !semver().validRange(def.apiVersion)))
    return bad(`'apiVersion' must be a semver range such as ^1.0.0, got ${JSON.stringify(def.apiVersion)}`);
  if (checkVersions && !semver().satisfies(PLUGIN_API_VERSION, def.apiVersion)) {
    return bad(
      `it needs plugin API ${def.apiVersion}, but this homelab-autopilot provides ${PLUGIN_API_VERSION}: update the plugin or homelab-autopilot`,
    );
  }
  if (typeof def.create !== 'function') return bad("'create' must be a function (ctx) => instance");
  let options: CheckedDefinition['options'];
  for (const key of ['optionsSchema', 'serviceSchema', 'channelSchema'] as const) {
    const part = (def as Record<string, unknown>)[key];
    if (part !== undefined && (!part || typeof part !== 'object' || Array.isArray(part))) return bad(`${key} must be a JSON schema object`);
  }
  const guestTypes = (def as Record<string, unknown>).guestTypes;
  if (guestTypes !== undefined) {
    if (def.kind !== 'hypervisor') return bad('guestTypes belongs to hypervisor plugins only');
    if (!guestTypes || typeof guestTypes !== 'object' || Array.isArray(guestTypes))
      return bad('guestTypes must map service type names to JSON schema objects');
    for (const [type, schema] of Object.entries(guestTypes)) {
      if (!PLUGIN_NAME.test(type)) return bad(`guestTypes: '${type}' is not a plain name (letters, digits, '-', '_')`);
      if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return bad(`guestTypes.${type} must be a JSON schema object`);
    }
  }
  for (const key of ['serviceSchema', 'channelSchema', 'guestTypes'] as const) {
    const part = (def as Record<string, unknown>)[key];
    if (part && /"\$(ref|id|defs)"|"definitions"/.test(JSON.stringify(part))) {
      return bad(
        `${key} must be self-contained: it becomes part of the config schema, where $ref, $id, $defs and definitions cannot resolve`,
      );
    }
  }
  try {
    for (const { what, schema } of definitionSchemas(def as PluginDefinition)) {
      if (c.source === 'built-in') {
        // precompiled and proven at build time (scripts/precompile.js): loaded when first used
        if (what === 'optionsSchema') {
          let v: Validator | null = null;
          const lazy = ((data: unknown) => (v ??= getValidator(schema))(data)) as Validator;
          Object.defineProperty(lazy, 'errors', { get: () => v?.errors ?? null });
          options = { schema, validate: lazy };
        }
        continue;
      }
      const compiled = compileSchema(schema, what);
      if (what === 'optionsSchema') options = compiled;
    }
  } catch (e) {
    return bad(describeError(e));
  }
  return {
    def: def as PluginDefinition,
    options,
    record: {
      name: def.name,
      kind: def.kind as PluginKind,
      version: def.version,
      apiVersion: def.apiVersion,
      description: typeof def.description === 'string' ? def.description : null,
      source: c.source,
      file: c.location,
      status: 'loaded',
      reason: null,
    },
  };
}

/** CommonJS files are required (cheap); ES modules (.mjs, "type": "module") are imported. */
async function loadModule(entry: string): Promise<Record<string, unknown>> {
  if (!entry.endsWith('.mjs')) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return { default: require(entry) as unknown };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw e;
    }
  }
  return (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
}

async function importCandidate(c: Candidate): Promise<unknown[]> {
  const mod = await loadModule(c.entry);
  let exp: unknown = mod.default ?? mod;
  if (exp && typeof exp === 'object' && !Array.isArray(exp)) {
    const o = exp as Record<string, unknown>;
    // a CommonJS module compiled from `export default` (TypeScript, Babel)
    if (o.__esModule && o.default) exp = o.default;
    else if (o.plugin) exp = o.plugin;
    else if (Array.isArray(o.plugins)) exp = o.plugins;
  }
  return Array.isArray(exp) ? exp : [exp];
}

export interface DiscoverOptions {
  builtinRoot: string;
  pluginsDir: string;
  /** whether to enforce root's ownership rules (default: when running as root) */
  asRoot?: boolean;
}

export interface Discovered {
  definitions: CheckedDefinition[];
  failures: PluginRecord[];
  pluginsDir: string;
}

/** The plugins whose schemas extend the config schema (service keys, channel keys). */
export function schemaPlugins(found: Discovered): {
  service: { name: string; serviceSchema?: JsonSchema }[];
  notification: { name: string; channelSchema?: JsonSchema }[];
} {
  const services = found.definitions
    .filter((d) => d.def.kind === 'service')
    .map((d) => ({ name: d.def.name, serviceSchema: (d.def as { serviceSchema?: JsonSchema }).serviceSchema }));
  // a hypervisor's guest types are service types too (a service plugin of the same name wins)
  const guests = found.definitions
    .filter((d) => d.def.kind === 'hypervisor')
    .flatMap((d) =>
      Object.entries((d.def as HypervisorPluginDefinition).guestTypes ?? {}).map(([name, serviceSchema]) => ({ name, serviceSchema })),
    )
    .filter((g) => !services.some((s) => s.name === g.name));
  return {
    service: [...services, ...guests],
    notification: found.definitions
      .filter((d) => d.def.kind === 'notification')
      .map((d) => ({ name: d.def.name, channelSchema: (d.def as { channelSchema?: JsonSchema }).channelSchema })),
  };
}

/** Imports and checks every plugin; creates none. */
export async function discoverPlugins(opts: DiscoverOptions): Promise<Discovered> {
  const asRoot = opts.asRoot ?? runningAsRoot();
  const failures: PluginRecord[] = [];
  const candidates = builtinCandidates(opts.builtinRoot);
  if (fs.existsSync(opts.pluginsDir)) {
    const dirProblem = unsafeReason(opts.pluginsDir, fs.statSync(opts.pluginsDir), asRoot);
    const found = pluginsDirCandidates(opts.pluginsDir, failures);
    if (dirProblem)
      for (const c of found) failures.push(failed(path.basename(c.location).replace(CODE_FILE, ''), c.source, c.location, dirProblem));
    else candidates.push(...found);
  }
  const definitions: CheckedDefinition[] = [];
  const byName = new Map<string, CheckedDefinition>();
  for (const c of candidates) {
    const fallbackName = path.basename(c.location).replace(CODE_FILE, '');
    if (c.source === 'plugins.d') {
      const why = checkPermissions(c.location, asRoot);
      if (why) {
        failures.push(failed(fallbackName, c.source, c.location, `refused: ${why}`));
        continue;
      }
    }
    let exported: unknown[];
    try {
      exported = await importCandidate(c);
    } catch (e) {
      const err = e as Error;
      const where = err.stack?.split('\n').find((l) => l.includes(c.location)) ?? '';
      failures.push(
        failed(
          fallbackName,
          c.source,
          c.location,
          `cannot load it: ${err.name === 'SyntaxError' ? 'syntax error: ' : ''}${err.message}${where ? ` (${where.trim()})` : ''}`,
        ),
      );
      continue;
    }
    for (const value of exported) {
      const checked = checkDefinition(value, c);
      if ('status' in checked) {
        failures.push(checked);
        continue;
      }
      const prev = byName.get(checked.def.name);
      if (prev) {
        failures.push({
          ...checked.record,
          status: 'failed',
          reason: `duplicate name: '${checked.def.name}' is already provided by ${prev.record.file}`,
        });
        continue;
      }
      byName.set(checked.def.name, checked);
      definitions.push(checked);
    }
  }
  return { definitions, failures, pluginsDir: opts.pluginsDir };
}

// ---- creation and the registry -----------------------------------------------------------------

type Instance = ServicePlugin | HypervisorPlugin | NotificationPlugin;

export interface LoadedPlugin {
  def: PluginDefinition;
  record: PluginRecord;
  instance: Instance;
}

export interface CreateOptions {
  /**
   * Each plugin's options, as the config stage made them (core/config/load.ts: validated
   * against the plugin's optionsSchema, defaults applied, paths and secrets resolved).
   */
  options: Record<string, Record<string, unknown>>;
  /** plugins whose options the config stage refused (bad options, a secret that failed): name -> reason; these are not created */
  optionFailures?: Record<string, string>;
  configDir: string;
  /** global.state_dir: plugins get <stateDir>/plugins/<name> */
  stateDir: string;
  logger: Logger;
  signal: AbortSignal;
  /** the plugin's store, opened when first used */
  store(plugin: string): KeyValueStore;
  /** ms create() may take */
  createTimeoutMs?: number;
}

export class PluginRegistry {
  private readonly providers = new Map<string, GuestProvider>();

  constructor(
    readonly loaded: LoadedPlugin[],
    readonly failures: PluginRecord[],
    readonly pluginsDir: string,
    /** `plugins:` entries naming no plugin */
    readonly warnings: string[] = [],
  ) {}

  get records(): PluginRecord[] {
    return [...this.loaded.map((p) => p.record), ...this.failures];
  }

  installed(kind: PluginKind): string[] {
    return this.loaded.filter((p) => p.def.kind === kind).map((p) => p.def.name);
  }

  find<T extends Instance>(kind: PluginKind, name: string): T | undefined {
    return this.loaded.find((p) => p.def.kind === kind && p.def.name === name)?.instance as T | undefined;
  }

  /** The hypervisor plugin whose guestTypes include a service type (when no service plugin has that name). */
  guestProvider(type: string): GuestProvider | undefined {
    if (this.find('service', type)) return undefined;
    const p = this.loaded.find(
      (l) => l.def.kind === 'hypervisor' && Object.hasOwn((l.def as HypervisorPluginDefinition).guestTypes ?? {}, type),
    );
    if (!p) return undefined;
    let g = this.providers.get(p.def.name);
    if (!g) this.providers.set(p.def.name, (g = new GuestProvider(p.def as HypervisorPluginDefinition, p.instance as HypervisorPlugin)));
    return g;
  }

  /** Whether some plugin handles services of this type. */
  handlesServiceType(type: string): boolean {
    return Boolean(this.find('service', type) || this.guestProvider(type));
  }

  /** The plugin a service needs, or an error saying why it is not there and what is installed. */
  require<T extends Instance>(kind: PluginKind, name: string, neededBy: string): T {
    const found = this.find<T>(kind, name);
    if (found) return found;
    const failure = this.failures.find((f) => f.name === name);
    const installed = this.installed(kind);
    if (failure) {
      throw new AutopilotError('PLUGIN_FAILED', `${neededBy} needs the ${kind} plugin '${name}', which failed to load: ${failure.reason}`, {
        hint: `fix ${failure.file}; 'homelab-autopilot plugins list' shows every plugin and why it failed`,
      });
    }
    throw new AutopilotError('PLUGIN_MISSING', `${neededBy} needs the ${kind} plugin '${name}', which is not installed`, {
      hint: `installed ${kind} plugins: ${installed.join(', ') || 'none'}; put a plugin into ${this.pluginsDir} or fix the type`,
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000}s`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** The archive tools a plugin gets (lib/archive.ts, loaded when first used). */
function archiveTools(runSignal: AbortSignal): PluginContext['archive'] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = (): typeof import('../../lib/archive') => require('../../lib/archive') as typeof import('../../lib/archive');
  return {
    async create(o) {
      const r = await lib().createArchive({
        sources: o.sources,
        exclude: o.exclude ?? [],
        compression: 'zstd',
        level: 3,
        threads: 1,
        dest: o.dest,
        signal: o.signal ?? runSignal,
      });
      return { path: r.path, size: r.size, sha256: r.sha256 };
    },
    async verify(file, expect, signal) {
      const v = await lib().verifyArchive(file, expect, { signal: signal ?? runSignal });
      return { ok: v.ok, error: v.error, entries: v.entries };
    },
    extract: (file, signal) => lib().extractArchive(file, signal ?? runSignal),
  };
}

/**
 * Creates each plugin with the options the config stage validated and resolved (options and
 * their secrets are the config's business: core/config/load.ts, one pass for all secrets);
 * failures are recorded, never thrown.
 */
export async function createPlugins(found: Discovered, opts: CreateOptions): Promise<PluginRegistry> {
  const loaded: LoadedPlugin[] = [];
  const failures = [...found.failures];
  for (const d of found.definitions) {
    const { def } = d;
    const refused = opts.optionFailures?.[def.name];
    if (refused !== undefined) {
      failures.push({ ...d.record, status: 'failed', reason: refused });
      continue;
    }
    const options = structuredClone(opts.options[def.name] ?? {});
    const logger = opts.logger.child(`plugin:${def.name}`);
    try {
      let store: KeyValueStore | null = null;
      const lazyStore = (): KeyValueStore => (store ??= opts.store(def.name));
      const ctx: PluginContext = {
        logger,
        store: {
          get: (k, f) => lazyStore().get(k, f),
          set: (k, v) => lazyStore().set(k, v),
          delete: (k) => lazyStore().delete(k),
          exists: (k) => lazyStore().exists(k),
        },
        signal: opts.signal,
        options,
        configDir: opts.configDir,
        dataDir: path.join(opts.stateDir, 'plugins', def.name),
        exec: (command, args, o = {}) =>
          execFile(command, args, {
            cwd: o.cwd,
            env: o.env ? { ...process.env, ...o.env } : undefined,
            input: o.input,
            timeoutMs: o.timeoutMs ?? 600_000,
            signal: o.signal ?? opts.signal,
          }),
        http: (request) => httpRequest({ ...request, signal: request.signal ?? opts.signal }),
        archive: archiveTools(opts.signal),
        host: { apiVersion: PLUGIN_API_VERSION, version: hostVersion() },
      };
      const instance = await withTimeout(Promise.resolve(def.create(ctx) as Promise<Instance>), opts.createTimeoutMs ?? 10_000, 'create()');
      if (!instance || typeof instance !== 'object') throw new Error('create() returned no plugin instance');
      if (def.kind === 'service' && typeof (instance as ServicePlugin).backupSources !== 'function')
        throw new Error('a service plugin instance needs a backupSources() method');
      if (def.kind === 'notification' && typeof (instance as NotificationPlugin).send !== 'function')
        throw new Error('a notification plugin instance needs a send() method');
      if (def.kind === 'hypervisor' && typeof (instance as HypervisorPlugin).guestStatus !== 'function')
        throw new Error('a hypervisor plugin instance needs a guestStatus() method');
      loaded.push({ def, record: d.record, instance });
    } catch (e) {
      const msg = describeError(e);
      failures.push({ ...d.record, status: 'failed', reason: `create() failed: ${msg}` });
    }
  }
  return new PluginRegistry(loaded, failures, found.pluginsDir);
}
