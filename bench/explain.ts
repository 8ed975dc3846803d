/**
 * EXPLAIN (ANALYZE, BUFFERS) of the jobs' main read statements, exactly as the
 * jobs send them: the first page of each job's item source is pulled through the
 * suite's own SQL modules while knex's `query` events record every statement, and
 * each distinct statement is explained with its real bindings. On a fresh copy of
 * the template (the jobs' writes are not needed for the reads' plans).
 *
 *   node bench/explain.ts --users 100000 > bench/results/explain-100000.txt
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openPostgresUrl } from '../lib/db/connect.ts';
import { companyBatches } from '../lib/sql/drift-batches.ts';
import { inactiveOwnerBatches, openInactivitySignalBatches } from '../lib/sql/inactivity.ts';
import { syncCandidatePages } from '../lib/sql/quickbooks.ts';
import { copyDatabase, dropDatabase, urlFor } from './lib/database.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    now: { type: 'string', default: '2026-03-02T08:00:00Z' },
    server: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    shards: { type: 'string', default: '1' },
  },
});
const now = new Date(values.now);
const template = `exitosx_bench_${values.users}`;
const name = `${template}_explain`;
await copyDatabase(values.server, template, name);
const shard = { count: Number(values.shards), index: 0 };
const db = await openPostgresUrl(urlFor(values.server, name), 'exitosx-bench-explain', 2);
const seen: Array<{ source: string; sql: string; bindings: unknown[] }> = [];
let source = '';
db.knex.on('query', (q: { sql: string; bindings?: unknown[] }) => {
  if (!seen.some((s) => s.sql === q.sql)) seen.push({ source, sql: q.sql, bindings: q.bindings ?? [] });
});
try {
  const first = async <T>(label: string, gen: AsyncGenerator<T>) => {
    source = label;
    const t = performance.now();
    await gen.next();
    await gen.return(undefined as never);
    console.log(`# ${label}: first page in ${Math.round(performance.now() - t)} ms`);
  };
  const period = { month: '2026-02', start: new Date('2026-02-01T00:00:00Z'), end: new Date('2026-03-01T00:00:00Z') };
  await first('detect-inactivity: returned users (open signals page)', openInactivitySignalBatches(db.knex, { now, shard }));
  await first('detect-inactivity: candidates page', inactiveOwnerBatches(db.knex, { now, shard, minDaysInactive: 21 }));
  await first('generate-drift-reports: companies page + facts + recipients', companyBatches(db.knex, period, { shard }));
  await first('sync-quickbooks: candidates page', syncCandidatePages(db.knex, { shard }));
} finally {
  await db.close();
}

const client = new pg.Client({ connectionString: urlFor(values.server, name) });
await client.connect();
try {
  for (const s of seen) {
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${s.sql}`, s.bindings);
    const plan = rows.map((r) => r['QUERY PLAN']);
    const total = plan.find((l) => l.startsWith('Execution Time'));
    console.log(`\n## ${s.source} — ${total ?? ''}\n${s.sql.replace(/\s+/g, ' ').slice(0, 400)}…\n${plan.join('\n')}`);
  }
} finally {
  await client.end();
  await dropDatabase(values.server, name);
}
