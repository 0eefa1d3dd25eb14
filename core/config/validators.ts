/**
 * JSON Schema validators. Compiling a schema with ajv costs tens of milliseconds, so the
 * schemas of the built-in plugin set are compiled at build time (scripts/precompile.js,
 * ajv's standalone code) into dist/core/config/validators/<hash of the schema>.js, each
 * loaded on first use. Any other schema (a plugins.d plugin's) is compiled here at run time,
 * with the same options, and its standalone code kept in a cache folder for the next start
 * (as Node and Python keep compiled code): /var/cache/homelab-autopilot/validators as root,
 * else ~/.cache/homelab-autopilot/validators ($XDG_CACHE_HOME), or
 * $HOMELAB_AUTOPILOT_CACHE_DIR/validators (empty: no cache). A cached file is named by the
 * hash of the schema and of ajv's version; it is code, so it is used only when it passes the
 * checks a plugins.d plugin passes (lib/trust.ts).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Ajv from 'ajv';
import type { ErrorObject } from 'ajv';
import type { JsonSchema } from '../plugins/contract';
import { checkPermissions, runningAsRoot } from '../../lib/trust';
import { CODE_ROOT } from '../paths';

export interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

/** Schema annotations of ours; they carry no validation of their own. */
export const ANNOTATIONS = ['x-secret', 'x-secret-source', 'x-path', 'x-doc'];

export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true } as const;

export function createAjv(source = false): Ajv {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  const AjvClass = (require('ajv') as { default: typeof Ajv }).default;
  const ajv = new AjvClass({ ...AJV_OPTIONS, code: { source } });
  for (const keyword of ANNOTATIONS) ajv.addKeyword({ keyword });
  return ajv;
}

/** The export name of a schema's validator: a hash of its JSON. */
export function schemaKey(schema: JsonSchema): string {
  return 'v' + createHash('sha256').update(JSON.stringify(schema)).digest('hex').slice(0, 40);
}

let runtimeAjv: Ajv | null = null;
const compiled = new Map<string, Validator>();
const PRECOMPILED_DIR = path.join(CODE_ROOT, 'core', 'config', 'validators');

/** A validator compiled at build time, loaded on its first use (most start-ups use only the config schema's). */
function precompiled(key: string): Validator | null {
  const file = path.join(PRECOMPILED_DIR, `${key}.js`);
  if (!fs.existsSync(file)) return null;
  let fn: Validator | null = null;
  const lazy: Validator = (data: unknown) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a precompiled validator is loaded on its first use
    fn ??= (require(file) as { validate: Validator }).validate;
    const ok = fn(data);
    lazy.errors = fn.errors;
    return ok;
  };
  return lazy;
}

/** The folder of the run-time cache, or null when there is none. */
export function validatorCacheDir(): string | null {
  const env = process.env.HOMELAB_AUTOPILOT_CACHE_DIR;
  if (env !== undefined) return env === '' ? null : path.join(path.resolve(env), 'validators');
  if (runningAsRoot()) return '/var/cache/homelab-autopilot/validators';
  const base = process.env.XDG_CACHE_HOME || (process.env.HOME ? path.join(process.env.HOME, '.cache') : '');
  return base ? path.join(base, 'homelab-autopilot', 'validators') : null;
}

let ajvVersion: string | undefined;

function cacheFile(key: string): string | null {
  const dir = validatorCacheDir();
  if (!dir) return null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  ajvVersion ??= (require('ajv/package.json') as { version: string }).version;
  const name = createHash('sha256')
    .update(`${key} ajv ${ajvVersion} ${JSON.stringify(AJV_OPTIONS)} ${ANNOTATIONS.join()}`)
    .digest('hex')
    .slice(0, 40);
  return path.join(dir, `v${name}.js`);
}

/** A validator compiled by an earlier run and kept in the cache, or null. */
function fromCache(file: string | null): Validator | null {
  // the file is code: trusted only as a plugins.d plugin would be (owner, modes, folders above)
  if (!file || !fs.existsSync(file) || checkPermissions(file, runningAsRoot()) !== null) return null;
  try {
    const mod: { exports: { validate?: Validator } } = { exports: {} };
    // the standalone code requires ajv's run-time helpers: resolved from here, as for the precompiled ones
    // eslint-disable-next-line @typescript-eslint/no-implied-eval, @typescript-eslint/no-unsafe-call -- a cached validator is ajv's standalone code, checked like a plugins.d file (lib/trust.ts) before it runs
    new Function('module', 'exports', 'require', fs.readFileSync(file, 'utf8'))(mod, mod.exports, require);
    return typeof mod.exports.validate === 'function' ? mod.exports.validate : null;
  } catch {
    return null; // a damaged file is compiled and written again
  }
}

/** Keeps a run-time compiled validator's standalone code for the next start; a cache that cannot be written is no error. */
function keep(ajv: Ajv, key: string, file: string | null): void {
  if (!file) return;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
    const standaloneCode = (require('ajv/dist/standalone') as { default: (ajv: Ajv, refs: Record<string, string>) => string }).default;
    const code = standaloneCode(ajv, { validate: key });
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, `// compiled by homelab-autopilot from a plugin's JSON schema; safe to delete\n${code}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    // read-only or full: the next start compiles again
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* nothing was written */
    }
  }
}

/** The validator of a schema; throws when the schema itself is invalid. */
export function getValidator(schema: JsonSchema): Validator {
  const key = schemaKey(schema);
  const known = compiled.get(key) ?? precompiled(key);
  if (known) {
    compiled.set(key, known);
    return known;
  }
  const file = cacheFile(key);
  const cached = fromCache(file);
  if (cached) {
    compiled.set(key, cached);
    return cached;
  }
  runtimeAjv ??= createAjv(true);
  let fn: Validator;
  try {
    runtimeAjv.addSchema(schema, key);
    fn = runtimeAjv.getSchema(key) as Validator; // compiles, and throws for an invalid schema
  } catch (e) {
    runtimeAjv.removeSchema(key);
    throw e;
  }
  keep(runtimeAjv, key, file);
  compiled.set(key, fn);
  return fn;
}
