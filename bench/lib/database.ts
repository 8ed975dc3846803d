/**
 * The bench's databases on the PostgreSQL server: one generated template per scale
 * (`exitosx_bench_<users>`, made with `migrate()` and the generator, then VACUUM
 * ANALYZE), and throw-away copies of it for each run (`CREATE DATABASE … TEMPLATE
 * … STRATEGY FILE_COPY`: a file copy, seconds even at 1M users), so that every run
 * starts from the same state.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../lib/db/migrate.ts';
import { openPostgresUrl } from '../../lib/db/connect.ts';
import { encryptToken } from '../../lib/quickbooks/token-crypto.ts';
import { generatorSteps, PRODUCT_TABLES, tableCounts, type Scale } from './generate.ts';

/** `postgres://…/<name>` from the server URL. */
export function urlFor(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs `fn` with a client on the server's maintenance database. */
export async function withAdmin<T>(serverUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlFor(serverUrl, 'postgres'), application_name: 'exitosx-bench' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const ident = (name: string) => {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  return `"${name}"`;
};

export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  await withAdmin(serverUrl, (c) => c.query(`drop database if exists ${ident(name)} with (force)`));
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: 'exitosx-bench-generate' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** What a template was generated with (kept as the database's comment). */
export interface TemplateMeta {
  version: number;
  scale: Scale;
  now: string;
  /** sha256 of the token key, first 12 hex digits: the tokens must decrypt with the run's key. */
  tokenKeyId: string;
  counts: Record<string, number>;
  generateMs: Record<string, number>;
}

/** Bump when the generator's output changes: older templates are then regenerated. */
export const GENERATOR_VERSION = 3;

export async function readTemplateMeta(serverUrl: string, name: string): Promise<TemplateMeta | null> {
  return withAdmin(serverUrl, async (c) => {
    const { rows } = await c.query<{ comment: string | null }>(`select shobj_description(oid, 'pg_database') as comment from pg_database where datname = $1`, [name]);
    if (!rows[0]?.comment) return null;
    try {
      return JSON.parse(rows[0].comment) as TemplateMeta;
    } catch {
      return null;
    }
  });
}

export interface GenerateOptions {
  serverUrl: string;
  name: string;
  scale: Scale;
  now: Date;
  tokenKey: Buffer;
  log: (line: string) => void;
}

/**
 * Creates the template afresh: migrate, load (two lanes in parallel, foreign-key
 * triggers off: the rows are consistent by construction), VACUUM ANALYZE.
 */
export async function generateTemplate(o: GenerateOptions): Promise<TemplateMeta> {
  const started = performance.now();
  const times: Record<string, number> = {};
  await dropDatabase(o.serverUrl, o.name);
  await withAdmin(o.serverUrl, (c) => c.query(`create database ${ident(o.name)}`));
  const url = urlFor(o.serverUrl, o.name);

  let t = performance.now();
  const db = await openPostgresUrl(url, 'exitosx-bench', 4);
  try {
    await migrate(db.knex);
  } finally {
    await db.close();
  }
  times.migrate = Math.round(performance.now() - t);

  const tokens = {
    access: Array.from({ length: 4 }, (_, i) => encryptToken(`bench-access-token-${i}`, o.tokenKey)),
    refresh: Array.from({ length: 4 }, (_, i) => encryptToken(`bench-refresh-token-${i}`, o.tokenKey)),
  };
  const lanes = generatorSteps(o.scale, o.now, tokens);
  // Secondary indexes are dropped during the load and rebuilt from their own
  // definitions afterwards (a sorted build instead of random inserts: the session
  // index on user_id alone is minutes at 3M rows otherwise). Keys and foreign keys stay.
  const secondary = await withClient(url, async (c) => (await c.query<{ name: string; def: string }>(
    `select i.indexname as name, i.indexdef as def from pg_indexes i
      where i.schemaname = 'public' and i.tablename = any($1::text[])
        and not exists (select 1 from pg_constraint k where k.conname = i.indexname)`,
    [PRODUCT_TABLES],
  )).rows);
  await withClient(url, async (c) => {
    for (const ix of secondary) await c.query(`drop index ${ident(ix.name)}`);
  });
  t = performance.now();
  await Promise.all(lanes.map(async (steps) => {
    const c = new pg.Client({ connectionString: url, application_name: 'exitosx-bench-generate' });
    await c.connect();
    try {
      await c.query(`set session_replication_role = replica`);
      await c.query(`set synchronous_commit = off`);
      await c.query(`set maintenance_work_mem = '256MB'`);
      for (const step of steps) {
        const s = performance.now();
        const r = await c.query(step.sql);
        times[step.table] = Math.round(performance.now() - s);
        o.log(`  ${step.table}: ${r.rowCount} rows in ${times[step.table]} ms`);
      }
    } finally {
      await c.end();
    }
  }));
  times.load = Math.round(performance.now() - t);

  t = performance.now();
  const byTable = [secondary.filter((_, i) => i % 2 === 0), secondary.filter((_, i) => i % 2 === 1)];
  await Promise.all(byTable.map((defs) => withClient(url, async (c) => {
    await c.query(`set maintenance_work_mem = '512MB'`);
    for (const ix of defs) await c.query(ix.def);
  })));
  times.indexes = Math.round(performance.now() - t);
  o.log(`  ${secondary.length} secondary indexes rebuilt in ${times.indexes} ms`);

  t = performance.now();
  const half = [PRODUCT_TABLES.filter((_, i) => i % 2 === 0), PRODUCT_TABLES.filter((_, i) => i % 2 === 1)];
  await Promise.all(half.map(async (tables) => {
    const c = new pg.Client({ connectionString: url, application_name: 'exitosx-bench-vacuum' });
    await c.connect();
    try {
      for (const table of tables) await c.query(`vacuum (analyze) ${table}`);
    } finally {
      await c.end();
    }
  }));
  times.vacuumAnalyze = Math.round(performance.now() - t);

  const check = await openPostgresUrl(url, 'exitosx-bench', 2);
  let counts: Record<string, number>;
  try {
    counts = await tableCounts(check.knex);
  } finally {
    await check.close();
  }
  times.total = Math.round(performance.now() - started);
  const meta: TemplateMeta = { version: GENERATOR_VERSION, scale: o.scale, now: o.now.toISOString(), tokenKeyId: keyId(o.tokenKey), counts, generateMs: times };
  await withAdmin(o.serverUrl, (c) => c.query(`comment on database ${ident(o.name)} is ${pg.escapeLiteral(JSON.stringify(meta))}`));
  return meta;
}

/** Names a key without revealing it. */
export function keyId(key: Buffer): string {
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/** A fresh copy of a template (dropped first when it exists). */
export async function copyDatabase(serverUrl: string, template: string, name: string): Promise<number> {
  const t = performance.now();
  await dropDatabase(serverUrl, name);
  await withAdmin(serverUrl, (c) => c.query(`create database ${ident(name)} template ${ident(template)} strategy file_copy`));
  return Math.round(performance.now() - t);
}

/** Size of a database, bytes. */
export async function databaseSize(serverUrl: string, name: string): Promise<number> {
  return withAdmin(serverUrl, async (c) => Number((await c.query<{ n: string }>(`select pg_database_size($1) as n`, [name])).rows[0]!.n));
}

/** Activity counters of one database (pg_stat_database), read after the backends have flushed them. */
export interface DbStats {
  xact_commit: number;
  xact_rollback: number;
  tup_returned: number;
  tup_fetched: number;
  tup_inserted: number;
  tup_updated: number;
  tup_deleted: number;
  blks_read: number;
  blks_hit: number;
}

export async function dbStats(serverUrl: string, name: string): Promise<DbStats> {
  return withAdmin(serverUrl, async (c) => {
    await c.query('select pg_stat_clear_snapshot()');
    const { rows } = await c.query<Record<keyof DbStats, string>>(
      `select xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, blks_read, blks_hit
         from pg_stat_database where datname = $1`,
      [name],
    );
    const r = rows[0]!;
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])) as unknown as DbStats;
  });
}

export function statsDelta(before: DbStats, after: DbStats): DbStats {
  return Object.fromEntries(Object.keys(before).map((k) => [k, after[k as keyof DbStats] - before[k as keyof DbStats]])) as unknown as DbStats;
}

/** The server's version and settings that matter to the numbers. */
export async function serverInfo(serverUrl: string): Promise<Record<string, string>> {
  return withAdmin(serverUrl, async (c) => {
    const { rows } = await c.query<{ name: string; setting: string }>(
      `select name, current_setting(name) as setting from pg_settings
        where name in ('server_version', 'shared_buffers', 'work_mem', 'max_connections', 'effective_cache_size', 'random_page_cost', 'synchronous_commit', 'shared_preload_libraries', 'jit')`,
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  });
}

/**
 * Lets the server finish the previous step's work before a job (or its floor) is
 * timed: a CHECKPOINT writes back what the last job dirtied, then any autovacuum
 * worker already running is waited for (up to `maxWaitMs`). Without it, the job
 * after generate-drift-reports ran while PostgreSQL wrote back and vacuumed that
 * job's rows, on the same two cores (bench/FINDINGS.md, round six).
 */
export async function quiesce(serverUrl: string, maxWaitMs = 120_000): Promise<{ checkpointMs: number; vacuumWaitMs: number }> {
  return withAdmin(serverUrl, async (c) => {
    const started = performance.now();
    await c.query('checkpoint');
    const checkpointMs = Math.round(performance.now() - started);
    const waitFrom = performance.now();
    for (;;) {
      const { rows } = await c.query<{ n: string }>(`select count(*) as n from pg_stat_activity where backend_type = 'autovacuum worker'`);
      if (Number(rows[0]!.n) === 0 || performance.now() - waitFrom > maxWaitMs) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    return { checkpointMs, vacuumWaitMs: Math.round(performance.now() - waitFrom) };
  });
}
