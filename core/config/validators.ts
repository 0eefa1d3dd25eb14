/**
 * JSON Schema validators. Compiling a schema with ajv costs tens of milliseconds, so the
 * schemas of the built-in plugin set are compiled at build time (scripts/precompile.js,
 * ajv's standalone code) into dist/core/config/validators/<hash of the schema>.js, each
 * loaded on first use. Any other schema (a plugins.d plugin's, or the config schema once a plugins.d
 * service plugin extends it) is compiled here at run time, with the same options.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Ajv from 'ajv';
import type { ErrorObject } from 'ajv';
import type { JsonSchema } from '../plugins/contract';
import { CODE_ROOT } from '../paths';

export interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

/** Schema annotations of ours; they carry no validation of their own. */
export const ANNOTATIONS = ['x-secret', 'x-secret-source', 'x-path', 'x-doc'];

export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true } as const;

export function createAjv(source = false): Ajv {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
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
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    fn ??= (require(file) as { validate: Validator }).validate;
    const ok = fn(data);
    lazy.errors = fn.errors;
    return ok;
  };
  return lazy;
}

/** The validator of a schema; throws when the schema itself is invalid. */
export function getValidator(schema: JsonSchema): Validator {
  const key = schemaKey(schema);
  const cached = compiled.get(key) ?? precompiled(key);
  if (cached) {
    compiled.set(key, cached);
    return cached;
  }
  runtimeAjv ??= createAjv();
  const fn = runtimeAjv.compile(schema) as Validator;
  compiled.set(key, fn);
  return fn;
}
