/**
 * Parsed config files that remember where each value came from, so that an error about
 * `/services/2/paths/0` can be reported as `services.d/web.yaml:4:7`.
 */
import { LineCounter, isMap, isPair, isScalar, parseDocument, type Document, type Node } from 'yaml';

export interface SourceFile {
  file: string;
  text: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** syntax errors, already formatted as `file:line:col: message` */
  syntaxErrors: string[];
}

export function parseSource(file: string, text: string): SourceFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const syntaxErrors = doc.errors.map((e) => {
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    const msg = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    return `${file}:${pos.line}:${pos.col}: ${msg}`;
  });
  return { file, text, doc, lines, syntaxErrors };
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
  let node: unknown = src.doc.contents;
  let best: Node | null = (src.doc.contents as Node) ?? null;
  for (const seg of path) {
    if (!node || typeof node !== 'object') break;
    const next = (node as { get?: (k: unknown, keep: boolean) => unknown }).get?.(seg, true);
    if (next === undefined) break;
    node = next;
    if (next && typeof next === 'object' && 'range' in (next as object)) best = next as Node;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
    if (pair && isScalar(pair.key) && pair.key.range) best = pair.key;
  }
  if (best && best.range) {
    const pos = src.lines.linePos(best.range[0]);
    return { file: src.file, line: pos.line, col: pos.col };
  }
  return { file: src.file };
}

export function formatLocation(loc: Location): string {
  return loc.line ? `${loc.file}:${loc.line}:${loc.col}` : loc.file;
}
