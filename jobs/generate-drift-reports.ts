/**
 * generate-drift-reports (monthly, "0 6 1 * *"): for each active company without a
 * report for the month, compute its drift report, store it with a
 * DRIFT_REPORT_GENERATED ledger entry in one transaction, and email it to the
 * company's owners. Emails still owed for earlier reports (emailed_at null) are
 * sent first, without generating those reports again. See contract/JOBS.md.
 */
import { createReportMailer } from '../lib/drift/deliver.ts';
import { companyBatches, owedReportBatches } from '../lib/drift/batches.ts';
import { computeDriftReport } from '../lib/drift/engine.ts';
import { reportingPeriod } from '../lib/drift/period.ts';
import { createEmailService } from '../lib/email/service.ts';
import { countActiveCompanies, DRIFT_COLUMNS, insertDriftReport } from '../lib/sql/drift.ts';
import type { JobContext, JobDefinition } from '../lib/runtime/job.ts';

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
    const concurrency = ctx.config.email.concurrency;

    // 1. Emails still owed for reports already stored (any period).
    await ctx.forEach({
      phase: 'owed-emails',
      kind: 'report',
      source: owedReportBatches(ctx.db, scope),
      id: (r) => r.id,
      concurrency,
      handle: async (r) => ((await mailer.deliver(r.id, r.report, r.recipients)) ? 'emails-settled' : 'emails-owed'),
    });

    // 2. New reports for the active companies without one.
    const { total } = await countActiveCompanies(ctx.db, period, scope);
    await ctx.forEach({
      phase: 'companies',
      kind: 'company',
      source: companyBatches(ctx.db, period, scope),
      total,
      id: (c) => c.company.id,
      concurrency,
      handle: async ({ company, facts, recipients }) => {
        if (company.hasReport || !facts) return 'skipped';
        const report = computeDriftReport(facts, period, ctx.now);
        const reportId = await insertDriftReport(ctx.db, report, ctx.now);
        if (!reportId) return 'skipped'; // a racing run stored it first, and emails it
        ctx.log.debug('drift:generated', { reportId, companyId: company.id, period: period.month, direction: report.bri.direction, briDelta: report.bri.delta });
        await mailer.deliver(reportId, report, recipients);
        return 'generated';
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
