/**
 * The session timeouts of a job's connections (lib/db/session.ts), read back from the
 * server: every pool connection of a job opened from the configuration has them; the
 * run lock's connection has every limit off while it holds the lock (a server-wide
 * idle_session_timeout too) and the job's again once it is back in the pool; PGlite
 * gets none. And the errors they raise, in the suite's words.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../lib/config.ts';
import { openDatabase, type Database } from '../../lib/db/connect.ts';
import { databaseFailure, RowLockedError, StatementTimeoutError, translateDbError } from '../../lib/errors.ts';
import { Tally } from '../../lib/runtime/items.ts';
import { tryLock } from '../../lib/runtime/lock.ts';
import { summaryCounts } from '../../lib/telemetry/metrics.ts';
import { backends, createTestDb, type TestDb } from '../support/db.ts';

const SETTINGS = ['lock_timeout', 'statement_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout'];

async function settings(db: Database, connection?: unknown): Promise<Record<string, string>> {
  const q = db.knex.raw<{ rows: Array<{ name: string; setting: string }> }>(`select name, setting from pg_settings where name = any(?)`, [SETTINGS]);
  const { rows } = await (connection ? q.connection(connection) : q);
  return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
}

describe('database session timeouts', function () {
  this.timeout(60_000);

  describe('on PostgreSQL', () => {
    let t: TestDb | undefined;
    let db: Database | undefined;
    before(async function () {
      if (!backends().includes('postgres')) this.skip();
      t = await createTestDb('postgres');
      // A DBA's server-side idle limit, in place before the job connects.
      await t.knex.raw(`alter database ${new URL(t.url!).pathname.slice(1)} set idle_session_timeout = '600s'`);
      // Two connections in the pool: after the lock is released, both are checked.
      db = await openDatabase(
        loadConfig({ DATABASE_URL: t.url, DATABASE_POOL_MAX: '2', DATABASE_LOCK_TIMEOUT_MS: '1234', DATABASE_STATEMENT_TIMEOUT_MS: '0', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '45000' }),
        { applicationName: 'exitosx-cron:test' },
      );
    });
    after(async () => {
      await db?.close();
      await t?.close();
    });

    it('gives every job connection the configured lock, statement and idle-in-transaction timeouts', async () => {
      expect(await settings(db!)).to.include({ lock_timeout: '1234', statement_timeout: '0', idle_in_transaction_session_timeout: '45000' });
    });

    // That the lock's session has every limit off while held is seen from outside in
    // test/faults/locks.test.ts (it outlives a 1 s idle_session_timeout).
    it("leaves the run lock's connection idle outside any transaction, and puts the job's settings back on it after", async () => {
      const lock = await tryLock(db!, 'detect-inactivity', 0);
      expect(lock).not.to.equal(null);
      try {
        // The lock's connection is out of the pool's rotation: find it by its advisory lock in this database.
        const { rows } = await t!.knex.raw<{ rows: Array<{ pid: number }> }>(
          `select pid from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`,
        );
        expect(rows).to.have.length(1);
        const { rows: held } = await t!.knex.raw<{ rows: Array<{ state: string }> }>(`select state from pg_stat_activity where pid = ?`, [rows[0]!.pid]);
        expect(held[0]!.state).to.equal('idle'); // outside any transaction: idle_in_transaction never applies
        // The other pool connection is the job's: its settings are untouched.
        expect(await settings(db!)).to.include({ lock_timeout: '1234', idle_session_timeout: '600000' });
      } finally {
        await lock!.release();
      }
      const client = db!.knex.client as { acquireConnection(): Promise<unknown>; releaseConnection(c: unknown): Promise<void> };
      // Now both pool connections are the job's again, the former lock connection included.
      const a = await client.acquireConnection();
      const b = await client.acquireConnection();
      try {
        for (const c of [a, b]) expect(await settings(db!, c)).to.deep.equal({ lock_timeout: '1234', statement_timeout: '0', idle_in_transaction_session_timeout: '45000', idle_session_timeout: '600000' });
      } finally {
        await client.releaseConnection(a);
        await client.releaseConnection(b);
      }
    });
  });

  it('sets nothing on the embedded database (one process, one connection: no other session to wait for)', async function () {
    this.timeout(180_000); // a new on-disk PGlite takes a while on a loaded machine
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-session-'));
    const db = await openDatabase(loadConfig({ EMBEDDED_DB_DIR: path.join(dir, 'db'), DATABASE_LOCK_TIMEOUT_MS: '1234' }), { applicationName: 'exitosx-cron:test' });
    try {
      expect(db.timeouts).to.equal(undefined);
      expect(await settings(db)).to.include({ lock_timeout: '0', statement_timeout: '0', idle_in_transaction_session_timeout: '0' });
    } finally {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts a lock timeout as an error of its item, listed with the reason, and published as exitosx_cron_lock_timeouts', () => {
    const tally = new Tally();
    tally.fail('integration', 'qbo_1', Object.assign(new Error('update quickbooks_integrations set x = 1 - canceling statement due to lock timeout'), { code: '55P03', severity: 'ERROR' }));
    tally.fail('integration', 'qbo_2', new Error('something else'));
    expect([tally.errors, tally.lockTimeouts, tally.outcomes.error]).to.deep.equal([2, 1, 2]);
    expect(tally.errorDetails[0]).to.deep.equal({ kind: 'integration', id: 'qbo_1', error: 'row locked by another transaction (waited longer than lock_timeout): canceling statement due to lock timeout' });
    expect(summaryCounts({ errors: 2, lockTimeouts: 1 })).to.deep.include({ field: 'lockTimeouts', metric: 'exitosx_cron_lock_timeouts', value: 1 });
  });

  it('translates lock and statement timeouts into the suite words, and ends the run on them only outside an item', () => {
    const pgError = (code: string, message: string) => Object.assign(new Error(`update signals set x = 1 - ${message}`), { code, severity: 'ERROR' });
    const locked = translateDbError(pgError('55P03', 'canceling statement due to lock timeout'));
    expect(locked).to.be.instanceOf(RowLockedError);
    expect((locked as Error).message).to.equal('row locked by another transaction (waited longer than lock_timeout): canceling statement due to lock timeout');
    expect(translateDbError(pgError('57014', 'canceling statement due to statement timeout'))).to.be.instanceOf(StatementTimeoutError);
    expect(databaseFailure(pgError('55P03', 'x'), 'item')).to.equal(undefined);
    expect(databaseFailure(pgError('57014', 'x'), 'item')).to.equal(undefined);
    expect(databaseFailure(pgError('57014', 'canceling statement due to statement timeout'), 'run')?.message).to.equal('database too slow: a read was cancelled by statement_timeout (DATABASE_STATEMENT_TIMEOUT_MS): canceling statement due to statement timeout');
    expect(databaseFailure(pgError('25006', 'cannot execute INSERT in a read-only transaction'), 'item')?.exitCode).to.equal(3);
    expect(databaseFailure(pgError('23505', 'duplicate key'), 'run')).to.equal(undefined);
  });
});
