/**
 * `exitosx-cron migrate`. On an empty database: the product schema exactly as the
 * contract says, then the suite's own tables. On the product's database (its tables
 * already there): only the suite's own tables, after checking that every product
 * column exists. The suite's tables live apart, in the `exitosx_cron` schema, and
 * are versioned by knex's migrator (numbered files, never edited once landed).
 */
import type { Knex } from 'knex';
import { ConfigError } from '../errors.ts';
import { PRODUCT_SCHEMA_SQL } from './product-schema.ts';
import * as m001 from './migrations/001_runs.ts';

export const SUITE_SCHEMA = 'exitosx_cron';

/** The suite's migrations, in order. Append new ones; never edit or reorder. */
const MIGRATIONS: Array<{ name: string; up(k: Knex): Promise<void>; down(k: Knex): Promise<void> }> = [m001];

/** The names of the suite's migrations, in order (what `migrate` would apply on an empty suite schema). */
export function suiteMigrationNames(): string[] {
  return MIGRATIONS.map((m) => m.name);
}

const migrationSource: Knex.MigrationSource<(typeof MIGRATIONS)[number]> = {
  getMigrations: async () => MIGRATIONS,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

/** The product schema's statements, one per entry (PGlite runs one statement per call). */
export function productStatements(): string[] {
  return PRODUCT_SCHEMA_SQL.replace(/--[^\n]*/g, '')
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Every product table and its columns, read from the contract's SQL. */
export function productColumns(): Record<string, string[]> {
  const tables: Record<string, string[]> = {};
  for (const stmt of productStatements()) {
    const m = /^CREATE TABLE (\w+) \(([\s\S]*)\)$/.exec(stmt);
    if (!m) continue;
    tables[m[1]!] = m[2]!
      .split('\n')
      .map((l) => /^\s*([a-z_]+)\s+(text|timestamptz|boolean|numeric|jsonb|date|char)\b/.exec(l)?.[1])
      .filter((c): c is string => Boolean(c));
  }
  return tables;
}

/**
 * Lists `table.column` pairs of `required` that the database lacks (in the
 * schemas on the search path).
 */
export async function missingColumns(db: Knex, required: Record<string, string[]>): Promise<string[]> {
  const tables = Object.keys(required);
  const { rows } = await db.raw<{ rows: Array<{ table_name: string; column_name: string }> }>(
    `select table_name, column_name from information_schema.columns
      where table_schema = any(current_schemas(false)) and table_name = any(?::text[])`,
    [tables],
  );
  const present = new Set(rows.map((r) => `${r.table_name}.${r.column_name}`));
  return tables.flatMap((t) => required[t]!.map((c) => `${t}.${c}`)).filter((tc) => !present.has(tc));
}

/** Throws ConfigError (exit 2) listing every column a job needs that is missing. */
export async function assertColumns(db: Knex, required: Record<string, string[]>): Promise<void> {
  const missing = await missingColumns(db, required);
  if (missing.length) throw new ConfigError(`database is missing columns the job uses: ${missing.join(', ')} (run exitosx-cron migrate, or check DATABASE_URL)`);
}

export interface MigrateResult {
  /** 'created' on an empty database, 'present' on the product's. */
  productSchema: 'created' | 'present';
  /** Suite migrations applied by this call (empty when up to date). */
  applied: string[];
}

/** Brings the database up to date; safe to run again (a no-op then). */
export async function migrate(db: Knex): Promise<MigrateResult> {
  const expected = productColumns();
  const { rows } = await db.raw<{ rows: Array<{ table_name: string }> }>(
    `select table_name from information_schema.tables where table_schema = any(current_schemas(false)) and table_name = any(?::text[])`,
    [Object.keys(expected)],
  );
  let productSchema: MigrateResult['productSchema'];
  if (rows.length === 0) {
    await db.transaction(async (trx) => {
      for (const stmt of productStatements()) await trx.raw(stmt);
    });
    productSchema = 'created';
  } else {
    await assertColumns(db, expected);
    productSchema = 'present';
  }
  await db.raw(`create schema if not exists ${SUITE_SCHEMA}`);
  const [, applied] = (await db.migrate.latest({ migrationSource, schemaName: SUITE_SCHEMA, tableName: 'knex_migrations' })) as [number, string[]];
  return { productSchema, applied };
}
