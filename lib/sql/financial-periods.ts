/**
 * financial_periods written by the QuickBooks sync: one row per company and month,
 * upserted by (company_id, period_start) with change detection. A MANUAL row is
 * never overwritten, even by a race (the upsert's WHERE guards it in the database).
 */
import type { Decimal } from 'decimal.js';
import type { Knex } from 'knex';

/** The money columns, in one place: the comparison and the upsert use the same list. */
export const PERIOD_FIELDS = ['revenue', 'cogs', 'gross_profit', 'operating_expenses', 'ebitda', 'net_income', 'total_assets', 'total_liabilities', 'equity', 'cash'] as const;
export type PeriodField = (typeof PERIOD_FIELDS)[number];

/** One month to store; amounts as exact decimals or null. */
export interface PeriodValues {
  periodStart: string;
  periodEnd: string;
  values: Record<PeriodField, Decimal | null>;
}

export interface UpsertCounts {
  created: number;
  updated: number;
  conflicted: number;
  unchanged: number;
}

const FIELDS = PERIOD_FIELDS.join(', ');
const V_FIELDS = PERIOD_FIELDS.map((f) => `v.${f}`).join(', ');

/**
 * The upsert as one statement, all parts on the same snapshot:
 * - `v`: the months to store (money as 2-decimal strings, so equality is money equality);
 * - `old`: the rows already there for those months, and whether their amounts are the same;
 * - `written`: inserts the new months and overwrites the changed QUICKBOOKS ones; its
 *   ON CONFLICT … WHERE guards a row that is (or turned) MANUAL meanwhile, in the database;
 * - `stamped`: stamps `synced_at` on the unchanged QUICKBOOKS rows;
 * - then the counts. Whatever was to be written and was not is a conflict.
 */
const UPSERT_SQL = `
with v as (
  select * from jsonb_to_recordset(?::jsonb) as v(period_start date, period_end date, ${PERIOD_FIELDS.map((f) => `${f} numeric`).join(', ')})
),
old as (
  select fp.period_start, fp.source = 'MANUAL' as manual, (${PERIOD_FIELDS.map((f) => `fp.${f}`).join(', ')}) is not distinct from (${V_FIELDS}) as same
  from financial_periods fp join v on v.period_start = fp.period_start
  where fp.company_id = ?
),
written as (
  insert into financial_periods as fp (company_id, period_start, period_end, ${FIELDS}, source, synced_at, created_at, updated_at)
  select ?::text, v.period_start, v.period_end, ${V_FIELDS}, 'QUICKBOOKS', ?::timestamptz, ?::timestamptz, ?::timestamptz
  from v left join old on old.period_start = v.period_start
  where old.period_start is null or not (old.manual or old.same)
  on conflict (company_id, period_start) do update
    set period_end = excluded.period_end, ${PERIOD_FIELDS.map((f) => `${f} = excluded.${f}`).join(', ')}, synced_at = excluded.synced_at, updated_at = excluded.updated_at
    where fp.source = 'QUICKBOOKS'
  returning fp.period_start
),
stamped as (
  update financial_periods fp set synced_at = ?::timestamptz
  from old
  where fp.company_id = ? and fp.period_start = old.period_start and old.same and not old.manual and fp.source = 'QUICKBOOKS'
)
select
  (select count(*) from v)::int as total,
  (select count(*) from written w where not exists (select 1 from old where old.period_start = w.period_start))::int as created,
  (select count(*) from written w where exists (select 1 from old where old.period_start = w.period_start))::int as updated,
  (select count(*) from old where old.same and not old.manual)::int as unchanged`;

/**
 * Upserts a company's QuickBooks months in one statement (UPSERT_SQL): new months
 * inserted, changed QUICKBOOKS months overwritten, unchanged ones only stamped with
 * `synced_at`, MANUAL ones left alone and counted as conflicted.
 */
export async function upsertQuickBooksPeriods(db: Knex, companyId: string, periods: PeriodValues[], now: Date): Promise<UpsertCounts> {
  if (!periods.length) return { created: 0, updated: 0, conflicted: 0, unchanged: 0 };
  const months = periods.map((p) => {
    const row: Record<string, string | null> = { period_start: p.periodStart, period_end: p.periodEnd };
    for (const f of PERIOD_FIELDS) row[f] = p.values[f]?.toFixed(2) ?? null;
    return row;
  });
  const { rows } = await db.raw<{ rows: Array<{ total: number; created: number; updated: number; unchanged: number }> }>(UPSERT_SQL, [JSON.stringify(months), companyId, companyId, now, now, now, now, companyId]);
  const { total, created, updated, unchanged } = rows[0]!;
  return { created, updated, unchanged, conflicted: total - created - updated - unchanged };
}
