/**
 * detect-inactivity (daily, 08:00 UTC): owners who stopped using the app get a
 * signal on each company they own, escalated at 45 days and resolved when they come
 * back, and one nudge email. Rules: contract/JOBS.md, "detect-inactivity".
 *
 *   1. Users who came back: resolve their open user_inactivity signals.
 *   2. Candidates (owners of active companies, inactive 21+ days), page by page:
 *      for the page's users, in one transaction, open a signal per owned active
 *      company that has none, or escalate MEDIUM → HIGH at 45 days; then, after
 *      commit, one nudge email per user for whom something was opened or escalated
 *      (and preferences and the 7-day cap allow).
 *   3. Summarise.
 *
 * Idempotency: the partial unique index on open signals (a rerun or a racing run
 * opens nothing twice), guarded escalations (only from MEDIUM), and the nudge's
 * idempotency key `inactivity:{userId}:{signalId}:{severity}` in email_log. A nudge
 * owed by a run that stopped after committing its signals (or that failed with a
 * known error) is sent by the next run while the signal is less than 7 days old.
 */
import { createEmailService, type BatchEmail, type EmailService, type SendResult } from '../lib/email/service.ts';
import { renderInactivityNudge } from '../lib/email/templates/inactivity-nudge.ts';
import { databaseFailure, RowLockedError, translateDbError } from '../lib/errors.ts';
import type { JobContext, JobDefinition } from '../lib/runtime/job.ts';
import { OUTCOME_UNKNOWN } from '../lib/sql/email-log.ts';
import { countInactiveOwners, inactiveOwnerBatches, INACTIVITY_EVENT, openInactivitySignalBatches, type Candidate, type OwnedCompany, type PageOptions } from '../lib/sql/inactivity.ts';
import { escalateSignals, openSignals, resolveSignals, type Escalation, type NewSignal, type Severity } from '../lib/sql/signals.ts';

/** Inactive from this many whole days: MEDIUM. */
export const INACTIVE_DAYS = 21;
/** Inactive from this many whole days: HIGH. */
export const HIGH_DAYS = 45;
/** At most one nudge per user in this many days. */
export const NUDGE_CAP_DAYS = 7;
const DAY_MS = 86_400_000;
/** Pages worked on at once: the next page is read while one is written and emailed. */
const PAGES_IN_FLIGHT = 2;

export function severityFor(daysInactive: number): Severity {
  return daysInactive >= HIGH_DAYS ? 'HIGH' : 'MEDIUM';
}

/** The counts of the summary. */
interface Counts {
  usersChecked: number;
  signalsCreated: number;
  signalsEscalated: number;
  signalsResolved: number;
  emailsSent: number;
  emailsSuppressed: number;
  emailsFailed: number;
  emailsOutcomeUnknown: number;
  skipped: number;
}

const job: JobDefinition = {
  name: 'detect-inactivity',
  schedule: '0 8 * * *',
  description: 'Signals owners inactive for 21+ days (HIGH at 45), resolves them when they return, and nudges them by email.',
  requiredColumns: {
    users: ['id', 'email', 'name', 'created_at', 'deleted_at'],
    user_sessions: ['user_id', 'last_active_at'],
    companies: ['id', 'name', 'deleted_at'],
    company_members: ['company_id', 'user_id', 'role'],
    assessments: ['company_id', 'status', 'bri_score', 'completed_at'],
    financial_periods: ['company_id'],
    tasks: ['id', 'company_id', 'title', 'status', 'due_at', 'created_at'],
    signals: ['id', 'company_id', 'user_id', 'channel', 'event_type', 'category', 'severity', 'confidence', 'title', 'description', 'metadata', 'created_at', 'updated_at', 'resolved_at', 'resolution'],
    value_ledger_entries: ['company_id', 'signal_id', 'entry_type', 'summary', 'details', 'created_at'],
    email_preferences: ['user_id', 'inactivity_nudges', 'unsubscribed_all'],
    email_log: ['id', 'user_id', 'to_email', 'email_type', 'idempotency_key', 'status', 'provider_message_id', 'error', 'created_at', 'sent_at'],
  },

  async run(ctx) {
    const counts = zeroCounts();
    const emails = createEmailService({ config: ctx.config, db: ctx.db, log: ctx.log, dryRun: ctx.dryRun, now: ctx.now, types: ['INACTIVITY_NUDGE'], signal: ctx.signal });
    ctx.defer(() => emails.close());
    counts.emailsOutcomeUnknown = await emails.recoverStale();
    const scope = { now: ctx.now, shard: ctx.shard, companyId: ctx.options.companyId };

    // 1. Users who came back: their open signals resolved, set-based.
    counts.signalsResolved = await resolveReturnedUsers(ctx, scope);

    // 2. Candidates: owners of active companies inactive 21+ days, a page at a time
    //    (a page that fails is done again one user at a time).
    const candidates = { ...scope, minDaysInactive: INACTIVE_DAYS };
    await ctx.forEach<Candidate>({
      phase: 'users',
      kind: 'user',
      total: await countInactiveOwners(ctx.db, candidates),
      source: inactiveOwnerBatches(ctx.db, candidates),
      id: (c) => c.userId,
      concurrency: PAGES_IN_FLIGHT,
      handleBatch: (page) => checkUsers(ctx, emails, page, counts),
    });

    await emails.close();
    return { ...counts };
  },
};

export default job;

/**
 * Resolves ('USER_RETURNED', with SIGNAL_RESOLVED entries) the open signals of
 * users now inactive fewer than 21 days: a page of open signals at a time, each
 * page's resolutions in one transaction. A page that fails (a signal row the app
 * holds locked past lock_timeout) is done again signal by signal, so only that
 * signal fails. Returns how many it resolved.
 */
async function resolveReturnedUsers(ctx: JobContext, scope: PageOptions): Promise<number> {
  const resolve = async (ids: string[]) => (await ctx.db.transaction((trx) => resolveSignals(trx, ids, 'USER_RETURNED', ctx.now))).length;
  const fail = (id: string, err: unknown) => {
    // A lost (or read-only) database is not this signal's fault: it stops the run (exit 3).
    if (databaseFailure(err, 'item')) throw err;
    ctx.tally.fail('signal', id, err);
    ctx.log.error('item:failed', { kind: 'signal', id, error: translateDbError(err) });
  };
  let resolved = 0;
  for await (const page of openInactivitySignalBatches(ctx.db, scope)) {
    if (ctx.signal.aborted) break;
    const returned = page.filter((s) => s.daysInactive < INACTIVE_DAYS).map((s) => s.id);
    if (!returned.length) continue;
    try {
      resolved += await resolve(returned);
      continue;
    } catch (err) {
      if (returned.length === 1) {
        fail(returned[0]!, err);
        continue;
      }
      if (databaseFailure(err, 'item')) throw err;
      ctx.log.warn('batch:failed', { kind: 'signal', size: returned.length, first: returned[0], error: translateDbError(err), detail: 'resolving its signals one by one' });
    }
    for (const id of returned) {
      if (ctx.signal.aborted) break;
      try {
        resolved += await resolve([id]);
      } catch (err) {
        fail(id, err);
      }
    }
  }
  return resolved;
}

/** A signal opened or escalated for a user in this run. */
interface Changed {
  signalId: string;
  severity: Severity;
}

/**
 * A page of candidates: in one transaction, a signal for each owned active company
 * that has none and MEDIUM → HIGH at 45 days, for every user of the page (two
 * statements, whatever its size); then, after commit, each user's nudge, if one
 * is due (claimed and recorded per chunk by the email service). The counts are
 * added only once the page is done: a page that fails is done again user by user.
 */
async function checkUsers(ctx: JobContext, emails: EmailService, page: Candidate[], total: Counts): Promise<Array<string | Error>> {
  try {
    return await checkPage(ctx, emails, page, total);
  } catch (err) {
    // A user who fails alone was still checked (a failed page is counted by its users' retries).
    if (page.length === 1) total.usersChecked++;
    throw err;
  }
}

async function checkPage(ctx: JobContext, emails: EmailService, page: Candidate[], total: Counts): Promise<Array<string | Error>> {
  const counts = zeroCounts();
  const plans = page.map((c) => {
    const severity = severityFor(c.daysInactive);
    const title = `Owner inactive for ${c.daysInactive} days`;
    const metadata = { daysInactive: c.daysInactive, lastActiveAt: c.lastActiveAt.toISOString() };
    return {
      open: c.companies.filter((o) => !o.openSignal).map((o): NewSignal => ({ companyId: o.companyId, userId: c.userId, channel: 'TIME_DECAY', eventType: INACTIVITY_EVENT, category: 'PERSONAL', severity, confidence: 'CONFIDENT', title, metadata })),
      escalate: (severity === 'HIGH' ? c.companies.filter((o) => o.openSignal?.severity === 'MEDIUM') : []).map((o): Escalation => ({ id: o.openSignal!.id, companyId: o.companyId, fromSeverity: 'MEDIUM', severity: 'HIGH', title, metadata })),
    };
  });
  const toOpen = plans.flatMap((p) => p.open);
  const toEscalate = plans.flatMap((p) => p.escalate);
  const { opened, escalated } =
    toOpen.length || toEscalate.length
      ? await ctx.db.transaction(async (trx) => ({ opened: await openSignals(trx, toOpen, ctx.now), escalated: await escalateSignals(trx, toEscalate, ctx.now) }))
      : { opened: [], escalated: [] };

  // What changed, per user. Pairs left alone: an open signal that needs nothing,
  // or one a racing run just opened or changed.
  const changedBy = new Map<string, Changed[]>();
  const add = (userId: string, change: Changed) => changedBy.set(userId, [...(changedBy.get(userId) ?? []), change]);
  for (const s of opened) add(s.userId!, { signalId: s.id, severity: s.severity });
  const escalatedIds = new Set(escalated);
  page.forEach((c, i) => plans[i]!.escalate.filter((e) => escalatedIds.has(e.id)).forEach((e) => add(c.userId, { signalId: e.id, severity: 'HIGH' })));
  counts.signalsCreated = opened.length;
  counts.signalsEscalated = escalated.length;

  const nudges = page.flatMap((c) => {
    const changed = changedBy.get(c.userId) ?? [];
    counts.skipped += c.companies.length - changed.length;
    const target = nudgeTarget(ctx.now, c.companies, changed);
    return target ? [nudgeFor(ctx, c, target)] : [];
  });
  const results = await emails.sendMany(nudges);
  // A nudge delivered but not recorded as SENT fails its user (the row stays PENDING,
  // never resent); so does one whose key another transaction holds (still owed: the
  // Job's retry sends it).
  const unrecorded = new Map<string, Error>();
  results.forEach((result, i) => {
    count(counts, result);
    if (result.outcome === 'unrecorded') unrecorded.set(nudges[i]!.email.userId!, new Error(`nudge delivered but not recorded as sent: ${result.error}`));
    if (result.outcome === 'locked') unrecorded.set(nudges[i]!.email.userId!, new RowLockedError(`nudge not sent: ${result.error}`));
  });

  counts.usersChecked = page.length;
  for (const k of Object.keys(total) as Array<keyof Counts>) total[k] += counts[k];
  return page.map((c) => unrecorded.get(c.userId) ?? (changedBy.has(c.userId) ? 'changed' : 'unchanged'));
}

function zeroCounts(): Counts {
  return { usersChecked: 0, signalsCreated: 0, signalsEscalated: 0, signalsResolved: 0, emailsSent: 0, emailsSuppressed: 0, emailsFailed: 0, emailsOutcomeUnknown: 0, skipped: 0 };
}

/**
 * The signal a nudge is for: the newest one opened or escalated in this run; else
 * the user's newest open signal, when it is less than 7 days old and its nudge is
 * still owed (no email_log row: a run stopped after committing; or FAILED with a
 * known error). Null when no nudge is due.
 */
function nudgeTarget(now: Date, companies: OwnedCompany[], changed: Changed[]): Changed | null {
  if (changed.length) return changed.reduce((a, b) => (b.signalId > a.signalId ? b : a));
  const open = companies.flatMap((o) => (o.openSignal ? [o.openSignal] : []));
  if (!open.length) return null;
  const newest = open.reduce((a, b) => (b.updatedAt > a.updatedAt || (b.updatedAt.getTime() === a.updatedAt.getTime() && b.id > a.id) ? b : a));
  const age = now.getTime() - newest.updatedAt.getTime();
  const owed = newest.nudgeStatus === null || (newest.nudgeStatus === 'FAILED' && !(newest.nudgeError ?? '').startsWith(OUTCOME_UNKNOWN));
  return owed && age >= 0 && age < NUDGE_CAP_DAYS * DAY_MS ? { signalId: newest.id, severity: newest.severity } : null;
}

/** The user's nudge naming every owned active company (rendered when sent, with the chunk's others in one request), suppressed when preferences or the 7-day cap say so. */
function nudgeFor(ctx: JobContext, c: Candidate, target: Changed): BatchEmail {
  const capped = c.nudge.lastNudgeSentAt !== null && ctx.now.getTime() - c.nudge.lastNudgeSentAt.getTime() < NUDGE_CAP_DAYS * DAY_MS;
  const suppress = !c.nudge.inactivityNudges || c.nudge.unsubscribedAll ? 'preferences' : capped ? 'cap' : undefined;
  return {
    email: { type: 'INACTIVITY_NUDGE', idempotencyKey: `inactivity:${c.userId}:${target.signalId}:${target.severity}`, userId: c.userId, to: c.email },
    render: () =>
      renderInactivityNudge(
        {
          userName: c.name,
          daysInactive: c.daysInactive,
          companies: c.companies.map((o) => ({ name: o.companyName, briScore: o.briScore, pendingTaskCount: o.pendingTaskCount, pendingTaskTitles: o.pendingTaskTitles })),
        },
        ctx.config.appBaseUrl,
      ),
    options: suppress ? { suppress } : {},
    // A few kB, in the layout's template and values: nudges share SendGrid requests.
    groupable: true,
  };
}

function count(counts: Counts, result: SendResult): void {
  if (result.outcome === 'sent') counts.emailsSent++;
  else if (result.outcome === 'suppressed') counts.emailsSuppressed++;
  else if (result.outcome === 'failed') counts.emailsFailed++;
}
