/**
 * generate-drift-reports (monthly, "0 6 1 * *"): for each active company without a
 * report for the month, compute its drift report, store it with a
 * DRIFT_REPORT_GENERATED ledger entry in one transaction, and email it to the
 * company's owners. Emails still owed for earlier reports (emailed_at null) are
 * sent first, without generating those reports again. See contract/JOBS.md.
 */
import { deliverReport, type DeliveryResult } from '../lib/drift/deliver.ts';
import { companyBatches, owedReportBatches } from '../lib/drift/batches.ts';
import { computeDriftReport } from '../lib/drift/engine.ts';
import { reportingPeriod } from '../lib/drift/period.ts';
import type { DriftReport } from '../lib/drift/report.ts';
import { createEmailService } from '../lib/email/service.ts';
import { countActiveCompanies, DRIFT_COLUMNS, insertDriftReport, markReportEmailed, type ReportRecipient } from '../lib/sql/drift.ts';
import type { JobContext, JobDefinition } from '../lib/runtime/job.ts';

const job: JobDefinition = {
  name: 'generate-drift-reports',
  schedule: '0 6 1 * *',
  description: 'Monthly drift report per active company: BRI, categories, valuation, tasks, signals, financials; emailed to the owners.',
  requiredColumns: DRIFT_COLUMNS,

  // A --period that is not a finished month is a usage error (exit 2), before any work.
  async preflight(ctx) {
    reportingPeriod(ctx.now, ctx.options.period);
  },

  async run(ctx: JobContext) {
    const period = reportingPeriod(ctx.now, ctx.options.period);
    const scope = { shard: ctx.shard, ...(ctx.options.companyId ? { companyId: ctx.options.companyId } : {}) };
    const emails = createEmailService({ config: ctx.config, db: ctx.db, log: ctx.log, dryRun: ctx.dryRun, now: ctx.now, types: ['DRIFT_REPORT'], signal: ctx.signal });
    ctx.defer(() => emails.close());
    const concurrency = ctx.config.email.concurrency;
    const counts = { emailsSent: 0, emailsSuppressed: 0, emailsFailed: 0, reportsAwaitingEmail: 0 };

    /** Emails a stored report to its owners; sets emailed_at once all are settled. */
    const email = async (reportId: string, report: DriftReport, recipients: ReportRecipient[]): Promise<DeliveryResult> => {
      const d = await deliverReport(emails, ctx.config.appBaseUrl, report, recipients);
      counts.emailsSent += d.sent;
      counts.emailsSuppressed += d.suppressed;
      counts.emailsFailed += d.failures.length;
      // A failed email does not undo the report; it stays owed (emailed_at null) and the
      // run ends unsuccessful so that the Job's retry sends it.
      for (const f of d.failures) ctx.tally.fail('email', f.key, new Error(f.error));
      if (d.settled) await markReportEmailed(ctx.db, reportId, ctx.now);
      else counts.reportsAwaitingEmail++;
      return d;
    };

    // 1. Emails still owed for reports already stored (any period).
    await ctx.forEach({
      phase: 'owed-emails',
      kind: 'report',
      source: owedReportBatches(ctx.db, scope),
      id: (r) => r.id,
      concurrency,
      handle: async (r) => ((await email(r.id, r.report, r.recipients)).settled ? 'emails-settled' : 'emails-owed'),
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
        await email(reportId, report, recipients);
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
      ...counts,
    };
  },
};

export default job;
