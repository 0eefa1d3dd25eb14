/**
 * Turning ajv errors into `file:line:col: path: message` lines a person can act on.
 */
import type { ErrorObject } from 'ajv';
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

function docOf(e: ErrorObject): string | undefined {
  const ps = e.parentSchema as Record<string, unknown> | undefined;
  return typeof ps?.['x-doc'] === 'string' ? (ps['x-doc'] as string) : undefined;
}

/** Formats ajv errors, one line each, most useful first, without the noise of combinators. */
export function formatAjvErrors(errors: ErrorObject[], locator: Locator, prefix: (string | number)[] = []): string[] {
  // errors inside an anyOf that stands for "one of these keys is required" are summed up by that anyOf
  const covered = errors.filter((e) => e.keyword === 'anyOf' && docOf(e)?.startsWith('required:')).map((e) => e.schemaPath + '/');
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    if (covered.some((c) => e.schemaPath.startsWith(c))) continue;
    const path = [...prefix, ...pointerToPath(e.instancePath)];
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
        message = doc?.startsWith('one-of:') ? `give only one of ${doc.slice(7).split(',').join(', ')}` : 'has a value that is not allowed here';
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
        message = path[path.length - 1] === 'name' ? `invalid name ${JSON.stringify(e.data)}: use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)` : `${e.message} (got ${JSON.stringify(e.data)})`;
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
