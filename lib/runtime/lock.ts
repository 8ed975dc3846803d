/**
 * One run per job and shard at a time: a session-level PostgreSQL advisory lock,
 * taken without waiting. A manual run started while the scheduled one works (or two
 * overlapping schedules) sees the lock held and exits at once. The unique keys in
 * the product schema still guard against duplicates underneath it.
 *
 * On PostgreSQL the lock lives on a connection of its own, held for the whole run,
 * so it is released if the process dies. PGlite has one connection (and one process,
 * by its lock file), so the lock is taken on it.
 *
 * The lock's connection stays idle for the whole run, outside any transaction: the
 * job's session timeouts (lib/db/session.ts) are turned off on it while it holds the
 * lock (a server-wide idle_session_timeout too), and put back before it returns to the pool.
 */
import zlib from 'node:zlib';
import type { Knex } from 'knex';
import type { Database } from '../db/connect.ts';
import { jobSessionSql, LOCK_SESSION_SQL, UNLOCK_SESSION_SQL } from '../db/session.ts';

/** First key of the two-int advisory lock: "EXIT" in ASCII, the suite's namespace. */
const LOCK_NAMESPACE = 0x45584954;

/** The second key: a stable 31-bit hash of job and shard. */
export function lockKey(job: string, shardIndex: number): number {
  return zlib.crc32(`${job}:${shardIndex}`) & 0x7fffffff;
}

export interface RunLock {
  release(): Promise<void>;
}

/**
 * Tries to take the lock; returns null when another run holds it. `onLost` is
 * called (PostgreSQL) if the lock's connection dies while the run holds it (the
 * server was restarted, or an operator terminated the backend): the lock is gone
 * from then on, and only the unique keys keep a second run from duplicating work.
 */
export async function tryLock(db: Database, job: string, shardIndex: number, onLost?: () => void): Promise<RunLock | null> {
  const key = lockKey(job, shardIndex);
  if (db.kind === 'pglite') {
    const ok = await tryOn(db.knex, key);
    return ok ? { release: async () => void (await db.knex.raw('select pg_advisory_unlock(?, ?)', [LOCK_NAMESPACE, key])) } : null;
  }
  // A connection held outside the pool's rotation for the run's lifetime.
  const client = db.knex.client as { acquireConnection(): Promise<unknown>; releaseConnection(c: unknown): Promise<void> };
  const connection = (await client.acquireConnection()) as { once?(event: string, fn: () => void): void; removeListener?(event: string, fn: () => void): void };
  let released = false;
  const lost = () => released || onLost?.();
  const release = async () => {
    released = true;
    // The connection goes back to the pool: without this, each run that held it would
    // leave a listener on it (MaxListenersExceededWarning after ten runs in one process).
    connection.removeListener?.('end', lost);
    try {
      await db.knex.raw('select pg_advisory_unlock(?, ?)', [LOCK_NAMESPACE, key]).connection(connection);
      if (db.timeouts) {
        await db.knex.raw(UNLOCK_SESSION_SQL).connection(connection);
        await db.knex.raw(jobSessionSql(db.timeouts)).connection(connection);
      }
    } finally {
      await client.releaseConnection(connection);
    }
  };
  let ok = false;
  try {
    // Limits off first: once the lock is held, nothing may end this session.
    if (db.timeouts) await db.knex.raw(LOCK_SESSION_SQL).connection(connection);
    const { rows } = await db.knex.raw<{ rows: Array<{ ok: boolean }> }>('select pg_try_advisory_lock(?, ?) as ok', [LOCK_NAMESPACE, key]).connection(connection);
    ok = rows[0]!.ok;
  } finally {
    if (!ok) {
      if (db.timeouts) await db.knex.raw(jobSessionSql(db.timeouts)).connection(connection).catch(() => undefined);
      await client.releaseConnection(connection);
    }
  }
  // The run goes on without the lock (its items are whole-or-nothing and keyed), but says so.
  if (ok && onLost) connection.once?.('end', lost);
  return ok ? { release } : null;
}

async function tryOn(knex: Knex, key: number): Promise<boolean> {
  const { rows } = await knex.raw<{ rows: Array<{ ok: boolean }> }>('select pg_try_advisory_lock(?, ?) as ok', [LOCK_NAMESPACE, key]);
  return rows[0]!.ok;
}
