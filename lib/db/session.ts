/**
 * The PostgreSQL session settings of a job's connections. The product application
 * shares the database: it may hold a row lock (a user reconnecting QuickBooks, an
 * app transaction on a signal) for as long as it likes, and without limits a job
 * would wait on that row forever. Every connection of a job's pool is therefore
 * given, when it is created (one statement, before any work):
 *
 * - `lock_timeout`: a statement waits at most this long for a lock, then fails with
 *   55P03; the item fails ("row locked by another transaction"), the others go on;
 * - `statement_timeout`: no statement runs longer (a page read cut by it ends the
 *   run with exit 3, never a hang);
 * - `idle_in_transaction_session_timeout`: a run stuck between two statements of a
 *   transaction never holds its own locks for long (the server ends the session).
 *
 * The run lock's connection is the exception (lib/runtime/lock.ts): it holds a
 * session-level advisory lock and stays idle for the whole run, so every limit,
 * including a server-wide `idle_session_timeout`, is turned off on it while it
 * holds the lock, and the job settings are put back when it returns to the pool.
 *
 * PGlite (the embedded database) gets none of these: it is one process's database
 * on one connection (its lock file keeps other processes out), so no other session
 * can hold a lock it would wait for, and a dry run's one long transaction there
 * blocks nobody.
 *
 * Behind PgBouncer in transaction mode, session settings do not stick: set them on
 * the role instead (ALTER ROLE … SET lock_timeout = '5s', …).
 */
import type { DatabaseTimeouts } from '../config.ts';

/** One statement setting the job session's timeouts (integers inlined: they are validated whole numbers). */
export function jobSessionSql(t: DatabaseTimeouts): string {
  const ms = (n: number) => `'${Math.trunc(n)}ms'`;
  return `select set_config('lock_timeout', ${ms(t.lockTimeoutMs)}, false), set_config('statement_timeout', ${ms(t.statementTimeoutMs)}, false), set_config('idle_in_transaction_session_timeout', ${ms(t.idleInTransactionTimeoutMs)}, false)`;
}

/**
 * One statement turning every limit off on the run lock's connection, including
 * `idle_session_timeout` (PostgreSQL 14+) where the server has it: a DBA's
 * server-wide idle limit would otherwise end the lock's session mid-run.
 */
export const LOCK_SESSION_SQL = `select set_config(name, '0', false) from pg_settings where name in ('lock_timeout', 'statement_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout')`;

/** Puts the server's own `idle_session_timeout` back on the lock's connection before it returns to the pool (the job settings are re-applied beside it). */
export const UNLOCK_SESSION_SQL = `select set_config(name, reset_val, false) from pg_settings where name = 'idle_session_timeout'`;
