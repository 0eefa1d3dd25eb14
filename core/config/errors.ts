/**
 * Turning ajv errors into `file:line:col: path: message` lines a person can act on.
 */
import type { ErrorObject } from 'ajv';
import { AutopilotError } from '../../lib/errors';
import { formatLocation, type Location } from './source';

export type Locator = (path: (string | number)[], key?: string) => Location;

export function pointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** The value at a JSON pointer. */
export function atPointer(data: unknown, pointer: string): unknown {
  let cur = data;
  for (const seg of pointerToPath(pointer)) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

/** The schema node an error's schemaPath points into (its keyword's parent). */
function parentSchemaOf(schema: unknown, schemaPath: string): Record<string, unknown> | undefined {
  const segs = schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean).slice(0, -1);
  let cur = schema;
  for (const seg of segs) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur as Record<string, unknown> | undefined;
}

export function displayPath(path: (string | number)[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out || '(top level)';
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

export function didYouMean(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** What was validated: to find each error's schema node and value. */
export interface Validated {
  schema: unknown;
  data: unknown;
}

/** Formats ajv errors, one line each, without the noise of combinators. */
export function formatAjvErrors(
  rawErrors: ErrorObject[],
  locator: Locator,
  validated: Validated,
  prefix: (string | number)[] = [],
): string[] {
  const errors = rawErrors.map((e) => ({
    ...e,
    parentSchema: parentSchemaOf(validated.schema, e.schemaPath),
    data: atPointer(validated.data, e.instancePath),
  }));
  const docOf = (e: ErrorObject): string | undefined => {
    const ps = e.parentSchema;
    return typeof ps?.['x-doc'] === 'string' ? ps['x-doc'] : undefined;
  };
  // errors inside an anyOf that stands for "one of these keys is required" are summed up by that anyOf
  const covered = errors.filter((e) => e.keyword === 'anyOf' && docOf(e)?.startsWith('required:')).map((e) => e.schemaPath + '/');
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    if (covered.some((c) => e.schemaPath.startsWith(c))) continue;
    const path = [...prefix, ...pointerToPath(e.instancePath)];
    // a secret's value is never repeated in an error
    if (e.parentSchema?.['x-secret'] === true) e.data = '********';
    let loc: Location;
    let where = path;
    let message: string;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String((e.params as { additionalProperty: string }).additionalProperty);
        const known = Object.keys(((e.parentSchema as Record<string, unknown>)?.properties as Record<string, unknown>) ?? {});
        const hint = didYouMean(key, known);
        where = [...path, key];
        loc = locator(path, key);
        message = known.length
          ? `unknown key '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}; allowed here: ${known.join(', ')}`
          : `unknown key '${key}': this section takes no keys yet`;
        break;
      }
      case 'required': {
        const key = String((e.params as { missingProperty: string }).missingProperty);
        loc = locator(path);
        message = `missing required key '${key}'`;
        break;
      }
      case 'anyOf': {
        const doc = docOf(e);
        loc = locator(path);
        if (doc?.startsWith('required:')) {
          const [first, ...alts] = doc.slice(9).split(',');
          message = `missing required key '${first}' (or ${alts.join(' or ')})`;
        } else message = 'does not match any allowed form';
        break;
      }
      case 'not': {
        const doc = docOf(e);
        loc = locator(path);
        message = doc?.startsWith('one-of:')
          ? `give only one of ${doc.slice(7).split(',').join(', ')}`
          : 'has a value that is not allowed here';
        break;
      }
      case 'enum': {
        loc = locator(path);
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ');
        message = `must be one of ${allowed} (got ${JSON.stringify(e.data)})`;
        break;
      }
      case 'type': {
        loc = locator(path);
        message = `must be ${(e.params as { type: string }).type} (got ${Array.isArray(e.data) ? 'a list' : e.data === null ? 'nothing' : typeof e.data === 'object' ? 'a mapping' : `${typeof e.data} ${JSON.stringify(e.data)}`})`;
        break;
      }
      case 'pattern': {
        loc = locator(path);
        message =
          path[path.length - 1] === 'name'
            ? `invalid name ${JSON.stringify(e.data)}: use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`
            : `${e.message} (got ${JSON.stringify(e.data)})`;
        break;
      }
      default:
        loc = locator(path);
        message = `${e.message ?? 'is invalid'}${e.data !== undefined && typeof e.data !== 'object' ? ` (got ${JSON.stringify(e.data)})` : ''}`;
    }
    const line = `${formatLocation(loc)}: ${displayPath(where)}: ${message}`;
    if (!seen.has(line)) {
      seen.add(line);
      lines.push(line);
    }
  }
  return lines;
}

const AT = /^(.*?):(\d+):(\d+): /;

/**
 * Problem lines in the order of the files (`files`: the main file, then services.d; any other
 * file after them) and, within a file, of line and column; lines without a position come
 * first in their file. Stable: problems at one place keep the order they were found in.
 */
export function sortProblems(lines: string[], files: string[]): string[] {
  const key = (line: string): [number, number, number] => {
    const m = AT.exec(line);
    const file = m ? m[1] : files.find((f) => line.startsWith(`${f}:`) || line.startsWith(`${f} `));
    const i = file === undefined ? -1 : files.indexOf(file);
    return [i === -1 ? files.length : i, m ? Number(m[2]) : 0, m ? Number(m[3]) : 0];
  };
  const keyed = lines.map((line, n) => ({ line, n, k: key(line) }));
  keyed.sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2] || a.n - b.n);
  return keyed.map((x) => x.line);
}

/**
 * The one CONFIG_INVALID of a config: every problem of every stage, each once, sorted by file
 * and line. A value whose environment variable is unset is reported for that alone (not
 * again for the empty string it became).
 */
export function configInvalid(lines: string[], files: string[], hint?: string): AutopilotError {
  const loc = (l: string): string | undefined => AT.exec(l)?.[0];
  const unset = new Set(lines.filter((l) => / environment variable \S+ is not set/.test(l)).map(loc));
  const kept = [...new Set(lines)].filter((l) => / environment variable \S+ is not set/.test(l) || !unset.has(loc(l)));
  const details = sortProblems(kept, files);
  return new AutopilotError('CONFIG_INVALID', `the configuration has ${details.length} error${details.length > 1 ? 's' : ''}`, {
    details,
    hint,
  });
}
