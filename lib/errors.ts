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

/** The SQLSTATE of a PostgreSQL error in `err`'s cause chain, if any. */
export function sqlState(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** The reason listed for an item that waited longer than lock_timeout for a row another transaction holds. */
export const ROW_LOCKED = 'row locked by another transaction';

/**
 * An item waited longer than `lock_timeout` (SQLSTATE 55P03 lock_not_available) for a
 * row the product application (or another run) holds: that item's failure only,
 * retried by the next run. Raised by `translateDbError`, the original kept as `cause`.
 */
export class RowLockedError extends Error {
  override name = 'RowLockedError';
}

/** A statement ran longer than `statement_timeout` (SQLSTATE 57014 query_canceled). */
export class StatementTimeoutError extends Error {
  override name = 'StatementTimeoutError';
}

/** True when `err` is (or was translated from) a lock timeout (55P03). */
export function isLockTimeout(err: unknown): boolean {
  return err instanceof RowLockedError || sqlState(err) === '55P03';
}

/**
 * Translates the PostgreSQL errors the session timeouts raise into the suite's words
 * (STYLE.md, "Errors"): 55P03 becomes RowLockedError "row locked by another
 * transaction", 57014 a StatementTimeoutError. Any other error is returned as it is.
 */
export function translateDbError(err: unknown): unknown {
  if (err instanceof RowLockedError || err instanceof StatementTimeoutError) return err;
  const state = sqlState(err);
  if (state === '55P03') return new RowLockedError(`${ROW_LOCKED} (waited longer than lock_timeout): ${dbMessage(err)}`, { cause: err });
  if (state === '57014') return new StatementTimeoutError(`database statement cancelled (statement_timeout): ${dbMessage(err)}`, { cause: err });
  return err;
}

/**
 * When `err` means the database cannot do this run's work at all, the DependencyError
 * (exit 3, one line) to end the run with; else undefined. That is: the connection is
 * gone (a restart, a crash, a terminated backend); the server is read-only (25006: a
 * replica after a failover mistake, or `default_transaction_read_only`); or, outside
 * an item (a page read, a count), a statement that timed out or waited too long for a lock,
 * so the run cannot read its items. Every item would fail the same way: the run stops
 * instead of trying each one (no retry storm), and the Job's retry runs it again.
 */
export function databaseFailure(err: unknown, where: 'item' | 'run'): DependencyError | undefined {
  if (err instanceof DependencyError) return err;
  if (isConnectionError(err)) return new DependencyError(`database connection lost: ${dbMessage(err)}`, { cause: err });
  const state = sqlState(err);
  if (state === '25006') return new DependencyError(`database is read-only (a standby, or default_transaction_read_only is on): ${dbMessage(err)}`, { cause: err });
  if (where === 'run' && (state === '57014' || err instanceof StatementTimeoutError)) return new DependencyError(`database too slow: a read was cancelled by statement_timeout (DATABASE_STATEMENT_TIMEOUT_MS): ${dbMessage(err)}`, { cause: err });
  if (where === 'run' && isLockTimeout(err)) return new DependencyError(`database blocked: waited longer than lock_timeout (DATABASE_LOCK_TIMEOUT_MS) for a lock another transaction holds: ${dbMessage(err)}`, { cause: err });
  return undefined;
}

/**
 * The server's own words of a PostgreSQL error, without the SQL knex puts before
 * them ("select … - canceling statement due to lock timeout"): one short line.
 */
export function dbMessage(err: unknown): string {
  const message = messageOf(err);
  // knex writes "<the statement, values inlined> - <the driver's message>".
  const fromKnex = /^\s*(select|insert|update|delete|with|begin|commit|rollback|savepoint|release|set|lock|truncate|create|alter|drop)\b/i.test(message);
  const cut = message.lastIndexOf(' - ');
  return fromKnex && cut >= 0 ? message.slice(cut + 3) : message;
}

/** The message of any thrown value, as a string. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
