/**
 * generate-drift-reports (monthly, "0 6 1 * *"): for each active company without a
 * report for the month, compute its drift report, store it with a
 * DRIFT_REPORT_GENERATED ledger entry in one transaction, and email it to the
 * company's owners. Emails still owed for earlier reports (emailed_at null) are
 * sent first, without generating those reports again. See contract/JOBS.md.
 */
import { createReportMailer } from '../lib/email/drift-delivery.ts';
import { companyBatches, owedReportBatches } from '../lib/sql/drift-batches.ts';
import { computeDriftReport } from '../lib/drift/engine.ts';
import { reportingPeriod } from '../lib/drift/period.ts';
import { createEmailService } from '../lib/email/service.ts';
import { countActiveCompanies, DRIFT_COLUMNS, insertDriftReports } from '../lib/sql/drift.ts';
import type { JobContext, JobDefinition } from '../lib/runtime/job.ts';

/**
 * One page at a time: the job is CPU-bound in its own process (reports, emails), so
 * reading the next page meanwhile gained nothing measurable, and holding two pages
 * raised peak RSS at 1M users from ~283 to ~331 MB (bench/FINDINGS.md).
 */
const PAGES_IN_FLIGHT = 1;

const job: JobDefinition = {
  name: 'generate-drift-reports',
  schedule: '0 6 1 * *',
  description: 'Monthly drift report per active company: BRI, categories, valuation, tasks, signals, financials; emailed to the owners.',
  requiredColumns: DRIFT_COLUMNS,

  // A --period that is not a finished month is a usage error (exit 2), before any work.
  checkOptions(options, now) {
    reportingPeriod(now, options.period);
  },

  async run(ctx: JobContext) {
    const period = reportingPeriod(ctx.now, ctx.options.period);
    const scope = { shard: ctx.shard, ...(ctx.options.companyId ? { companyId: ctx.options.companyId } : {}) };
    const emails = createEmailService({ config: ctx.config, db: ctx.db, log: ctx.log, dryRun: ctx.dryRun, now: ctx.now, types: ['DRIFT_REPORT'], signal: ctx.signal });
    ctx.defer(() => emails.close());
    // A failed email is an error of the run (exit 1), so that the Job's retry sends what is owed.
    const mailer = createReportMailer({ emails, db: ctx.db, appBaseUrl: ctx.config.appBaseUrl, now: ctx.now, log: ctx.log, onFailure: (key, err) => ctx.tally.fail('email', key, err) });

    // 1. Emails still owed for reports already stored (any period), a page at a time.
    await ctx.forEach({
      phase: 'owed-emails',
      kind: 'report',
      source: owedReportBatches(ctx.db, scope),
      id: (r) => r.id,
      concurrency: PAGES_IN_FLIGHT,
      handleBatch: async (page) => (await mailer.deliver(page.map((r) => ({ reportId: r.id, report: r.report, recipients: r.recipients })))).map((settled) => (settled ? 'emails-settled' : 'emails-owed')),
    });

    // 2. New reports for the active companies without one, a page at a time: the
    //    page's reports computed, stored with their ledger entries in one
    //    transaction, then emailed. A page that fails is done again company by company.
    const { total } = await countActiveCompanies(ctx.db, period, scope);
    await ctx.forEach({
      phase: 'companies',
      kind: 'company',
      source: companyBatches(ctx.db, period, scope),
      total,
      id: (c) => c.company.id,
      concurrency: PAGES_IN_FLIGHT,
      handleBatch: async (page) => {
        const reports = page.flatMap(({ company, facts, recipients }) => (company.hasReport || !facts ? [] : [{ report: computeDriftReport(facts, period, ctx.now), recipients }]));
        const ids = await insertDriftReports(ctx.db, reports.map((r) => r.report), ctx.now);
        // A company whose report a racing run stored first is skipped: that run emails it.
        const stored = reports.filter((r) => ids.has(r.report.company.id)).map((r) => ({ reportId: ids.get(r.report.company.id)!, ...r }));
        for (const { reportId, report } of stored) ctx.log.debug('drift:generated', { reportId, companyId: report.company.id, period: period.month, direction: report.bri.direction, briDelta: report.bri.delta });
        await mailer.deliver(stored);
        return page.map(({ company }) => (ids.has(company.id) ? 'generated' : 'skipped'));
      },
    });

    return {
      period: period.month,
      periodStart: period.start.toISOString(),
      periodEnd: period.end.toISOString(),
      totalCompanies: total,
      generated: ctx.tally.outcomes.generated ?? 0,
      skipped: ctx.tally.outcomes.skipped ?? 0,
      ...mailer.counts,
    };
  },
};

export default job;
