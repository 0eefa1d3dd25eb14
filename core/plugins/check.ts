/**
 * Checking a plugin definition before anything of it runs: its name, kind, versions (the
 * plugin's apiVersion range must include this host's), the shape of its schemas (self-contained,
 * each a JSON schema object; plugins.d schemas compiled here to prove them valid), and its
 * declared capabilities. A definition that fails becomes a record with the reason.
 */
import * as path from 'node:path';
import type Semver from 'semver';
import { describeError } from '../../lib/errors';
import { entrySchema, expandSecrets } from '../config/schema';
import { getValidator, type Validator } from '../config/validators';
import { PLUGIN_API_VERSION, type JsonSchema, type PluginDefinition, type PluginKind } from './contract';

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
  /** what it can do: the optional methods of its instance (declared, or read from the instance once created) */
  capabilities: string[];
}

export interface Candidate {
  source: PluginSource;
  /** the file or folder found */
  location: string;
  /** the module to import */
  entry: string;
}

export interface CheckedDefinition {
  def: PluginDefinition;
  record: PluginRecord;
  options?: { schema: JsonSchema; validate: Validator };
}

export const KINDS: PluginKind[] = ['hypervisor', 'service', 'notification'];
export const PLUGIN_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const CODE_FILE = /\.(c|m)?js$/;

export function failed(name: string, source: PluginSource, file: string, reason: string, def?: Partial<PluginDefinition>): PluginRecord {
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
    capabilities: [],
  };
}

let semverModule: typeof Semver | null = null;
function semver(): typeof Semver {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
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

/** The optional methods a plugin of each kind may have: what `capabilities` may name. */
export const CAPABILITIES: Record<PluginKind, string[]> = {
  service: ['beforeBackup', 'afterBackup', 'updater', 'dispose'],
  hypervisor: [
    'guestStatuses',
    'clusterStatus',
    'nodeResources',
    'planBackup',
    'backupGuest',
    'listBackups',
    'deleteBackup',
    'listSnapshots',
    'createSnapshot',
    'rollbackSnapshot',
    'deleteSnapshot',
    'execInGuest',
    'precheckGuest',
    'resolveBackupTarget',
    'describeGuest',
    'manualRollback',
    'dispose',
  ],
  notification: ['dispose'],
};

type Def = Partial<PluginDefinition> & Record<string, unknown>;
const isSchema = (v: unknown): boolean => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

/** name, kind, versions, create: what every definition needs. */
function identityProblem(def: Def, source: PluginSource): string | null {
  if (typeof def.name !== 'string' || !PLUGIN_NAME.test(def.name))
    return `'name' must be a plain name (letters, digits, '-', '_'), got ${JSON.stringify(def.name)}`;
  if (!KINDS.includes(def.kind as PluginKind)) return `'kind' must be one of ${KINDS.join(', ')}, got ${JSON.stringify(def.kind)}`;
  // built-ins ship with this very version of the host: scripts/precompile.js checks their versions at build time (and semver costs ~15 ms to load)
  const checkVersions = source !== 'built-in' || process.env.HOMELAB_AUTOPILOT_CHECK_BUILTINS === '1';
  if (typeof def.version !== 'string' || (checkVersions && !semver().valid(def.version))) {
    return `'version' must be a semver version such as 1.0.0, got ${JSON.stringify(def.version)}`;
  }
  if (typeof def.apiVersion !== 'string' || (checkVersions && !semver().validRange(def.apiVersion))) {
    return `'apiVersion' must be a semver range such as ^1.0.0, got ${JSON.stringify(def.apiVersion)}`;
  }
  if (checkVersions && !semver().satisfies(PLUGIN_API_VERSION, def.apiVersion)) {
    return `it needs plugin API ${def.apiVersion}, but this homelab-autopilot provides ${PLUGIN_API_VERSION}: update the plugin or homelab-autopilot`;
  }
  if (typeof def.create !== 'function') return "'create' must be a function (ctx) => instance";
  return null;
}

/** The schemas' shapes: objects, maps of names to objects, self-contained. */
function schemaProblem(def: Def): string | null {
  for (const key of ['optionsSchema', 'serviceSchema', 'channelSchema'] as const) {
    if (def[key] !== undefined && !isSchema(def[key])) return `${key} must be a JSON schema object`;
  }
  for (const key of ['guestTypes', 'backupSchema'] as const) {
    const map = def[key];
    if (map === undefined) continue;
    if (def.kind !== 'hypervisor') return `${key} belongs to hypervisor plugins only`;
    if (!isSchema(map)) return `${key} must map ${key === 'guestTypes' ? 'service type names' : 'key names'} to JSON schema objects`;
    for (const [name, schema] of Object.entries(map as Record<string, unknown>)) {
      if (!PLUGIN_NAME.test(name)) return `${key}: '${name}' is not a plain name (letters, digits, '-', '_')`;
      if (!isSchema(schema)) return `${key}.${name} must be a JSON schema object`;
    }
  }
  for (const key of ['serviceSchema', 'channelSchema', 'guestTypes', 'backupSchema'] as const) {
    if (def[key] && /"\$(ref|id|defs)"|"definitions"/.test(JSON.stringify(def[key]))) {
      return `${key} must be self-contained: it becomes part of the config schema, where $ref, $id, $defs and definitions cannot resolve`;
    }
  }
  for (const key of ['idKey', 'destinationPrefix'] as const) {
    if (def[key] === undefined) continue;
    if (def.kind !== 'hypervisor') return `${key} belongs to hypervisor plugins only`;
    if (typeof def[key] !== 'string' || !PLUGIN_NAME.test(def[key])) return `${key} must be a plain name (letters, digits, '-', '_')`;
  }
  return null;
}

/** Declared capabilities must be optional methods the contract knows for the plugin's kind. */
function capabilityProblem(def: Def): string | null {
  if (def.capabilities === undefined) return null;
  if (!Array.isArray(def.capabilities) || def.capabilities.some((c) => typeof c !== 'string'))
    return 'capabilities must be a list of method names';
  const known = CAPABILITIES[def.kind as PluginKind];
  const unknown = def.capabilities.filter((c) => !known.includes(c));
  return unknown.length
    ? `capabilities: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a ${def.kind} plugin's (known: ${known.join(', ')})`
    : null;
}

/** Compiles a plugins.d plugin's schemas (proving them valid); built-ins were proven at build time. */
function optionsValidator(def: PluginDefinition, source: PluginSource): CheckedDefinition['options'] {
  let options: CheckedDefinition['options'];
  for (const { what, schema } of definitionSchemas(def)) {
    if (source === 'built-in') {
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
  return options;
}

export function checkDefinition(value: unknown, c: Candidate): CheckedDefinition | PluginRecord {
  const fallbackName = path.basename(c.location).replace(CODE_FILE, '');
  if (!value || typeof value !== 'object') {
    return failed(
      fallbackName,
      c.source,
      c.location,
      'it exports no plugin definition (an object with name, kind, version, apiVersion and create)',
    );
  }
  const def = value as Def;
  const name = typeof def.name === 'string' ? def.name : fallbackName;
  const problem = identityProblem(def, c.source) ?? schemaProblem(def) ?? capabilityProblem(def);
  if (problem) return failed(name, c.source, c.location, problem, def);
  let options: CheckedDefinition['options'];
  try {
    options = optionsValidator(def as PluginDefinition, c.source);
  } catch (e) {
    return failed(name, c.source, c.location, describeError(e), def);
  }
  const record: PluginRecord = {
    name,
    kind: def.kind as PluginKind,
    version: def.version as string,
    apiVersion: def.apiVersion as string,
    description: typeof def.description === 'string' ? def.description : null,
    source: c.source,
    file: c.location,
    status: 'loaded',
    reason: null,
    capabilities: Array.isArray(def.capabilities) ? [...def.capabilities] : [],
  };
  return { def: def as PluginDefinition, options, record };
}
