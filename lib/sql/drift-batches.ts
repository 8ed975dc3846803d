/**
 * The job's items, in batches, read set-based: pages of ~500 companies (keyset on
 * id), each page's facts loaded with one statement per fact, and the owners who
 * receive the reports loaded with one more. Memory stays flat however many
 * companies there are.
 */
import type { Knex } from 'knex';
import {
  activeCompaniesPage,
  loadCompanyFacts,
  reportRecipients,
  reportsOwingEmailPage,
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

/** Yields the active companies in scope, a page at a time, with what is needed to report on them. */
export async function* companyBatches(db: Knex, period: DriftPeriod, scope: CompanyScope, batchSize = DRIFT_BATCH_SIZE): AsyncGenerator<CompanyItem[]> {
  let after = '';
  for (;;) {
    const page = await activeCompaniesPage(db, period, scope, after, batchSize);
    if (!page.length) return;
    after = page[page.length - 1]!.id;
    const todo = page.filter((c) => !c.hasReport);
    const facts = await loadCompanyFacts(db, todo, period);
    const recipients = await reportRecipients(db, todo.map((c) => c.id));
    yield page.map((company) => ({ company, facts: facts.get(company.id) ?? null, recipients: recipients.get(company.id) ?? [] }));
    if (page.length < batchSize) return;
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
