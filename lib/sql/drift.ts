/**
 * The drift-report job's SQL: the active companies of a month (keyset-paged), the
 * facts the drift engine needs for a batch of companies (one set-based statement
 * per fact, never one per company), the owners who receive the report, and the
 * drift_reports writes (report + DRIFT_REPORT_GENERATED ledger entry in one
 * transaction; `on conflict do nothing` keeps a racing run from writing twice).
 *
 * Every statement takes the batch as `?::text[]`; bounds are timestamptz, except
 * financial months, compared as dates ('YYYY-MM-DD' text, never a session-time-zone
 * cast of a timestamp).
 */
import { ACTIVE_COMPANY } from './active-company.ts';
import type { Knex } from 'knex';
import type { AssessmentFact, CompanyFacts, FinancialMonthFact, ValuationFact } from '../drift/engine.ts';
import type { DriftPeriod } from '../drift/period.ts';
import type { DriftReport, SignalSeverity } from '../drift/report.ts';
import { shardSql, type Shard } from '../runtime/shard.ts';
import { insertLedgerEntries } from './signals.ts';

/** Product columns this module reads or writes (checked at start). */
export const DRIFT_COLUMNS: Record<string, string[]> = {
  companies: ['id', 'name', 'deleted_at'],
  company_members: ['company_id', 'user_id', 'role'],
  users: ['id', 'email', 'name', 'deleted_at'],
  email_preferences: ['user_id', 'drift_reports', 'unsubscribed_all'],
  assessments: ['company_id', 'status', 'bri_score', 'category_scores', 'completed_at'],
  valuation_snapshots: ['company_id', 'valuation', 'currency', 'created_at'],
  tasks: ['company_id', 'status', 'due_at', 'completed_at', 'created_at'],
  signals: ['company_id', 'severity', 'created_at', 'resolved_at'],
  financial_periods: ['company_id', 'period_start', 'period_end', 'revenue', 'ebitda'],
  drift_reports: ['id', 'company_id', 'period_start', 'period_end', 'bri_score_start', 'bri_score_end', 'bri_delta', 'direction', 'report', 'emailed_at', 'created_at'],
  value_ledger_entries: ['company_id', 'signal_id', 'entry_type', 'summary', 'details', 'created_at'],
  // Written through the email service (lib/email/service.ts).
  email_log: ['id', 'user_id', 'to_email', 'email_type', 'idempotency_key', 'status', 'provider_message_id', 'error', 'created_at', 'sent_at'],
};

/** Which companies a run looks at: its shard, and `--company` when given. */
export interface CompanyScope {
  shard: Shard;
  companyId?: string;
}

/** Companies per page (and per batch of fact queries). */
export const DRIFT_BATCH_SIZE = 250;


function scopeSql(scope: CompanyScope, column: string): { sql: string; bindings: string[] } {
  const shard = shardSql(column, scope.shard);
  return scope.companyId ? { sql: `${shard} and ${column} = ?`, bindings: [scope.companyId] } : { sql: shard, bindings: [] };
}

/** Returns the number of active companies in scope, and how many already have a report for the period. */
export async function countActiveCompanies(db: Knex, period: DriftPeriod, scope: CompanyScope): Promise<{ total: number; reported: number }> {
  const s = scopeSql(scope, 'c.id');
  const { rows } = await db.raw<{ rows: Array<{ total: number; reported: number }> }>(
    `select count(*)::int8 as total,
            count(*) filter (where exists (select 1 from drift_reports r where r.company_id = c.id and r.period_start = ?))::int8 as reported
       from companies c
      where ${ACTIVE_COMPANY} and ${s.sql}`,
    [period.start, ...s.bindings],
  );
  return { total: Number(rows[0]?.total ?? 0), reported: Number(rows[0]?.reported ?? 0) };
}

export interface ActiveCompany {
  id: string;
  name: string;
  /** A drift report for the period already exists. */
  hasReport: boolean;
}

/**
 * Returns the next page of active companies in scope after `afterId` (by id), with whether each already has the period's report.
 *
 * The page is chosen first, then its reports are looked up by the unique
 * (company_id, period_start) index for the page's ids. An `exists` per row let the
 * planner hash every report of the period once per page instead: 60 ms a page at
 * 50k reports, growing as the run stores them (quadratic over a run; 54 s of a
 * 1M-user run's SQL time, bench/FINDINGS.md, round three). This way: ~4 ms.
 */
export async function activeCompaniesPage(db: Knex, period: DriftPeriod, scope: CompanyScope, afterId: string, limit = DRIFT_BATCH_SIZE): Promise<ActiveCompany[]> {
  const s = scopeSql(scope, 'c.id');
  const { rows } = await db.raw<{ rows: Array<{ id: string; name: string; has_report: boolean }> }>(
    `with page as materialized (
       select c.id, c.name
         from companies c
        where ${ACTIVE_COMPANY} and ${s.sql} and c.id > ?
        order by c.id
        limit ?),
     reported as materialized (
       select r.company_id from drift_reports r
        where r.period_start = ? and r.company_id = any(array(select id from page)))
     select p.id, p.name, p.id in (select company_id from reported) as has_report
       from page p
      order by p.id`,
    [...s.bindings, afterId, limit, period.start],
  );
  return rows.map((r) => ({ id: r.id, name: r.name, hasReport: r.has_report }));
}

// category_scores as an object of *text* values, so scores stay exact decimals.
const CATEGORY_TEXT = `case when jsonb_typeof(a.category_scores) = 'object'
  then (select jsonb_object_agg(k, v) from jsonb_each_text(a.category_scores) as e(k, v)) end`;

interface AssessmentRow {
  company_id: string;
  start_score: string | null; start_categories: Record<string, unknown> | null; start_at: Date | null;
  end_score: string | null; end_categories: Record<string, unknown> | null; end_at: Date | null;
  in_period: number;
}

/**
 * Returns, per company, the latest COMPLETED assessment before the period start and
 * before the period end (score, category scores as text, completion time), and how
 * many were completed inside the period.
 */
async function assessmentFacts(db: Knex, ids: string[], period: DriftPeriod): Promise<Map<string, CompanyFacts['bri']>> {
  const latestBefore = `select a.bri_score, ${CATEGORY_TEXT} as categories, a.completed_at
       from assessments a
      where a.company_id = c.id and a.status = 'COMPLETED' and a.bri_score is not null and a.completed_at < ?
      order by a.completed_at desc, a.id desc
      limit 1`;
  const { rows } = await db.raw<{ rows: AssessmentRow[] }>(
    `select c.id as company_id,
            s.bri_score as start_score, s.categories as start_categories, s.completed_at as start_at,
            e.bri_score as end_score, e.categories as end_categories, e.completed_at as end_at,
            (select count(*) from assessments a
              where a.company_id = c.id and a.status = 'COMPLETED' and a.completed_at >= ? and a.completed_at < ?)::int8 as in_period
       from unnest(?::text[]) as c(id)
       left join lateral (${latestBefore}) s on true
       left join lateral (${latestBefore}) e on true`,
    [period.start, period.end, ids, period.start, period.end],
  );
  const fact = (score: string | null, categories: Record<string, unknown> | null, at: Date | null): AssessmentFact | null =>
    score !== null && at ? { briScore: score, categoryScores: categories, completedAt: at } : null;
  return new Map(rows.map((r) => [r.company_id, { start: fact(r.start_score, r.start_categories, r.start_at), end: fact(r.end_score, r.end_categories, r.end_at), completedInPeriod: Number(r.in_period) }]));
}

/** Returns, per company, the latest valuation snapshot before the period start and before the period end. */
async function valuationFacts(db: Knex, ids: string[], period: DriftPeriod): Promise<Map<string, CompanyFacts['valuation']>> {
  const latestBefore = `select v.valuation, v.currency, v.created_at from valuation_snapshots v
      where v.company_id = c.id and v.created_at < ? order by v.created_at desc, v.id desc limit 1`;
  const { rows } = await db.raw<{ rows: Array<{ company_id: string; s_val: string | null; s_cur: string | null; s_at: Date | null; e_val: string | null; e_cur: string | null; e_at: Date | null }> }>(
    `select c.id as company_id, s.valuation as s_val, s.currency as s_cur, s.created_at as s_at,
            e.valuation as e_val, e.currency as e_cur, e.created_at as e_at
       from unnest(?::text[]) as c(id)
       left join lateral (${latestBefore}) s on true
       left join lateral (${latestBefore}) e on true`,
    [ids, period.start, period.end],
  );
  const fact = (v: string | null, cur: string | null, at: Date | null): ValuationFact | null => (v !== null && at ? { valuation: v, currency: cur ?? 'USD', createdAt: at } : null);
  return new Map(rows.map((r) => [r.company_id, { start: fact(r.s_val, r.s_cur, r.s_at), end: fact(r.e_val, r.e_cur, r.e_at) }]));
}

/**
 * Returns, per company with tasks: completed in the period; pending (created before
 * the period end, now PENDING or IN_PROGRESS); overdue (pending, due before the period end).
 */
async function taskFacts(db: Knex, ids: string[], period: DriftPeriod): Promise<Map<string, CompanyFacts['tasks']>> {
  const { rows } = await db.raw<{ rows: Array<{ company_id: string; completed: number; pending: number; overdue: number }> }>(
    `select t.company_id,
            count(*) filter (where t.completed_at >= ? and t.completed_at < ?)::int8 as completed,
            count(*) filter (where t.status in ('PENDING', 'IN_PROGRESS') and t.created_at < ?)::int8 as pending,
            count(*) filter (where t.status in ('PENDING', 'IN_PROGRESS') and t.created_at < ? and t.due_at < ?)::int8 as overdue
       from tasks t
      where t.company_id = any(?::text[])
      group by t.company_id`,
    [period.start, period.end, period.end, period.end, period.end, ids],
  );
  return new Map(rows.map((r) => [r.company_id, { completed: Number(r.completed), pending: Number(r.pending), overdue: Number(r.overdue) }]));
}

/** Returns, per company with signals: signals created in the period by severity, and signals resolved in the period. */
export async function signalFacts(db: Knex, ids: string[], period: DriftPeriod): Promise<Map<string, CompanyFacts['signals']>> {
  if (!ids.length) return new Map();
  const { rows } = await db.raw<{ rows: Array<{ company_id: string; critical: number; high: number; medium: number; low: number; resolved: number }> }>(
    `select s.company_id,
            count(*) filter (where s.created_at >= ? and s.created_at < ? and s.severity = 'CRITICAL')::int8 as critical,
            count(*) filter (where s.created_at >= ? and s.created_at < ? and s.severity = 'HIGH')::int8 as high,
            count(*) filter (where s.created_at >= ? and s.created_at < ? and s.severity = 'MEDIUM')::int8 as medium,
            count(*) filter (where s.created_at >= ? and s.created_at < ? and s.severity = 'LOW')::int8 as low,
            count(*) filter (where s.resolved_at >= ? and s.resolved_at < ?)::int8 as resolved
       from signals s
      where s.company_id = any(?::text[])
        and ((s.created_at >= ? and s.created_at < ?) or (s.resolved_at >= ? and s.resolved_at < ?))
      group by s.company_id`,
    [...Array<Date[]>(5).fill([period.start, period.end]).flat(), ids, period.start, period.end, period.start, period.end],
  );
  return new Map(rows.map((r) => {
    const opened: Record<SignalSeverity, number> = { CRITICAL: Number(r.critical), HIGH: Number(r.high), MEDIUM: Number(r.medium), LOW: Number(r.low) };
    return [r.company_id, { opened, resolved: Number(r.resolved) }];
  }));
}

/** Returns, per company with financials: the latest month ending before the period end, and the calendar month before it when stored. */
async function financialFacts(db: Knex, ids: string[], period: DriftPeriod): Promise<Map<string, NonNullable<CompanyFacts['financials']>>> {
  const endDate = period.end.toISOString().slice(0, 10);
  const { rows } = await db.raw<{ rows: Array<{ company_id: string; l_start: string; l_revenue: string | null; l_ebitda: string | null; p_start: string | null; p_revenue: string | null; p_ebitda: string | null }> }>(
    `select c.id as company_id, l.period_start as l_start, l.revenue as l_revenue, l.ebitda as l_ebitda,
            p.period_start as p_start, p.revenue as p_revenue, p.ebitda as p_ebitda
       from unnest(?::text[]) as c(id)
       join lateral (select f.period_start, f.revenue, f.ebitda from financial_periods f
                      where f.company_id = c.id and f.period_end < ?::date
                      order by f.period_start desc limit 1) l on true
       left join financial_periods p on p.company_id = c.id and p.period_start = (l.period_start - interval '1 month')::date`,
    [ids, endDate],
  );
  const month = (start: string, revenue: string | null, ebitda: string | null): FinancialMonthFact => ({ periodStart: start, revenue, ebitda });
  return new Map(rows.map((r) => [r.company_id, { latest: month(r.l_start, r.l_revenue, r.l_ebitda), previous: r.p_start ? month(r.p_start, r.p_revenue, r.p_ebitda) : null }]));
}

/** Loads the engine's facts for a batch of companies: one statement per fact. */
/**
 * `signals`: the signal facts of these companies when the caller read them already
 * for a larger set (signalFacts has no index to use: see companyBatches).
 */
export async function loadCompanyFacts(db: Knex, companies: Array<{ id: string; name: string }>, period: DriftPeriod, signalsRead?: Map<string, CompanyFacts['signals']>): Promise<Map<string, CompanyFacts>> {
  const ids = companies.map((c) => c.id);
  const out = new Map<string, CompanyFacts>();
  if (!ids.length) return out;
  // Sequential on purpose: a dry run (and PGlite) has one connection.
  const bri = await assessmentFacts(db, ids, period);
  const valuation = await valuationFacts(db, ids, period);
  const tasks = await taskFacts(db, ids, period);
  const signals = signalsRead ?? (await signalFacts(db, ids, period));
  const financials = await financialFacts(db, ids, period);
  for (const c of companies) {
    out.set(c.id, {
      company: { id: c.id, name: c.name },
      bri: bri.get(c.id) ?? { start: null, end: null, completedInPeriod: 0 },
      valuation: valuation.get(c.id) ?? { start: null, end: null },
      tasks: tasks.get(c.id) ?? { completed: 0, pending: 0, overdue: 0 },
      signals: signals.get(c.id) ?? { opened: {}, resolved: 0 },
      financials: financials.get(c.id) ?? null,
    });
  }
  return out;
}

/** An OWNER who may receive a company's drift report. */
export interface ReportRecipient {
  companyId: string;
  userId: string;
  email: string;
  name: string | null;
  /** Preferences allow drift reports (drift_reports and not unsubscribed_all; no row = allowed). */
  allowed: boolean;
}

/** Returns the non-deleted OWNERs of a batch of companies, with whether their preferences allow the report. */
export async function reportRecipients(db: Knex, companyIds: string[]): Promise<Map<string, ReportRecipient[]>> {
  const out = new Map<string, ReportRecipient[]>();
  if (!companyIds.length) return out;
  const { rows } = await db.raw<{ rows: Array<{ company_id: string; user_id: string; email: string; name: string | null; allowed: boolean }> }>(
    `select m.company_id, u.id as user_id, u.email, u.name,
            (coalesce(p.drift_reports, true) and not coalesce(p.unsubscribed_all, false)) as allowed
       from company_members m
       join users u on u.id = m.user_id and u.deleted_at is null
       left join email_preferences p on p.user_id = u.id
      where m.company_id = any(?::text[]) and m.role = 'OWNER'
      order by m.company_id, u.id`,
    [companyIds],
  );
  for (const r of rows) {
    const list = out.get(r.company_id) ?? [];
    list.push({ companyId: r.company_id, userId: r.user_id, email: r.email, name: r.name, allowed: r.allowed });
    out.set(r.company_id, list);
  }
  return out;
}

/**
 * Stores a report and its DRIFT_REPORT_GENERATED ledger entry in one transaction.
 * Returns the new report's id, or null when a report for the company and period
 * already existed (a racing run made it): then nothing is written.
 */
export async function insertDriftReport(db: Knex, report: DriftReport, now: Date): Promise<string | null> {
  return (await insertDriftReports(db, [report], now)).get(report.company.id) ?? null;
}

/**
 * Stores many reports (each of a different company) and their ledger entries in
 * one transaction: one multi-row insert, one ledger insert for the rows it made.
 * Every stored report commits with its own entry; a company whose report for the
 * period already existed (a racing run made it) gets nothing. Returns the new
 * reports' ids by company id.
 */
export async function insertDriftReports(db: Knex, reports: DriftReport[], now: Date): Promise<Map<string, string>> {
  if (!reports.length) return new Map();
  return db.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: Array<{ id: string; company_id: string }> }>(
      `insert into drift_reports (company_id, period_start, period_end, bri_score_start, bri_score_end, bri_delta, direction, report, created_at)
       select v.company_id, v.period_start, v.period_end, v.bri_start::numeric, v.bri_end::numeric, v.bri_delta::numeric, v.direction, v.report, ?
       from json_to_recordset(?::json) as v(company_id text, period_start timestamptz, period_end timestamptz,
                                              bri_start text, bri_end text, bri_delta text, direction text, report jsonb)
       on conflict (company_id, period_start) do nothing
       returning id, company_id`,
      [now, JSON.stringify(reports.map((r) => ({
        company_id: r.company.id, period_start: r.period.start, period_end: r.period.end,
        bri_start: r.bri.start, bri_end: r.bri.end, bri_delta: r.bri.delta, direction: r.bri.direction, report: r,
      })))],
    );
    const ids = new Map(rows.map((r) => [r.company_id, r.id]));
    await insertLedgerEntries(trx, reports.filter((r) => ids.has(r.company.id)).map((report) => ({
      companyId: report.company.id,
      signalId: null,
      entryType: 'DRIFT_REPORT_GENERATED' as const,
      summary: `Drift report for ${report.period.month}: ${report.bri.direction}`,
      details: { driftReportId: ids.get(report.company.id), period: report.period.month, briStart: report.bri.start, briEnd: report.bri.end, briDelta: report.bri.delta, direction: report.bri.direction },
    })), now);
    return ids;
  });
}

/** A stored report whose emails are still owed. */
export interface OwedReport {
  id: string;
  companyId: string;
  report: DriftReport;
}

/** Returns the next page (by id) of reports in scope with emailed_at null whose company is not deleted. */
export async function reportsOwingEmailPage(db: Knex, scope: CompanyScope, afterId: string, limit = DRIFT_BATCH_SIZE): Promise<OwedReport[]> {
  const s = scopeSql(scope, 'r.company_id');
  const { rows } = await db.raw<{ rows: Array<{ id: string; company_id: string; report: DriftReport }> }>(
    `select r.id, r.company_id, r.report
       from drift_reports r
       join companies c on c.id = r.company_id and c.deleted_at is null
      where r.emailed_at is null and ${s.sql} and r.id > ?
      order by r.id
      limit ?`,
    [...s.bindings, afterId, limit],
  );
  return rows.map((r) => ({ id: r.id, companyId: r.company_id, report: r.report }));
}

/** Records that every owner's email of these reports is settled (one statement). */
export async function markReportsEmailed(db: Knex, reportIds: string[], now: Date): Promise<void> {
  if (!reportIds.length) return;
  await db('drift_reports').whereIn('id', reportIds).whereNull('emailed_at').update({ emailed_at: now });
}
