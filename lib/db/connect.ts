/**
 * Opens the database: knex over pg when DATABASE_URL is set, over PGlite (real
 * PostgreSQL compiled to WebAssembly, in EMBEDDED_DB_DIR) when it is not. The same
 * SQL runs on both. Both drivers are set to return the same JavaScript types:
 * `date` as 'YYYY-MM-DD' text (never a local-time Date), `int8` as a number,
 * `numeric` as exact decimal text, `timestamptz` as a Date.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import type { PGlite } from '@electric-sql/pglite';
import type { Config, DatabaseTimeouts } from '../config.ts';
import { ConfigError, DependencyError, messageOf } from '../errors.ts';
import { redact } from '../telemetry/redact.ts';
import { acquireEmbeddedLock } from './embedded-lock.ts';
import { jobSessionSql } from './session.ts';

export type Db = Knex;

/** An open database; the entrypoint owns it and calls `close()`. */
export interface Database {
  knex: Knex;
  kind: 'postgres' | 'pglite';
  /** Where it is, without credentials (for logs). */
  description: string;
  /** PostgreSQL: the session timeouts every pool connection gets (lib/db/session.ts); none on PGlite. */
  timeouts?: DatabaseTimeouts;
  close(): Promise<void>;
}

const QUIET_KNEX_LOG = { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined };

const DATE = 1082;
const INT8 = 20;

const pgTypes = {
  getTypeParser(oid: number, format?: string) {
    if (oid === DATE) return (v: string) => v;
    if (oid === INT8) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/**
 * PGlite and its knex client are loaded only when used: a job on PostgreSQL (every
 * CronJob) does not load them (~60 ms of CPU at every start, bench/FINDINGS.md).
 */
const loadPglite = async (): Promise<typeof PGlite> => (await import('@electric-sql/pglite')).PGlite;
const requireCjs = createRequire(import.meta.url);
const pgliteClient = (): typeof knexFactory.Client => requireCjs('knex-pglite') as typeof knexFactory.Client;

const pgliteParsers = {
  [DATE]: (v: string) => v,
  [INT8]: (v: string) => Number(v),
};

export interface OpenOptions {
  /** Shown in pg_stat_activity: which job holds a connection. */
  applicationName: string;
}

/**
 * Opens and checks the database. Throws DependencyError (exit 3) when it cannot be
 * reached, with the URL's password never in the message.
 */
export async function openDatabase(config: Config, options: OpenOptions): Promise<Database> {
  return config.databaseUrl ? openPostgres(config.databaseUrl, config.databasePoolMax, options, config.databaseTimeouts) : openEmbedded(config.embeddedDbDir);
}

type PgConnection = { query(sql: string, cb: (err: Error | null) => void): void };

async function openPostgres(url: string, poolMax: number, options: OpenOptions, timeouts?: DatabaseTimeouts): Promise<Database> {
  const where = describeUrl(url);
  const knex = knexFactory({
    client: 'pg',
    connection: {
      connectionString: url,
      application_name: options.applicationName.slice(0, 63),
      types: pgTypes,
      connectionTimeoutMillis: 10_000,
    } as Knex.PgConnectionConfig,
    pool: {
      min: 0,
      max: poolMax,
      // Each new connection gets the job's session timeouts before any work (session.ts).
      ...(timeouts ? { afterCreate: (conn: PgConnection, done: (err: Error | null, conn: PgConnection) => void) => conn.query(jobSessionSql(timeouts), (err) => done(err, conn)) } : {}),
    },
    acquireConnectionTimeout: 15_000,
    // knex prints pool warnings with console by default; our errors say it once, redacted.
    log: QUIET_KNEX_LOG,
  });
  try {
    await knex.raw('select 1');
  } catch (err) {
    await knex.destroy().catch(() => undefined);
    throw new DependencyError(`database unreachable at ${where}: ${redact(messageOf(err))}`, { cause: err });
  }
  return { knex, kind: 'postgres', description: where, ...(timeouts ? { timeouts } : {}), close: () => knex.destroy() };
}

async function openEmbedded(dir: string): Promise<Database> {
  const dataDir = path.resolve(dir);
  try {
    fs.mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    throw new ConfigError(`EMBEDDED_DB_DIR ${dir} cannot be created: ${messageOf(err)}`);
  }
  // PGlite is one process's database: a second process on the same folder would
  // corrupt it, so a lock file keeps it to one at a time.
  const release = acquireEmbeddedLock(dataDir);
  let pglite: PGlite;
  try {
    pglite = await (await loadPglite()).create({ dataDir, parsers: pgliteParsers });
  } catch (err) {
    release();
    throw new DependencyError(`embedded database in ${dir} cannot be opened: ${messageOf(err)}`, { cause: err });
  }
  const knex = knexFactory({ client: pgliteClient(), connection: { pglite } as never });
  return {
    knex,
    kind: 'pglite',
    description: `embedded:${dataDir}`,
    close: async () => {
      try {
        await knex.destroy();
      } finally {
        if (!pglite.closed) await pglite.close().catch(() => undefined);
        release();
      }
    },
  };
}

/** host:port/database of a URL, never its password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Wraps an existing PGlite (tests: an in-memory database) as a Database. */
export function wrapPglite(pglite: PGlite): Database {
  const knex = knexFactory({ client: pgliteClient(), connection: { pglite } as never });
  return { knex, kind: 'pglite', description: 'embedded:memory', close: () => knex.destroy() };
}

/** Creates an in-memory PGlite with the suite's type parsers (tests). */
export async function createMemoryPglite(): Promise<PGlite> {
  return (await loadPglite()).create({ parsers: pgliteParsers });
}

/** Opens a PostgreSQL Database for an explicit URL (tests, bench); with `timeouts`, its connections get them as a job's do. */
export function openPostgresUrl(url: string, applicationName = 'exitosx-cron', poolMax = 10, timeouts?: DatabaseTimeouts): Promise<Database> {
  return openPostgres(url, poolMax, { applicationName }, timeouts);
}
