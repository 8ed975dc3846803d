/**
 * Secret scrubbing for everything that leaves the process as text: log lines,
 * stored errors (`last_sync_error`, `email_log.error`), run history and span
 * attributes. Two layers: the exact secret values we know of (registered from the
 * configuration at start), and patterns that catch secrets we were never told
 * about (bearer tokens, passwords inside URLs, OAuth fields, encrypted tokens).
 */

const known = new Set<string>();

/** Registers secret values (API keys, client secrets, keys) to be masked wherever they appear. */
export function registerSecrets(...values: Array<string | undefined | null>): void {
  for (const v of values) if (v && v.length >= 6) known.add(v);
}

/** Forgets registered secrets (tests). */
export function clearSecrets(): void {
  known.clear();
}

const MASK = '[REDACTED]';

const PATTERNS: Array<[RegExp, string]> = [
  // scheme://user:password@host → scheme://user:[REDACTED]@host
  [/([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]*):([^@/\s]+)@/gi, `$1:${MASK}@`],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/g, `$1 ${MASK}`],
  // key=value and "key": "value" where the key names a secret (access_token, client_secret, apiKey, password, ...)
  [/\b([a-z_]*(?:token|secret|password|passwd|api[_-]?key|authorization))("?\s*[:=]\s*"?)([^"\s,&}]+)/gi, `$1$2${MASK}`],
  [/enc:v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+/g, MASK],
  [/\bSG\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g, MASK],
];

/** Returns `text` with every known secret and secret-looking fragment masked. */
export function redact(text: string): string {
  let out = text;
  for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(MASK);
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** Deep-redacts strings inside a JSON-like value (objects, arrays), returning a copy. */
export function redactValue<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return redact(value) as T;
  if (value === null || typeof value !== 'object') return value;
  // Too deep to walk (or cyclic): keep it as redacted text, never as an unredacted subtree.
  if (depth > 8) return redact(stringify(value)) as T;
  if (value instanceof Date) return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEY.test(k) ? MASK : redactValue(v, depth + 1);
  }
  return out as T;
}

/** Keys whose value is a secret, whatever it looks like: the same names the text pattern above masks (any *token, *secret, ...), e.g. Intuit's `id_token`. */
const SECRET_KEY = /(token|secret|password|passwd|api[_-]?key|authorization)$/i;

function stringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '[unserialisable]';
  }
}

/** Serialises an error fully (name, message, code, status, cause chain), redacted. */
export function serializeError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: redact(String(err)) };
  const out: Record<string, unknown> = { name: err.name, message: redact(err.message) };
  const extra = err as unknown as Record<string, unknown>;
  for (const key of ['code', 'status', 'statusCode', 'intuitTid', 'detail']) {
    if (extra[key] !== undefined) out[key] = redactValue(extra[key]);
  }
  if (err.stack) out.stack = redact(err.stack.split('\n').slice(0, 8).join('\n'));
  if (err.cause !== undefined && depth < 3) out.cause = serializeError(err.cause, depth + 1);
  return out;
}
