/**
 * What one doctor check says: `ok`, `fail`, `not configured` (the setting that
 * would turn the feature on is unset), or `skipped` (it depends on a check that
 * failed, which already has its line). The detail is one line, for an SRE, and
 * never holds a secret: each check builds it from its own words and the names of
 * variables, and `finish` runs it through the redactor as a last guard.
 */
import { messageOf } from '../errors.ts';
import { redact } from '../telemetry/redact.ts';

export type CheckStatus = 'ok' | 'fail' | 'not configured' | 'skipped';

export interface CheckResult {
  /** Short, stable name (`database`, `sendgrid`…): the JSON summary's key. */
  check: string;
  status: CheckStatus;
  /** One line: what was found, or what is wrong and what to do. */
  detail: string;
}

/** Builds a result with its detail redacted and kept to one line. */
export function result(check: string, status: CheckStatus, detail: string): CheckResult {
  return { check, status, detail: redact(detail.replace(/\s*\n\s*/g, ' ').trim()) };
}

export const ok = (check: string, detail: string) => result(check, 'ok', detail);
export const fail = (check: string, detail: string) => result(check, 'fail', detail);
export const notConfigured = (check: string, detail: string) => result(check, 'not configured', detail);
export const skipped = (check: string, detail: string) => result(check, 'skipped', detail);

/** Where a URL points, without credentials, query or fragment (for a detail line). */
export function where(url: string): string {
  const u = URL.parse(url);
  return u ? `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}` : '(unparseable URL)';
}

/** The reason a fetch failed, in a few words (`ECONNREFUSED`, `timed out after 5000 ms`…). */
export function fetchFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; cause?: { code?: unknown; message?: unknown } };
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const code = typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  return code ?? (typeof e?.cause?.message === 'string' ? e.cause.message : messageOf(err));
}
