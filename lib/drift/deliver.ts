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
import type { EmailService, SendResult } from '../email/service.ts';
import { renderDriftReportEmail } from '../email/templates/drift-report.ts';
import { OUTCOME_UNKNOWN } from '../sql/email-log.ts';
import { markReportEmailed, type ReportRecipient } from '../sql/drift.ts';
import type { Logger } from '../telemetry/log.ts';
import type { DriftReport } from './report.ts';

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
  failures: Array<{ key: string; error: string }>;
  /** Every owner's email is settled: `emailed_at` may be set. */
  settled: boolean;
}

/**
 * Sends (or records as suppressed, for owners whose preferences say no) the report
 * to each recipient, one after another.
 */
export async function deliverReport(emails: EmailService, appBaseUrl: string, report: DriftReport, recipients: ReportRecipient[]): Promise<DeliveryResult> {
  const out: DeliveryResult = { sent: 0, suppressed: 0, already: 0, failures: [], settled: true };
  for (const r of recipients) {
    const key = driftEmailKey(report.company.id, report.period.month, r.userId);
    const rendered = renderDriftReportEmail(report, { name: r.name }, appBaseUrl);
    const result = await emails.send(
      { type: 'DRIFT_REPORT', idempotencyKey: key, userId: r.userId, to: r.email, ...rendered },
      r.allowed ? {} : { suppress: 'preferences' },
    );
    if (result.outcome === 'sent') out.sent++;
    else if (result.outcome === 'suppressed') out.suppressed++;
    else if (result.outcome === 'already') out.already++;
    else out.failures.push({ key, error: result.error ?? 'unknown error' });
    if (!isSettled(result)) out.settled = false;
  }
  return out;
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
  /** Emails a stored report to its owners and sets its emailed_at once all are settled; returns whether they are. */
  deliver(reportId: string, report: DriftReport, recipients: ReportRecipient[]): Promise<boolean>;
  readonly counts: MailerCounts;
}

/**
 * The run's report mailer. A failed email does not undo its report: the report stays
 * owed (emailed_at null) for the next run, and `onFailure` reports the email.
 */
export function createReportMailer(deps: { emails: EmailService; db: Knex; appBaseUrl: string; now: Date; log: Logger; onFailure(key: string, error: Error): void }): ReportMailer {
  const counts: MailerCounts = { emailsSent: 0, emailsSuppressed: 0, emailsFailed: 0, reportsAwaitingEmail: 0 };
  return {
    counts,
    async deliver(reportId, report, recipients) {
      const d = await deliverReport(deps.emails, deps.appBaseUrl, report, recipients);
      counts.emailsSent += d.sent;
      counts.emailsSuppressed += d.suppressed;
      counts.emailsFailed += d.failures.length;
      for (const f of d.failures) deps.onFailure(f.key, new Error(f.error));
      if (d.settled) {
        await markReportEmailed(deps.db, reportId, deps.now);
      } else {
        counts.reportsAwaitingEmail++;
        deps.log.warn('drift:email-owed', { reportId, companyId: report.company.id, period: report.period.month, failed: d.failures.length });
      }
      return d.settled;
    },
  };
}
