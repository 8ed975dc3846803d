/**
 * What `exitosx-cron doctor` reads about the database itself: the server's version,
 * and the suite's migration table (knex's, in the suite schema) read without
 * touching it: knex's own `migrate.list()` creates the table and its lock table
 * when they are missing, which a read-only check must not do.
 */
import type { Knex } from 'knex';

/**
 * Names of the suite migrations applied, in order; undefined when the migration
 * table does not exist (the suite was never migrated on this database).
 */
export async function appliedMigrations(db: Knex, schema: string, table = 'knex_migrations'): Promise<string[] | undefined> {
  const { rows } = await db.raw<{ rows: Array<{ t: string | null }> }>(`select to_regclass(?) as t`, [`${schema}.${table}`]);
  if (!rows[0]?.t) return undefined;
  const names = await db.withSchema(schema).from(table).orderBy('id').pluck<string[]>('name');
  return names;
}

/** The server's version, e.g. "15.8". */
export async function serverVersion(db: Knex): Promise<string> {
  const { rows } = await db.raw<{ rows: Array<{ server_version: string }> }>('show server_version');
  return String(rows[0]?.server_version ?? 'unknown').split(' ')[0]!;
}
