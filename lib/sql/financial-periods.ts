/**
 * financial_periods written by the QuickBooks sync: one row per company and month,
 * upserted by (company_id, period_start) with change detection. A MANUAL row is
 * never overwritten, even by a race (the upsert's WHERE guards it in the database).
 */
import { Decimal } from 'decimal.js';
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

/**
 * Upserts a company's QuickBooks months. Reads the rows already there for those
 * months (one query), then writes only new and changed months (one multi-row
 * statement), and stamps `synced_at` on the unchanged ones.
 */
export async function upsertQuickBooksPeriods(db: Knex, companyId: string, periods: PeriodValues[], now: Date): Promise<UpsertCounts> {
  const counts: UpsertCounts = { created: 0, updated: 0, conflicted: 0, unchanged: 0 };
  if (!periods.length) return counts;
  const existing: Array<Record<string, unknown>> = await db('financial_periods')
    .where({ company_id: companyId })
    .whereIn('period_start', periods.map((p) => p.periodStart))
    .select('period_start', 'source', ...PERIOD_FIELDS);
  const byStart = new Map(existing.map((r) => [dateText(r.period_start), r]));

  const toWrite: Array<Record<string, unknown>> = [];
  const unchanged: string[] = [];
  for (const p of periods) {
    const row = byStart.get(p.periodStart);
    if (row?.source === 'MANUAL') {
      counts.conflicted++;
      continue;
    }
    if (row && PERIOD_FIELDS.every((f) => same(row[f], p.values[f]))) {
      unchanged.push(p.periodStart);
      continue;
    }
    toWrite.push({
      company_id: companyId,
      period_start: p.periodStart,
      period_end: p.periodEnd,
      ...Object.fromEntries(PERIOD_FIELDS.map((f) => [f, p.values[f]?.toFixed(2) ?? null])),
      source: 'QUICKBOOKS',
      synced_at: now,
      created_at: now,
      updated_at: now,
    });
  }
  if (toWrite.length) {
    const written: Array<{ period_start: unknown }> = await db('financial_periods')
      .insert(toWrite)
      .onConflict(['company_id', 'period_start'])
      .merge(['period_end', ...PERIOD_FIELDS, 'synced_at', 'updated_at'])
      .where('financial_periods.source', 'QUICKBOOKS')
      .returning(['period_start']);
    for (const w of written) {
      if (byStart.has(dateText(w.period_start))) counts.updated++;
      else counts.created++;
    }
    // A month that turned MANUAL between our read and our write was left alone.
    counts.conflicted += toWrite.length - written.length;
  }
  if (unchanged.length) {
    await db('financial_periods').where({ company_id: companyId, source: 'QUICKBOOKS' }).whereIn('period_start', unchanged).update({ synced_at: now });
    counts.unchanged = unchanged.length;
  }
  return counts;
}

/** Equal as money (2 decimals), null only equal to null. */
function same(stored: unknown, value: Decimal | null): boolean {
  if (stored === null || stored === undefined) return value === null;
  if (value === null) return false;
  return new Decimal(String(stored)).equals(value.toDecimalPlaces(2));
}

function dateText(v: unknown): string {
  return v instanceof Date ? v.toISOString().slice(0, 10) : String(v).slice(0, 10);
}
