/**
 * The suite's few error classes. Each maps to one outcome the CronJob controller
 * understands (see INTERFACES.md, "Exit codes"); foreign errors are translated into
 * one of these at the boundary, keeping the original as `cause`.
 */

/** A bad flag, variable or database shape: nothing was done; exit 2, no retry. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly exitCode = 2;
}

/** A dependency (the database) is unreachable: exit 3, the CronJob retries. */
export class DependencyError extends Error {
  override name = 'DependencyError';
  readonly exitCode = 3;
}

/** A failure worth retrying (429, 5xx, timeouts, connection resets). */
export class TransientError extends Error {
  override name = 'TransientError';
  /** Milliseconds the remote asked us to wait, when it said. */
  retryAfterMs?: number;
}

/** A failure that retrying cannot fix (4xx other than 429, bad data). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** The run was asked to stop (SIGTERM/SIGINT). */
export class AbortedError extends Error {
  override name = 'AbortedError';
}

/** PostgreSQL SQLSTATE classes and socket errors that mean "the database went away". */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

/** True when `err` (or its cause chain) says the database connection is gone. */
export function isConnectionError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && /Connection terminated|connection .*closed|Client has encountered a connection error|Knex: Timeout acquiring a connection/i.test(message)) return true;
  }
  return false;
}

/** The message of any thrown value, as a string. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
