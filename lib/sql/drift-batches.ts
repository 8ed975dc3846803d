/**
 * The job's items, in batches, read set-based: pages of 250 companies (keyset on
 * id, read 20 pages at a time), each page's facts loaded with one statement per fact
 * (signals: one per 20 pages), and the owners who
 * receive the reports loaded with one more. Memory stays flat however many
 * companies there are.
 */
import type { Knex } from 'knex';
import {
  activeCompaniesPage,
  loadCompanyFacts,
  reportRecipients,
  reportsOwingEmailPage,
  signalFacts,
  DRIFT_BATCH_SIZE,
  type ActiveCompany,
  type CompanyScope,
  type OwedReport,
  type ReportRecipient,
} from './drift.ts';
import type { CompanyFacts } from '../drift/engine.ts';
import type { DriftPeriod } from '../drift/period.ts';

/** One active company of the period: its facts (null when its report already exists) and its report's recipients. */
export interface CompanyItem {
  company: ActiveCompany;
  facts: CompanyFacts | null;
  recipients: ReportRecipient[];
}

/** A stored report whose emails are owed, with its recipients. */
export interface OwedItem extends OwedReport {
  recipients: ReportRecipient[];
}

/**
 * Pages whose signal facts are read in one statement. The product schema has no
 * index on signals.company_id (only the partial one of open signals), so reading a
 * page's signals scans the whole table: 358 scans in a 1M-user run, 10 ms each on
 * the generated data, 166 ms each once detect-inactivity had added its signals
 * (59.6 s of SQL time in the run; bench/FINDINGS.md, round three). One scan per
 * block of pages instead, whose figures stay within the block: memory is flat.
 */
export const PAGES_PER_SIGNAL_SCAN = 20;

/** Yields the active companies in scope, a page at a time, with what is needed to report on them. */
export async function* companyBatches(db: Knex, period: DriftPeriod, scope: CompanyScope, batchSize = DRIFT_BATCH_SIZE): AsyncGenerator<CompanyItem[]> {
  const blockSize = batchSize * PAGES_PER_SIGNAL_SCAN;
  let after = '';
  for (;;) {
    const block = await activeCompaniesPage(db, period, scope, after, blockSize);
    if (!block.length) return;
    after = block[block.length - 1]!.id;
    const signals = await signalFacts(db, block.filter((c) => !c.hasReport).map((c) => c.id), period);
    for (let start = 0; start < block.length; start += batchSize) {
      const page = block.slice(start, start + batchSize);
      const todo = page.filter((c) => !c.hasReport);
      const facts = await loadCompanyFacts(db, todo, period, signals);
      const recipients = await reportRecipients(db, todo.map((c) => c.id));
      yield page.map((company) => ({ company, facts: facts.get(company.id) ?? null, recipients: recipients.get(company.id) ?? [] }));
    }
    if (block.length < blockSize) return;
  }
}

/** Yields the stored reports in scope whose emails are still owed (emailed_at null), a page at a time. */
export async function* owedReportBatches(db: Knex, scope: CompanyScope, batchSize = DRIFT_BATCH_SIZE): AsyncGenerator<OwedItem[]> {
  let after = '';
  for (;;) {
    const page = await reportsOwingEmailPage(db, scope, after, batchSize);
    if (!page.length) return;
    after = page[page.length - 1]!.id;
    const recipients = await reportRecipients(db, [...new Set(page.map((r) => r.companyId))]);
    yield page.map((r) => ({ ...r, recipients: recipients.get(r.companyId) ?? [] }));
    if (page.length < batchSize) return;
  }
}
