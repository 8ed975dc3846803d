/**
 * Emailing a drift report to the company's owners. Each owner's email has the
 * idempotency key `drift-report:{companyId}:{YYYY-MM}:{userId}`, so calling this
 * again for the same report sends only what is still owed: owners who got theirs
 * (or were suppressed) are answered `already` by the email service.
 *
 * A report's emails are settled when every owner's email is SENT, SUPPRESSED, or
 * FAILED with an unknown outcome (a run stopped mid-send: it may have been
 * delivered, so it is never resent). Only then may the report's `emailed_at` be set.
 */
import type { Knex } from 'knex';
import { RowLockedError } from '../errors.ts';
import type { EmailService, SendResult } from './service.ts';
import { renderDriftReportEmail } from './templates/drift-report.ts';
import { OUTCOME_UNKNOWN } from '../sql/email-log.ts';
import { markReportsEmailed, type ReportRecipient } from '../sql/drift.ts';
import type { Logger } from '../telemetry/log.ts';
import type { DriftReport } from '../drift/report.ts';

/** The idempotency key of one owner's email of one report. */
export function driftEmailKey(companyId: string, month: string, userId: string): string {
  return `drift-report:${companyId}:${month}:${userId}`;
}

/** True when this email needs nothing more from any run. */
export function isSettled(result: SendResult): boolean {
  if (result.status === 'SENT' || result.status === 'SUPPRESSED') return true;
  return result.status === 'FAILED' && result.outcome === 'already' && (result.error ?? '').startsWith(OUTCOME_UNKNOWN);
}

export interface DeliveryResult {
  sent: number;
  suppressed: number;
  /** Emails answered `already` (settled by an earlier run). */
  already: number;
  /** `locked`: another transaction held the key's email_log row (lock timeout). */
  failures: Array<{ key: string; error: string; locked?: boolean }>;
  /** Every owner's email is settled: `emailed_at` may be set. */
  settled: boolean;
}

/** A stored report to email, with its owners. */
export interface ReportToEmail {
  reportId: string;
  report: DriftReport;
  recipients: ReportRecipient[];
}

/**
 * Sends (or records as suppressed, for owners whose preferences say no) each report
 * to each of its recipients: every email of the batch through one `sendMany` (its
 * database work batched, reports of one shape in one request). Results in the
 * batch's order.
 */
export async function deliverReports(emails: EmailService, appBaseUrl: string, batch: ReportToEmail[]): Promise<DeliveryResult[]> {
  const messages = batch.flatMap(({ report, recipients }) =>
    recipients.map((r) => ({
      email: { type: 'DRIFT_REPORT' as const, idempotencyKey: driftEmailKey(report.company.id, report.period.month, r.userId), userId: r.userId, to: r.email },
      render: () => renderDriftReportEmail(report, { name: r.name }, appBaseUrl),
      options: r.allowed ? {} : { suppress: 'preferences' as const },
      // The report's shape in the layout's template, its figures as values: reports
      // of one shape share SendGrid requests.
      groupable: true,
    })),
  );
  const results = await emails.sendMany(messages);
  let next = 0;
  return batch.map(({ recipients }) => {
    const out: DeliveryResult = { sent: 0, suppressed: 0, already: 0, failures: [], settled: true };
    for (let k = 0; k < recipients.length; k++, next++) {
      const result = results[next]!;
      if (result.outcome === 'sent') out.sent++;
      else if (result.outcome === 'suppressed') out.suppressed++;
      else if (result.outcome === 'already') out.already++;
      else if (result.outcome === 'failed' || result.outcome === 'unrecorded' || result.outcome === 'locked') {
        out.failures.push({ key: messages[next]!.email.idempotencyKey, error: result.error ?? 'unknown error', ...(result.outcome === 'locked' ? { locked: true } : {}) });
      }
      if (!isSettled(result)) out.settled = false;
    }
    return out;
  });
}

/** What a run's report emails came to (summary fields). */
export interface MailerCounts {
  emailsSent: number;
  emailsSuppressed: number;
  emailsFailed: number;
  /** Reports left with emailed_at null (an email failed, or another run is still sending it). */
  reportsAwaitingEmail: number;
}

export interface ReportMailer {
  /**
   * Emails stored reports to their owners and sets emailed_at (one statement) on
   * those whose emails are all settled; returns, per report, whether they are.
   */
  deliver(batch: ReportToEmail[]): Promise<boolean[]>;
  readonly counts: MailerCounts;
}

/**
 * The run's report mailer. A failed email does not undo its report: the report stays
 * owed (emailed_at null) for the next run, and `onFailure` reports the email. The
 * counts are added once the batch is done (a batch that fails is done again).
 */
export function createReportMailer(deps: { emails: EmailService; db: Knex; appBaseUrl: string; now: Date; log: Logger; onFailure(key: string, error: Error): void }): ReportMailer {
  const counts: MailerCounts = { emailsSent: 0, emailsSuppressed: 0, emailsFailed: 0, reportsAwaitingEmail: 0 };
  return {
    counts,
    async deliver(batch) {
      const results = await deliverReports(deps.emails, deps.appBaseUrl, batch);
      await markReportsEmailed(deps.db, batch.filter((_, i) => results[i]!.settled).map((b) => b.reportId), deps.now);
      batch.forEach(({ reportId, report }, i) => {
        const d = results[i]!;
        counts.emailsSent += d.sent;
        counts.emailsSuppressed += d.suppressed;
        counts.emailsFailed += d.failures.length;
        for (const f of d.failures) deps.onFailure(f.key, f.locked ? new RowLockedError(f.error) : new Error(f.error));
        if (!d.settled) {
          counts.reportsAwaitingEmail++;
          deps.log.warn('drift:email-owed', { reportId, companyId: report.company.id, period: report.period.month, failed: d.failures.length });
        }
      });
      return results.map((d) => d.settled);
    },
  };
}
