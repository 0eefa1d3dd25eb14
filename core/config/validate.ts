/**
 * Validating the raw config: the whole file against the config schema (with the discovered
 * hypervisor plugins' backup: keys), each service and channel against its type's entry schema,
 * what a schema cannot say (duplicate names, destination folders, regular expressions), each
 * plugin's options; then defaults applied, paths and secrets resolved in one pass, and a
 * masked copy for display. Every stage runs whatever an earlier one found, and all their
 * problems (with those of reading) are reported at once, sorted by file and line.
 */
import * as path from 'node:path';
import { splitCommandLine } from '../../lib/exec';
import { MASK } from '../../lib/mask';
import { configInvalid, displayPath, formatAjvErrors, pointerToPath, type Locator } from './errors';
import type { ConfigPlugins } from './plugins';
import type { RawConfig } from './read';
import { buildConfigSchema, collect, entrySchema, expandSecrets, type BackupKeys, type Collected, type SchemaPlugin } from './schema';
import { getValidator, type Validator } from './validators';
import { monitoringErrors } from './monitoring-checks';
import { resolveCollected } from './secrets';
import { formatLocation } from './source';
import type { AutopilotConfig } from './types';
import type { JsonSchema } from '../plugins/contract';
import { pseudoRootOf } from '../../lib/fsx';

export interface LoadedConfig {
  file: string;
  dir: string;
  extraFiles: string[];
  /** the format version the file is written in (config.version is the current one) */
  fileVersion: number;
  config: AutopilotConfig;
  /** the resolved config with every secret replaced by ******** */
  masked: AutopilotConfig;
  warnings: string[];
  locator: Locator;
  /** whether `*_file` / `*_command` secrets were read and run (ValidateOptions.secrets) */
  secretsResolved: boolean;
  /**
   * Each discovered plugin's options, from `plugins.<name>` (or {}): validated against its
   * options schema, defaults applied, paths and (when secretsResolved) secrets resolved. What
   * createPlugins hands to each plugin. A plugin in pluginFailures has none.
   */
  pluginOptions: Record<string, Record<string, unknown>>;
  /**
   * Plugins whose options are wrong (`bad options: file:line:col: …`) or whose option secrets
   * could not be resolved: name -> reason. Not a config error: that plugin alone is not
   * created (createPlugins records the reason) and the others go on.
   */
  pluginFailures: Record<string, string>;
  /** the config lines behind pluginFailures (`file:line:col: plugins.<name>.<key>: message`), for `config validate` */
  pluginProblems: string[];
}

export interface ValidateOptions {
  signal?: AbortSignal;
  /**
   * false: `*_file` secrets are not read nor `*_command` secrets run (they stay as written);
   * paths are still resolved. For commands that only read state. Default true.
   */
  secrets?: boolean;
}

/** Checks each service and channel against its type's entry schema; returns the error lines and what to resolve. */
function validateEntries(
  data: Record<string, unknown>,
  raw: RawConfig,
  servicePlugins: SchemaPlugin[],
  channelPlugins: SchemaPlugin[],
): { lines: string[]; collected: Collected[] } {
  const lines: string[] = [];
  const collected: Collected[] = [];
  const groups: { list: unknown; plugins: SchemaPlugin[]; kind: 'service' | 'channel'; at: string[] }[] = [
    { list: data.services, plugins: servicePlugins, kind: 'service', at: ['services'] },
    {
      list: (data.notifications as Record<string, unknown> | undefined)?.channels,
      plugins: channelPlugins,
      kind: 'channel',
      at: ['notifications', 'channels'],
    },
  ];
  for (const g of groups) {
    if (!Array.isArray(g.list)) continue;
    g.list.forEach((item: unknown, i) => {
      const type = item && typeof item === 'object' ? (item as Record<string, unknown>).type : undefined;
      // an unknown type is reported with the plugins that are installed (core/app.ts)
      const plugin = g.plugins.find((p) => p.name === type);
      if (!plugin) return;
      const schema = entrySchema(g.kind, g.kind === 'service' ? plugin.serviceSchema : plugin.channelSchema);
      const validate = getValidator(schema);
      if (!validate(item)) lines.push(...formatAjvErrors(validate.errors ?? [], raw.locator, { schema, data: item }, [...g.at, i]));
      // its secrets too, valid or not: a secret that fails is one more problem to report now
      collected.push(collect(schema, item, `/${g.at.join('/')}/${i}`));
    });
  }
  return { lines, collected };
}

function mergeCollected(all: Collected[]): Collected {
  return {
    secretSources: all.flatMap((c) => c.secretSources),
    secretValues: all.flatMap((c) => c.secretValues),
    paths: all.flatMap((c) => c.paths),
  };
}

/** What a schema cannot say: destination names and folders that would mix up archives. */
function semanticErrors(config: AutopilotConfig, locator: Locator): string[] {
  const out: string[] = [];
  const dests = config.backup?.destinations ?? [];
  const seen = new Map<string, number>();
  dests.forEach((d, i) => {
    if (typeof d?.name !== 'string') return; // the schema's error names it
    const at = (key: string): string => `${formatLocation(locator(['backup', 'destinations', i, key]))}: backup.destinations[${i}].${key}`;
    if (d.name === 'primary') out.push(`${at('name')}: 'primary' is the name of backup.root; choose another name`);
    const prev = seen.get(d.name);
    if (prev !== undefined) out.push(`${at('name')}: destination '${d.name}' is defined twice (also backup.destinations[${prev}])`);
    seen.set(d.name, i);
  });
  const channels = new Map<string, number>();
  (config.notifications?.channels ?? []).forEach((c, i) => {
    if (typeof c?.name !== 'string') return;
    const prev = channels.get(c.name);
    if (prev !== undefined)
      out.push(
        `${formatLocation(locator(['notifications', 'channels', i, 'name']))}: notifications.channels[${i}].name: channel '${c.name}' is defined twice (also notifications.channels[${prev}])`,
      );
    channels.set(c.name, i);
  });
  // health checks: a regular expression that does not compile would only fail at update time
  (config.services ?? []).forEach((svc, i) => {
    const checks = svc?.health_checks as { body_matches?: string }[] | undefined;
    (Array.isArray(checks) ? checks : []).forEach((c, j) => {
      if (typeof c?.body_matches !== 'string') return;
      try {
        new RegExp(c.body_matches);
      } catch (e) {
        out.push(
          `${formatLocation(locator(['services', i, 'health_checks', j, 'body_matches']))}: services[${i}].health_checks[${j}].body_matches: not a valid regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`,
        );
      }
    });
    out.push(...updateCommandErrors(svc, i, locator));
  });
  out.push(...monitoringErrors(config, locator));
  return out;
}

/** update.command strings are split like a shell would, but run without one: `;`, `|`, `&&`, redirections and bad quotes are refused now. */
function updateCommandErrors(svc: AutopilotConfig['services'][number], i: number, locator: Locator): string[] {
  const commands = (svc.update as { command?: unknown[] } | undefined)?.command ?? [];
  return commands.flatMap((c, j) => {
    if (typeof c !== 'string') return [];
    try {
      splitCommandLine(c);
      return [];
    } catch (e) {
      return [
        `${formatLocation(locator(['services', i, 'update', 'command', j]))}: services[${i}].update.command[${j}]: ${(e as Error).message} (or give it as a list: [sh, -c, '…'])`,
      ];
    }
  });
}

/** Destination folders must differ from backup.root and from each other once resolved (checked after paths are made absolute). */
function destinationPathErrors(config: AutopilotConfig, locator: Locator): string[] {
  const out: string[] = [];
  const root = path.resolve(config.backup.root);
  // under /proc, /sys or /dev nothing can be stored (and Node's mkdir loops there for ever)
  const folders: [(string | number)[], string | undefined][] = [
    [['backup', 'root'], config.backup.root],
    [['global', 'state_dir'], config.global?.state_dir],
    [['global', 'log_dir'], config.global?.log_dir],
    ...config.backup.destinations.map((d, i): [(string | number)[], string] => [['backup', 'destinations', i, 'path'], d.path]),
  ];
  for (const [at, p] of folders) {
    const pseudo = typeof p === 'string' ? pseudoRootOf(p) : null;
    if (pseudo)
      out.push(
        `${formatLocation(locator(at))}: ${at.join('.')}: ${p} is under ${pseudo}, a file system of the kernel; choose a folder on a disk`,
      );
  }
  const byPath = new Map<string, string>([[root, 'backup.root']]);
  config.backup.destinations.forEach((d, i) => {
    const p = path.resolve(d.path);
    const other = byPath.get(p);
    if (other)
      out.push(
        `${formatLocation(locator(['backup', 'destinations', i, 'path']))}: backup.destinations[${i}].path: ${p} is already used by ${other}; each destination needs its own folder`,
      );
    byPath.set(p, `backup.destinations[${i}] (${d.name})`);
  });
  return out;
}

function setAtPointer(obj: unknown, pointer: string, value: unknown): void {
  const p = pointerToPath(pointer);
  let cur = obj as Record<string | number, unknown>;
  for (const seg of p.slice(0, -1)) {
    if (!cur || typeof cur !== 'object') return;
    cur = cur[seg] as Record<string | number, unknown>;
  }
  if (cur && typeof cur === 'object' && p.length) cur[p[p.length - 1]] = value;
}

/**
 * The config schema's validator, with the backup: keys of the discovered hypervisor plugins.
 * Built-in keys are proven at build time; a plugins.d plugin's keys that are no valid JSON
 * schema are set aside (with a warning) rather than making every command fail.
 */
function configValidator(backupKeys: BackupKeys[], warnings: string[]): { schema: JsonSchema; validate: Validator } {
  const schema = buildConfigSchema(backupKeys);
  try {
    return { schema, validate: getValidator(schema) };
  } catch {
    const good = backupKeys.filter((b) => {
      try {
        getValidator({ type: 'object', properties: Object.fromEntries(Object.entries(b.keys).map(([k, s]) => [k, expandSecrets(s)])) });
        return true;
      } catch (e) {
        warnings.push(
          `plugin ${b.plugin}: backupSchema is not a valid JSON schema (${(e as Error).message}); its backup: keys are not accepted`,
        );
        return false;
      }
    });
    const rebuilt = buildConfigSchema(good);
    return { schema: rebuilt, validate: getValidator(rebuilt) };
  }
}

/** Checks each plugin's options (`plugins.<name>`, or {}) against its options schema, defaults applied; collects their secrets and paths. */
function validatePluginOptions(
  data: Record<string, unknown>,
  raw: RawConfig,
  plugins: ConfigPlugins,
  warnings: string[],
): { options: Record<string, Record<string, unknown>>; failures: Record<string, string>; problems: string[]; collected: Collected[] } {
  const section = (data.plugins && typeof data.plugins === 'object' ? data.plugins : {}) as Record<string, Record<string, unknown>>;
  const options: Record<string, Record<string, unknown>> = {};
  const failures: Record<string, string> = {};
  const problems: string[] = [];
  const collected: Collected[] = [];
  for (const name of Object.keys(section)) {
    if (!plugins.names.includes(name))
      warnings.push(
        `${formatLocation(raw.locator(['plugins'], name))}: plugins.${name}: no plugin named '${name}' is installed; these options are ignored`,
      );
  }
  for (const name of plugins.names) options[name] = section[name] ?? {};
  for (const p of plugins.options) {
    const given = Object.hasOwn(section, p.name);
    const opts = structuredClone(section[p.name] ?? {});
    if (!p.validate(opts)) {
      delete options[p.name];
      const lines = formatAjvErrors(p.validate.errors ?? [], raw.locator, { schema: p.schema, data: opts }, ['plugins', p.name]);
      failures[p.name] = `bad options: ${lines.join('; ')}`;
      problems.push(...lines);
      // its secrets are still read: their permissions are checked, and one that fails is reported now
      if (opts && typeof opts === 'object') collected.push(collect(p.schema, opts, `/plugins/${p.name}`));
      continue;
    }
    options[p.name] = opts;
    // config show shows them as the plugin gets them: defaults applied, secrets masked
    if (given) section[p.name] = opts;
    // plugin names are plain (letters, digits, '-', '_'): nothing to escape in the pointer
    collected.push(collect(p.schema, opts, `/plugins/${p.name}`));
  }
  return { options, failures, problems, collected };
}

/** A check that assumes the shapes the schema promises: on data the schema refused, one that trips over a wrong shape adds nothing (the schema's error names it). */
function onShapes(check: () => string[]): string[] {
  try {
    return check();
  } catch {
    return [];
  }
}

export async function validateConfig(raw: RawConfig, plugins: ConfigPlugins, opts: ValidateOptions = {}): Promise<LoadedConfig> {
  const warnings: string[] = [...raw.warnings, ...plugins.problems];
  const { schema, validate } = configValidator(plugins.backup, warnings);
  const data = structuredClone(raw.data);
  // every stage runs, whatever an earlier one found: all problems are reported at once
  const errors: string[] = [...raw.errors];
  if (!validate(data)) errors.push(...formatAjvErrors(validate.errors ?? [], raw.locator, { schema, data }));
  const entries = validateEntries(data, raw, plugins.service, plugins.channel);
  errors.push(...entries.lines);
  errors.push(...onShapes(() => semanticErrors(data as unknown as AutopilotConfig, raw.locator)));
  const pluginOptions = validatePluginOptions(data, raw, plugins, warnings);
  const where = (pointer: string): string => {
    const p = pointerToPath(pointer);
    return `${formatLocation(raw.locator(p))}: ${displayPath(p)}`;
  };
  // every secret of the config, its entries and the plugins' options, in one pass
  const secrets = opts.secrets !== false;
  const res = await resolveCollected(mergeCollected([collect(schema, data), ...entries.collected, ...pluginOptions.collected]), {
    configDir: raw.dir,
    where,
    signal: opts.signal,
    secrets,
    // a plugin whose secret fails is set aside, as one whose options are bad: the others go on
    owner: (pointer) => /^\/plugins\/([^/]+)\//.exec(pointer)?.[1],
  });
  warnings.push(...res.warnings);
  errors.push(...res.problems);
  for (const [name, problems] of Object.entries(res.deferred)) {
    delete pluginOptions.options[name];
    const why = `a secret of its options could not be resolved: ${problems.join('; ')}`;
    pluginOptions.failures[name] = pluginOptions.failures[name] ? `${pluginOptions.failures[name]}; ${why}` : why;
    pluginOptions.problems.push(...problems);
  }
  const config = data as unknown as AutopilotConfig;
  errors.push(...onShapes(() => destinationPathErrors(config, raw.locator)));
  if (errors.length) {
    // a plugin's bad options are errors of the same file: named with the rest
    throw configInvalid(
      [...errors, ...pluginOptions.problems],
      [raw.file, ...raw.extraFiles],
      res.problems.length
        ? 'secrets are read at start so that a run never fails half-way for want of one: fix the files or commands named above'
        : undefined,
    );
  }
  const masked = structuredClone(config);
  for (const ptr of res.secretPointers) setAtPointer(masked, ptr, MASK);
  return {
    file: raw.file,
    dir: raw.dir,
    extraFiles: raw.extraFiles,
    fileVersion: raw.fileVersion,
    config,
    masked,
    warnings,
    locator: raw.locator,
    secretsResolved: secrets,
    pluginOptions: pluginOptions.options,
    pluginFailures: pluginOptions.failures,
    pluginProblems: pluginOptions.problems,
  };
}
