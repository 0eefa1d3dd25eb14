/**
 * JSON Schema validators. Compiling a schema with ajv costs tens of milliseconds, so the
 * schemas of the built-in plugin set are compiled at build time (scripts/precompile.js,
 * ajv's standalone code) into dist/core/config/precompiled.js, keyed by a hash of the
 * schema. Any other schema (a plugins.d plugin's, or the config schema once a plugins.d
 * service plugin extends it) is compiled here at run time, with the same options.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Ajv from 'ajv';
import type { ErrorObject } from 'ajv';
import type { JsonSchema } from '../plugins/contract';

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

let precompiled: Record<string, Validator> | null = null;
let runtimeAjv: Ajv | null = null;
const compiled = new Map<string, Validator>();

function loadPrecompiled(): Record<string, Validator> {
  if (precompiled) return precompiled;
  const file = path.join(__dirname, 'precompiled.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  precompiled = fs.existsSync(file) ? (require(file) as Record<string, Validator>) : {};
  return precompiled;
}

/** Whether a schema's validator was compiled at build time (for tests and the benchmark). */
export function isPrecompiled(schema: JsonSchema): boolean {
  return schemaKey(schema) in loadPrecompiled();
}

/** The validator of a schema; throws when the schema itself is invalid. */
export function getValidator(schema: JsonSchema): Validator {
  const key = schemaKey(schema);
  const cached = compiled.get(key) ?? loadPrecompiled()[key];
  if (cached) return cached;
  runtimeAjv ??= createAjv();
  const fn = runtimeAjv.compile(schema) as Validator;
  compiled.set(key, fn);
  return fn;
}
