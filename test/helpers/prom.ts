/**
 * A strict parser of Prometheus' text format (version 0.0.4), for tests: every line must be a
 * comment (# HELP / # TYPE), blank, or a sample `name{label="value",...} value`; anything else
 * throws with the line. Label values are unescaped (\\, \", \n).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Parsed {
  samples: Sample[];
  types: Record<string, string>;
  help: Record<string, string>;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
// as Go's ParseFloat reads it (Prometheus): NaN and Inf in any case (prom-client writes `Nan`)
const VALUE = '(?:[-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)|[-+]?[Ii][Nn][Ff]|[Nn][Aa][Nn])';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(${VALUE})(?:\\s+-?[0-9]+)?$`);
const LABEL_PAIR = new RegExp(`^(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`);

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length) {
    const m = LABEL_PAIR.exec(rest);
    if (!m) throw new Error(`bad labels in: ${line}`);
    if (m[1] in labels) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]] = unescape(m[2]);
    rest = rest.slice(m[0].length);
  }
  return labels;
}

export function parseProm(text: string): Parsed {
  const out: Parsed = { samples: [], types: {}, help: {} };
  if (text.length && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (line.startsWith('#')) {
      const m = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
      if (!m) continue; // a plain comment
      if (m[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3])) throw new Error(`bad TYPE: ${line}`);
        out.types[m[2]] = m[3];
      } else out.help[m[2]] = m[3];
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = m[2] ? parseLabels(m[2], line) : {};
    const id = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(id)) throw new Error(`sample twice: ${line}`);
    seen.add(id);
    const v = m[3];
    out.samples.push({
      name: m[1],
      labels,
      value: /inf$/i.test(v) ? (v.startsWith('-') ? -Infinity : Infinity) : /nan/i.test(v) ? NaN : Number(v),
    });
  }
  return out;
}

/** The samples of a metric whose labels include `labels`. */
export function samples(p: Parsed, name: string, labels: Record<string, string> = {}): Sample[] {
  return p.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample of a metric with these labels; throws when there is not exactly one. */
export function value(p: Parsed, name: string, labels: Record<string, string> = {}): number {
  const found = samples(p, name, labels);
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0].value;
}
