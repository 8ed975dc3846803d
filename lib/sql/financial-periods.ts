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

/** One month to store; amounts as exact decimals, as their two-decimal text (`toFixed(2)`, what is stored), or null. */
export interface PeriodValues {
  periodStart: string;
  periodEnd: string;
  values: Record<PeriodField, Decimal | string | null>;
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
 * The months go to PostgreSQL as one JSON array of rows with one-letter keys, and
 * a null amount is left out (json_to_recordset reads a missing key as null). With
 * the column names as keys, a 25-month sync was ~9 kB of JSON, 180 MB a run at 1M
 * users, written to the socket and parsed by PostgreSQL: keys were half of it
 * (bench/FINDINGS.md, round four). `json`, not `jsonb`, here and in the other
 * batched statements: the rows are read once from the text, with no binary copy
 * built first (this statement 2-3% faster at 13 companies × 25 months; round six).
 */
const KEYS: Record<'company_id' | 'period_start' | 'period_end' | PeriodField, string> = {
  company_id: 'c', period_start: 's', period_end: 'e',
  revenue: 'r', cogs: 'g', gross_profit: 'p', operating_expenses: 'o', ebitda: 'b', net_income: 'n', total_assets: 'a', total_liabilities: 'l', equity: 'q', cash: 'h',
};
const ROW_COLUMNS = ([['company_id', 'text'], ['period_start', 'date'], ['period_end', 'date'], ...PERIOD_FIELDS.map((f) => [f, 'numeric'])] as Array<[keyof typeof KEYS, string]>)
  .map(([name, type]) => ({ name, key: KEYS[name], type }));

/**
 * The upsert as one statement, for the months of one or more companies, all parts
 * on the same snapshot:
 * - `v`: the months to store (money as 2-decimal strings, so equality is money equality);
 * - `old`: the rows already there for those months, and whether their amounts are the same;
 * - `written`: inserts the new months and overwrites the changed QUICKBOOKS ones; its
 *   ON CONFLICT … WHERE guards a row that is (or turned) MANUAL meanwhile, in the database;
 * - `stamped`: stamps `synced_at` on the unchanged QUICKBOOKS rows;
 * - then the counts per company. Whatever was to be written and was not is a conflict.
 * One statement for many companies is what lets the sync write a batch of
 * integrations in one round trip (bench/FINDINGS.md, sync-quickbooks).
 */
const UPSERT_SQL = `
with v as (
  select ${ROW_COLUMNS.map((c) => `${c.key} as ${c.name}`).join(', ')}
  from json_to_recordset(?::json) as v(${ROW_COLUMNS.map((c) => `${c.key} ${c.type}`).join(', ')})
),
old as (
  select fp.company_id, fp.period_start, fp.source = 'MANUAL' as manual, (${PERIOD_FIELDS.map((f) => `fp.${f}`).join(', ')}) is not distinct from (${V_FIELDS}) as same
  from financial_periods fp join v on v.company_id = fp.company_id and v.period_start = fp.period_start
),
written as (
  insert into financial_periods as fp (company_id, period_start, period_end, ${FIELDS}, source, synced_at, created_at, updated_at)
  select v.company_id, v.period_start, v.period_end, ${V_FIELDS}, 'QUICKBOOKS', ?::timestamptz, ?::timestamptz, ?::timestamptz
  from v left join old on old.company_id = v.company_id and old.period_start = v.period_start
  where old.period_start is null or not (old.manual or old.same)
  on conflict (company_id, period_start) do update
    set period_end = excluded.period_end, ${PERIOD_FIELDS.map((f) => `${f} = excluded.${f}`).join(', ')}, synced_at = excluded.synced_at, updated_at = excluded.updated_at
    where fp.source = 'QUICKBOOKS'
  returning fp.company_id, fp.period_start
),
stamped as (
  update financial_periods fp set synced_at = ?::timestamptz
  from old
  where fp.company_id = old.company_id and fp.period_start = old.period_start and old.same and not old.manual and fp.source = 'QUICKBOOKS'
)
select v.company_id,
  count(*)::int as total,
  count(w.period_start) filter (where old.period_start is null)::int as created,
  count(w.period_start) filter (where old.period_start is not null)::int as updated,
  count(*) filter (where old.same and not old.manual)::int as unchanged
from v
left join old on old.company_id = v.company_id and old.period_start = v.period_start
left join written w on w.company_id = v.company_id and w.period_start = v.period_start
group by v.company_id`;

const NO_MONTHS: UpsertCounts = Object.freeze({ created: 0, updated: 0, conflicted: 0, unchanged: 0 });

/**
 * Upserts a company's QuickBooks months in one statement (UPSERT_SQL): new months
 * inserted, changed QUICKBOOKS months overwritten, unchanged ones only stamped with
 * `synced_at`, MANUAL ones left alone and counted as conflicted.
 */
export async function upsertQuickBooksPeriods(db: Knex, companyId: string, periods: PeriodValues[], now: Date): Promise<UpsertCounts> {
  return (await upsertQuickBooksPeriodsMany(db, [{ companyId, periods }], now)).get(companyId)!;
}

/**
 * The same for several companies at once, in one statement: their counts by
 * company id (every company given has an entry; one without months counts zeros).
 * A company must appear once.
 */
export async function upsertQuickBooksPeriodsMany(db: Knex, companies: Array<{ companyId: string; periods: PeriodValues[] }>, now: Date): Promise<Map<string, UpsertCounts>> {
  const counts = new Map<string, UpsertCounts>();
  const months: Array<Record<string, string>> = [];
  for (const { companyId, periods } of companies) {
    counts.set(companyId, { ...NO_MONTHS });
    for (const p of periods) {
      const row: Record<string, string> = { c: companyId, s: p.periodStart, e: p.periodEnd };
      for (const f of PERIOD_FIELDS) {
        const v = p.values[f];
        if (v !== null) row[KEYS[f]] = typeof v === 'string' ? v : v.toFixed(2);
      }
      months.push(row);
    }
  }
  if (!months.length) return counts;
  const { rows } = await db.raw<{ rows: Array<{ company_id: string; total: number; created: number; updated: number; unchanged: number }> }>(UPSERT_SQL, [JSON.stringify(months), now, now, now, now]);
  for (const { company_id, total, created, updated, unchanged } of rows) counts.set(company_id, { created, updated, unchanged, conflicted: total - created - updated - unchanged });
  return counts;
}
