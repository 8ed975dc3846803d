/**
 * Factories and readers for the drift-report tests (beyond test/support/factories.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import type { CompanyFacts } from '../../lib/drift/engine.ts';
import type { DriftReport } from '../../lib/drift/report.ts';

let seq = 0;
const next = (prefix: string) => `${prefix}_${process.pid}_d${++seq}`;
type Row = Record<string, unknown>;

export async function aValuation(db: Knex, companyId: string, valuation: string, createdAt: Date, over: Row = {}): Promise<void> {
  await db('valuation_snapshots').insert({ id: next('val'), company_id: companyId, valuation, currency: 'USD', created_at: createdAt, ...over });
}

export async function aSignal(db: Knex, companyId: string, over: Row = {}): Promise<void> {
  await db('signals').insert({
    company_id: companyId, channel: 'ASSESSMENT', event_type: next('evt'), category: 'FINANCIAL', severity: 'MEDIUM', confidence: 'LIKELY', title: 'A signal', ...over,
  });
}

/** Category scores, all six keys. */
export const scores = (FINANCIAL: number, TRANSFERABILITY: number, OPERATIONAL: number, MARKET: number, LEGAL_TAX: number, PERSONAL: number) =>
  JSON.stringify({ FINANCIAL, TRANSFERABILITY, OPERATIONAL, MARKET, LEGAL_TAX, PERSONAL });

export interface StoredReport {
  id: string;
  company_id: string;
  period_start: Date;
  period_end: Date;
  bri_score_start: string | null;
  bri_score_end: string | null;
  bri_delta: string | null;
  direction: string;
  report: DriftReport;
  emailed_at: Date | null;
}

export async function storedReports(db: Knex): Promise<StoredReport[]> {
  return db('drift_reports').select('*').orderBy(['company_id', 'period_start']);
}

export async function reportOf(db: Knex, companyId: string): Promise<StoredReport> {
  const rows = (await storedReports(db)).filter((r) => r.company_id === companyId);
  if (rows.length !== 1) throw new Error(`expected one report for ${companyId}, found ${rows.length}`);
  return rows[0]!;
}

export async function emailLog(db: Knex): Promise<Array<{ user_id: string; idempotency_key: string; status: string; error: string | null }>> {
  return db('email_log').select('user_id', 'idempotency_key', 'status', 'error').orderBy('idempotency_key');
}

export async function ledger(db: Knex, entryType = 'DRIFT_REPORT_GENERATED'): Promise<Array<{ company_id: string; summary: string; details: Record<string, unknown> }>> {
  return db('value_ledger_entries').select('company_id', 'summary', 'details').where({ entry_type: entryType }).orderBy('company_id');
}

/** A fresh outbox folder, and one that cannot be written (a path under a regular file). */
export function outboxDirs(): { dir: string; broken: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-drift-outbox-'));
  const file = path.join(dir, 'not-a-dir');
  fs.writeFileSync(file, '');
  return { dir: path.join(dir, 'out'), broken: path.join(file, 'out'), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The .html files written to an outbox folder. */
export function outboxHtml(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.html')).sort() : [];
}

/** A company's facts for the pure engine: nothing known unless overridden. */
export function someFacts(over: Partial<CompanyFacts> = {}, company = { id: 'cmp_1', name: 'Harbor Dental LLC' }): CompanyFacts {
  return {
    company,
    bri: { start: null, end: null, completedInPeriod: 0 },
    valuation: { start: null, end: null },
    tasks: { completed: 0, pending: 0, overdue: 0 },
    signals: { opened: {}, resolved: 0 },
    financials: null,
    ...over,
  };
}
