/**
 * Secret masking. Every resolved secret is registered here once; every log line,
 * error message and rendered output passes through mask() before it leaves the process.
 */

export const MASK = '********';

const secrets = new Set<string>();
let pattern: RegExp | null = null;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Register a secret value (values shorter than 4 characters are too common to mask safely and are skipped). */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value !== 'string') return;
  const candidates = [value, value.trim()];
  let changed = false;
  for (const v of candidates) {
    if (v.length >= 4 && !secrets.has(v)) {
      secrets.add(v);
      changed = true;
    }
  }
  if (changed) {
    // longest first so that a secret containing another is masked whole
    const sorted = [...secrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
    pattern = new RegExp(sorted.join('|'), 'g');
  }
}

export function mask(text: string): string {
  if (!pattern || !text) return text;
  return text.replace(pattern, MASK);
}

/** Deep copy of a value with every registered secret masked in its strings. */
export function maskDeep<T>(value: T): T {
  if (typeof value === 'string') return mask(value) as unknown as T;
  if (Array.isArray(value)) return (value as unknown[]).map((v) => maskDeep(v)) as unknown as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = maskDeep(v);
    return out as T;
  }
  return value;
}

/** For tests: forget all registered secrets. */
export function clearSecrets(): void {
  secrets.clear();
  pattern = null;
}
