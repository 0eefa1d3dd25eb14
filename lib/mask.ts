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

/** Query keys whose values are secrets in a URL (?token=…, ?api_key=…, ?sig=…). */
const SECRET_QUERY_KEY = /token|key|secret|pass|auth|sig|code|session|cred/i;

/**
 * The secret parts of a URL, which a receiver may echo without the rest (in an error body):
 * the userinfo, the values of secret-looking query keys (and any long value), and path
 * segments that look like tokens (8 characters or more with a digit or a capital, or 20 and
 * more), raw and decoded. Plain words (`services`, `webhooks`) and the host are not secrets.
 */
export function urlSecretParts(value: string): string[] {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value.trim())) return [];
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return [];
  }
  const parts: string[] = [];
  const add = (v: string): void => {
    parts.push(v);
    try {
      parts.push(decodeURIComponent(v));
    } catch {
      /* not percent-encoded text */
    }
  };
  if (url.password) add(url.password);
  // a short user name (admin, user, backup) is a common word: masking it would hide it everywhere
  if (url.username.length >= 8) add(url.username);
  // a token-like path segment: letters and digits mixed (not a plain word such as /Nextcloud), or long
  for (const segment of url.pathname.split('/'))
    if ((segment.length >= 8 && /[0-9]/.test(segment) && /[A-Za-z]/.test(segment)) || segment.length >= 20) add(segment);
  for (const [key, v] of url.searchParams) if (v && (SECRET_QUERY_KEY.test(key) || v.length >= 16)) parts.push(v);
  if (url.hash.length > 1) add(url.hash.slice(1));
  return parts;
}

/**
 * Register a secret value (values shorter than 4 characters are too common to mask safely and
 * are skipped). A URL registers its secret parts too (urlSecretParts).
 */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value !== 'string') return;
  const candidates = [value, value.trim(), ...urlSecretParts(value)];
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
