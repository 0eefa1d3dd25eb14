/**
 * Parsed config files that remember where each value came from, so that an error about
 * `/services/2/paths/0` can be reported as `services.d/web.yaml:4:7`.
 *
 * The data is read with js-yaml (quick to load and run); the position-keeping parse of the
 * `yaml` package, slower to load, runs only when a position is asked for: on an error or
 * a warning. Both read YAML 1.2's core schema (plus merge keys), so they agree on values.
 */
import type { Document, LineCounter, Node } from 'yaml';

export interface Positions {
  doc: Document.Parsed;
  lines: LineCounter;
}

export interface SourceFile {
  file: string;
  text: string;
  /** the parsed value (undefined when there are syntax errors) */
  data: unknown;
  /** syntax errors, already formatted as `file:line:col: message` */
  syntaxErrors: string[];
  /** the position-keeping parse, made on first use */
  positions(): Positions;
}

function parsePositions(text: string): Positions {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  const Y = require('yaml') as typeof import('yaml');
  const lines = new Y.LineCounter();
  const doc = Y.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  return { doc, lines };
}

let jsYamlSchema: unknown = null;

export function parseSource(file: string, text: string): SourceFile {
  let positions: Positions | null = null;
  const getPositions = (): Positions => (positions ??= parsePositions(text));
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  const jsyaml = require('js-yaml') as typeof import('js-yaml');
  jsYamlSchema ??= jsyaml.CORE_SCHEMA.extend({
    implicit: [(jsyaml as unknown as { types: { merge: import('js-yaml').Type } }).types.merge],
  });
  try {
    const data = jsyaml.load(text, { filename: file, schema: jsYamlSchema as import('js-yaml').Schema });
    return { file, text, data, syntaxErrors: [], positions: getPositions };
  } catch (e) {
    const { doc, lines } = getPositions();
    const syntaxErrors = doc.errors.map((err) => {
      const pos = err.linePos?.[0] ?? lines.linePos(err.pos[0]);
      const msg = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      return `${file}:${pos.line}:${pos.col}: ${msg}`;
    });
    if (!syntaxErrors.length) {
      const y = e as { reason?: string; mark?: { line: number; column: number }; message: string };
      syntaxErrors.push(y.mark ? `${file}:${y.mark.line + 1}:${y.mark.column + 1}: ${y.reason ?? y.message}` : `${file}: ${y.message}`);
    }
    return { file, text, data: undefined, syntaxErrors, positions: getPositions };
  }
}

export interface Location {
  file: string;
  line?: number;
  col?: number;
}

/**
 * The position of the value at `path` (or of its key, when `key` is given: the
 * position of an unknown key itself). Falls back to the nearest ancestor that exists.
 */
export function locate(src: SourceFile, path: (string | number)[], key?: string): Location {
  const { doc, lines } = src.positions();
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, to keep start-up fast
  const { isMap, isPair, isScalar } = require('yaml') as typeof import('yaml');
  let node: unknown = doc.contents;
  let best: Node | null = doc.contents ?? null;
  for (const seg of path) {
    if (!node || typeof node !== 'object') break;
    const next = (node as { get?: (k: unknown, keep: boolean) => unknown }).get?.(seg, true);
    if (next === undefined) break;
    node = next;
    if (next && typeof next === 'object' && 'range' in next) best = next as Node;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
    if (pair && isScalar(pair.key) && pair.key.range) best = pair.key;
  }
  if (best && best.range) {
    const pos = lines.linePos(best.range[0]);
    return { file: src.file, line: pos.line, col: pos.col };
  }
  return { file: src.file };
}

export function formatLocation(loc: Location): string {
  return loc.line ? `${loc.file}:${loc.line}:${loc.col}` : loc.file;
}
