/**
 * Test databases, real ones: each suite that calls `eachBackend` gets its own
 * PostgreSQL database (cloned from a template migrated once per test process) and
 * its own in-memory PGlite, so test files never see each other's rows and several
 * test processes can share one server.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import pg from 'pg';
import { createMemoryPglite, openPostgresUrl, wrapPglite, type Database } from '../../lib/db/connect.ts';
import { migrate, productColumns } from '../../lib/db/migrate.ts';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type Backend = 'postgres' | 'pglite';

/** Backends to test: TEST_BACKENDS=postgres,pglite (the default: both). */
export function backends(): Backend[] {
  return (process.env.TEST_BACKENDS ?? 'postgres,pglite').split(',').map((s) => s.trim()) as Backend[];
}

export interface TestDb {
  kind: Backend;
  database: Database;
  knex: Knex;
  /** The database's URL (PostgreSQL only): for subprocess runs of the CLI. */
  url: string | undefined;
  /** Empties every product table and the run history. */
  truncate(): Promise<void>;
  close(): Promise<void>;
}

/** A URL for another database on the test server. */
export function urlFor(database: string): string {
  const u = new URL(TEST_DATABASE_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs one statement on the server's maintenance database. */
export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

let template: Promise<string> | undefined;

/** A migrated template database for this test process, made once. */
function templateDatabase(): Promise<string> {
  template ??= (async () => {
    const name = `exitosx_tpl_${process.pid}_${crypto.randomBytes(3).toString('hex')}`;
    await adminQuery(`create database ${name}`);
    const db = await openPostgresUrl(urlFor(name), 'exitosx-test');
    try {
      await migrate(db.knex);
    } finally {
      await db.close();
    }
    templatesToDrop.push(name);
    return name;
  })();
  return template;
}
const templatesToDrop: string[] = [];

/** Drops this process's template (root after-all hook). */
export async function dropTemplates(): Promise<void> {
  for (const name of templatesToDrop.splice(0)) await adminQuery(`drop database if exists ${name} with (force)`).catch(() => undefined);
}

const TABLES = [...Object.keys(productColumns()), 'exitosx_cron.runs'];

/** Creates a fresh, migrated database of the given kind. */
export async function createTestDb(kind: Backend): Promise<TestDb> {
  if (kind === 'postgres') {
    const name = `exitosx_t_${crypto.randomBytes(5).toString('hex')}`;
    await adminQuery(`create database ${name} template ${await templateDatabase()}`);
    const url = urlFor(name);
    const database = await openPostgresUrl(url, 'exitosx-test');
    return {
      kind, database, knex: database.knex, url,
      truncate: () => database.knex.raw(`truncate ${TABLES.join(', ')} cascade`).then(() => undefined),
      close: async () => {
        await database.close();
        await adminQuery(`drop database if exists ${name} with (force)`);
      },
    };
  }
  const database = wrapPglite(await createMemoryPglite());
  await migrate(database.knex);
  return {
    kind, database, knex: database.knex, url: undefined,
    truncate: () => database.knex.raw(`truncate ${TABLES.join(', ')} cascade`).then(() => undefined),
    close: () => database.close(),
  };
}

/**
 * Defines the suite body once per backend, each under its own `describe` with its
 * own database; `db()` returns it inside hooks and tests.
 */
export function eachBackend(body: (db: () => TestDb) => void): void {
  for (const kind of backends()) {
    describe(`on ${kind}`, function () {
      let t: TestDb | undefined;
      before(async function () {
        this.timeout(60_000);
        t = await createTestDb(kind);
      });
      after(async () => {
        await t?.close();
      });
      body(() => {
        if (!t) throw new Error('test database not ready');
        return t;
      });
    });
  }
}
