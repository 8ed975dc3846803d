/**
 * The read statements FINDINGS.md proposes to rewrite, side by side with the
 * jobs' current form: EXPLAIN ANALYZE of both with real bound parameters (a page
 * of 500 company ids from the middle of the table), on a database the bench made.
 *
 *   node bench/plan-alternatives.ts exitosx_bench_1000000_run   (after a run with --keep)
 */
import pg from 'pg';

const database = process.argv[2] ?? 'exitosx_bench_100000';
const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${database}` });
await c.connect();
try {
  const { rows: mid } = await c.query<{ id: string }>(`select id from companies order by id offset (select count(*) / 2 from companies) limit 1`);
  const ids = (await c.query<{ id: string }>(`select id from companies where id >= $1 order by id limit 500`, [mid[0]!.id])).rows.map((r) => r.id);
  const explain = async (label: string, sql: string, params: unknown[]) => {
    const r = await c.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${sql}`, params);
    const lines = r.rows.map((x) => x['QUERY PLAN']);
    const scans = lines.filter((l) => /Seq Scan|hashed SubPlan/.test(l)).map((l) => l.trim().replace(/\s+\(cost.*$/, '').replace(/^->\s*/, ''));
    console.log(`${label.padEnd(58)} ${lines.find((l) => l.startsWith('Execution'))}${scans.length ? `  [${scans.join('; ')}]` : ''}`);
  };
  const recipients = `select m.company_id, u.id as user_id, u.email, u.name, (coalesce(p.drift_reports, true) and not coalesce(p.unsubscribed_all, false)) as allowed`;
  await explain('drift reportRecipients, now: m.company_id = any($1)', `${recipients} from company_members m join users u on u.id = m.user_id and u.deleted_at is null left join email_preferences p on p.user_id = u.id where m.company_id = any($1::text[]) and m.role = 'OWNER' order by m.company_id, u.id`, [ids]);
  await explain('drift reportRecipients, proposed: unnest($1) join', `${recipients} from unnest($1::text[]) as ids(company_id) join company_members m on m.company_id = ids.company_id and m.role = 'OWNER' join users u on u.id = m.user_id and u.deleted_at is null left join email_preferences p on p.user_id = u.id order by m.company_id, u.id`, [ids]);
  const tasks = `select t.company_id, count(*) filter (where t.completed_at >= $2 and t.completed_at < $3) as completed, count(*) filter (where t.status in ('PENDING', 'IN_PROGRESS') and t.created_at < $3) as pending, count(*) filter (where t.status in ('PENDING', 'IN_PROGRESS') and t.created_at < $3 and t.due_at < $3) as overdue`;
  const bounds = [new Date('2026-02-01T00:00:00Z'), new Date('2026-03-01T00:00:00Z')];
  await explain('drift taskFacts, now: t.company_id = any($1)', `${tasks} from tasks t where t.company_id = any($1::text[]) group by t.company_id`, [ids, ...bounds]);
  await explain('drift taskFacts, proposed: unnest($1) join', `${tasks} from unnest($1::text[]) as ids(id) join tasks t on t.company_id = ids.id group by t.company_id`, [ids, ...bounds]);
  const active = (cond: string) => `select c.id, c.name, exists (select 1 from drift_reports r where r.company_id = c.id and r.period_start = $2) as has_report from companies c where c.deleted_at is null and ${cond} and c.id > $1 order by c.id limit 500`;
  await explain('drift activeCompaniesPage, now: exists or exists', active(`(exists (select 1 from assessments a where a.company_id = c.id) or exists (select 1 from financial_periods f where f.company_id = c.id))`), [ids[0], bounds[0]]);
  await explain('drift activeCompaniesPage, proposed: coalesce(limit-1 probes)', active(`coalesce((select true from assessments a where a.company_id = c.id limit 1), (select true from financial_periods f where f.company_id = c.id limit 1), false)`), [ids[0], bounds[0]]);
  const signals = `select s.company_id, count(*) filter (where s.created_at >= $2 and s.created_at < $3) as opened, count(*) filter (where s.resolved_at >= $2 and s.resolved_at < $3) as resolved`;
  await explain('drift signalFacts, now (per page)', `${signals} from signals s where s.company_id = any($1::text[]) and ((s.created_at >= $2 and s.created_at < $3) or (s.resolved_at >= $2 and s.resolved_at < $3)) group by s.company_id`, [ids, ...bounds]);
  await explain('drift signalFacts, proposed: once per run (all companies)', `${signals} from signals s where $1::text[] is not null and ((s.created_at >= $2 and s.created_at < $3) or (s.resolved_at >= $2 and s.resolved_at < $3)) group by s.company_id`, [ids, ...bounds]);
} finally {
  await c.end();
}
