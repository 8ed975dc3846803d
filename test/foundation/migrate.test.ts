import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { createMemoryPglite, openPostgresUrl, wrapPglite, type Database } from '../../lib/db/connect.ts';
import { migrate, productColumns } from '../../lib/db/migrate.ts';
import { adminQuery, backends, urlFor, type Backend } from '../support/db.ts';
import { ROOT } from '../support/run.ts';
import crypto from 'node:crypto';

/** The contract's schema, kept in the project's fixtures (a copy of contract/product-schema.sql). */
const FIXTURE_SQL = fs.readFileSync(path.join(ROOT, 'test/fixtures/product-schema.sql'), 'utf8');

/** Everything about the public schema that the contract fixes: columns, constraints, indexes. */
async function catalog(db: Knex) {
  const columns = await db.raw(`select table_name, column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, is_nullable, column_default
    from information_schema.columns where table_schema = 'public' order by table_name, column_name`);
  const constraints = await db.raw(`select conrelid::regclass::text as tbl, conname, contype, pg_get_constraintdef(oid) as def
    from pg_constraint where connamespace = 'public'::regnamespace order by 1, 2`);
  const indexes = await db.raw(`select tablename, indexname, indexdef from pg_indexes where schemaname = 'public' order by 1, 2`);
  return { columns: columns.rows, constraints: constraints.rows, indexes: indexes.rows };
}

/** Creates the contract's schema from the fixture file, one statement at a time. */
async function applyFixture(db: Knex): Promise<void> {
  for (const stmt of FIXTURE_SQL.replace(/--[^\n]*/g, '').split(/;\s*\n/).map((s) => s.trim()).filter(Boolean)) await db.raw(stmt);
}

async function fresh(kind: Backend): Promise<{ database: Database; drop(): Promise<void> }> {
  if (kind === 'pglite') {
    const database = wrapPglite(await createMemoryPglite());
    return { database, drop: () => database.close() };
  }
  const name = `exitosx_m_${crypto.randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const database = await openPostgresUrl(urlFor(name));
  return {
    database,
    drop: async () => {
      await database.close();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

describe('migrate', () => {
  for (const kind of backends()) {
    describe(`on ${kind}`, () => {
      it('creates the product schema exactly as the contract file says', async function () {
        this.timeout(60_000);
        const migrated = await fresh(kind);
        const reference = await fresh(kind);
        try {
          const result = await migrate(migrated.database.knex);
          expect(result).to.deep.equal({ productSchema: 'created', applied: ['001_runs'] });
          await applyFixture(reference.database.knex);
          const a = await catalog(migrated.database.knex);
          const b = await catalog(reference.database.knex);
          expect(a.columns).to.have.length.greaterThan(100);
          expect(a).to.deep.equal(b);
        } finally {
          await migrated.drop();
          await reference.drop();
        }
      });

      it('is a no-op the second time', async function () {
        this.timeout(60_000);
        const t = await fresh(kind);
        try {
          await migrate(t.database.knex);
          const before = await catalog(t.database.knex);
          expect(await migrate(t.database.knex)).to.deep.equal({ productSchema: 'present', applied: [] });
          expect(await catalog(t.database.knex)).to.deep.equal(before);
        } finally {
          await t.drop();
        }
      });

      it("adds only the suite's own tables to a database that has the product tables", async function () {
        this.timeout(60_000);
        const t = await fresh(kind);
        try {
          await applyFixture(t.database.knex);
          const before = await catalog(t.database.knex);
          expect(await migrate(t.database.knex)).to.deep.equal({ productSchema: 'present', applied: ['001_runs'] });
          expect(await catalog(t.database.knex)).to.deep.equal(before);
          const { rows } = await t.database.knex.raw(`select table_name from information_schema.tables where table_schema = 'exitosx_cron' order by 1`);
          expect(rows.map((r: { table_name: string }) => r.table_name)).to.deep.equal(['knex_migrations', 'knex_migrations_lock', 'runs']);
        } finally {
          await t.drop();
        }
      });

      it('refuses a product database that lacks a column the jobs use, naming it', async function () {
        this.timeout(60_000);
        const t = await fresh(kind);
        try {
          await applyFixture(t.database.knex);
          await t.database.knex.raw('alter table users drop column deleted_at');
          let error: Error | undefined;
          await migrate(t.database.knex).catch((e: Error) => (error = e));
          expect(error?.name).to.equal('ConfigError');
          expect(error?.message).to.contain('users.deleted_at');
        } finally {
          await t.drop();
        }
      });
    });
  }

  it('reads every product table and column from the contract SQL', () => {
    const tables = productColumns();
    expect(Object.keys(tables)).to.have.length(14);
    expect(tables.users).to.deep.equal(['id', 'email', 'name', 'created_at', 'deleted_at']);
    expect(tables.quickbooks_integrations).to.include.members(['realm_id', 'needs_reauth', 'last_sync_error']);
  });
});
