/**
 * The database, read only: reachable (PostgreSQL at DATABASE_URL), the product
 * columns every job uses present, the suite's migrations current. All reads run
 * in one READ ONLY transaction, so the server itself refuses any write; the
 * token-key check reads in it too. Three lines, so that each failure is its own.
 */
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import { missingColumns, SUITE_SCHEMA, suiteMigrationNames } from '../db/migrate.ts';
import { messageOf } from '../errors.ts';
import type { JobDefinition } from '../runtime/job.ts';
import { appliedMigrations, serverVersion } from '../sql/schema-info.ts';
import { fail, notConfigured, ok, skipped, type CheckResult } from './check.ts';

/** Runs the database checks, then `more` in the same read-only transaction; their results in order. */
export async function checkDatabase(config: Config, jobs: JobDefinition[], more: (db: Knex) => Promise<CheckResult>, whenUnreadable: (why: string) => CheckResult): Promise<CheckResult[]> {
  const unreadable = (why: string) => [skipped('product-columns', why), skipped('suite-migrations', why), whenUnreadable(why)];
  if (!config.databaseUrl) {
    const first = config.kubernetes.inPod
      ? fail('database', `DATABASE_URL is not set: in a pod the jobs would use a throwaway embedded database in ${config.embeddedDbDir}; set it in the Secret`)
      : notConfigured('database', `DATABASE_URL is not set: the jobs use the embedded database in ${config.embeddedDbDir} (doctor checks PostgreSQL only)`);
    return [first, ...unreadable('no PostgreSQL to check (DATABASE_URL is not set)')];
  }
  let database;
  try {
    database = await openDatabase(config, { applicationName: 'exitosx-cron:doctor' });
  } catch (err) {
    return [fail('database', `${messageOf(err)} (check DATABASE_URL and the NetworkPolicy's postgres egress)`), ...unreadable('the database is unreachable (see database)')];
  }
  try {
    return await database.knex.transaction(async (trx) => {
      await trx.raw('set transaction read only');
      const reachable = ok('database', `reachable at ${database.description} (PostgreSQL ${await serverVersion(trx)})`);
      const columns = await checkColumns(trx, jobs);
      const migrations = await checkMigrations(trx);
      return [reachable, columns, migrations, await more(trx)];
    });
  } catch (err) {
    // Connected, but a read failed (a connection lost midway, a permission refused): the database's line says so.
    return [fail('database', `connected to ${database.description}, but reading failed: ${messageOf(err)}`), ...unreadable('the database could not be read (see database)')];
  } finally {
    await database.close();
  }
}

/** Most items a failing line lists before "and N more". */
const MAX_LISTED = 12;

/**
 * Every product column the jobs read or write. A missing one names the jobs that
 * need it; a table missing whole is said once, as a table.
 */
async function checkColumns(db: Knex, jobs: JobDefinition[]): Promise<CheckResult> {
  const needed = new Map<string, Set<string>>(); // table.column → jobs
  const missing = new Set<string>();
  for (const job of jobs) {
    for (const [table, columns] of Object.entries(job.requiredColumns)) for (const c of columns) needed.set(`${table}.${c}`, (needed.get(`${table}.${c}`) ?? new Set()).add(job.name));
    for (const column of await missingColumns(db, job.requiredColumns)) missing.add(column);
  }
  if (!missing.size) return ok('product-columns', `all ${needed.size} columns the jobs use are present`);
  const byTable = Map.groupBy([...needed.keys()], (tc) => tc.split('.')[0]!);
  const items: string[] = [];
  for (const [table, columns] of byTable) {
    const gone = columns.filter((tc) => missing.has(tc));
    if (!gone.length) continue;
    const jobsOf = (tcs: string[]) => [...new Set(tcs.flatMap((tc) => [...needed.get(tc)!]))].join(', ');
    if (gone.length === columns.length) items.push(`table ${table} (${jobsOf(gone)})`);
    else items.push(...gone.map((tc) => `${tc} (${jobsOf([tc])})`));
  }
  const listed = items.slice(0, MAX_LISTED).join(', ') + (items.length > MAX_LISTED ? ` and ${items.length - MAX_LISTED} more` : '');
  return fail('product-columns', `missing ${listed}: DATABASE_URL points at another database, or the product schema is older than this suite expects`);
}

/** The suite's own migrations: all applied, none unknown to this version. */
async function checkMigrations(db: Knex): Promise<CheckResult> {
  const expected = suiteMigrationNames();
  const applied = await appliedMigrations(db, SUITE_SCHEMA);
  if (!applied) return fail('suite-migrations', `the suite's tables are missing (no ${SUITE_SCHEMA}.knex_migrations): run \`exitosx-cron migrate\` (the chart's pre-install hook does)`);
  const pending = expected.filter((m) => !applied.includes(m));
  const unknown = applied.filter((m) => !expected.includes(m));
  if (unknown.length) return fail('suite-migrations', `the database has migrations this version does not know (${unknown.join(', ')}): it was migrated by a newer version of the suite`);
  if (pending.length) return fail('suite-migrations', `${pending.length} pending (${pending.join(', ')}): run \`exitosx-cron migrate\``);
  return ok('suite-migrations', `current (${applied.length} applied, the last ${applied.at(-1)})`);
}
