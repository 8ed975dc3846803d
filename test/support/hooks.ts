/**
 * Root hooks: fail fast, with the fix, when the test PostgreSQL is not reachable.
 */
import pg from 'pg';
import { TEST_DATABASE_URL, backends, dropTemplates } from './db.ts';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    if (!backends().includes('postgres')) return;
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.end();
    } catch (err) {
      throw new Error(
        `PostgreSQL is not reachable at ${TEST_DATABASE_URL} (${(err as Error).message}). ` +
          `Start it (pg_ctlcluster 15 main start) or set TEST_DATABASE_URL; TEST_BACKENDS=pglite runs the embedded half only.`,
        { cause: err },
      );
    }
  },
  async afterAll() {
    await dropTemplates();
  },
};
