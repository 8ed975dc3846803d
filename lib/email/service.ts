/**
 * The email service every job uses. One `send()` per email: it claims the email's
 * idempotency key in email_log (the unique key decides, so a rerun or a racing run
 * never sends twice), hands the message to the transport (SendGrid, or the outbox
 * folder when no API key is set) with a timeout, retries with backoff and jitter on
 * 429/5xx/network errors (honouring Retry-After / X-RateLimit-Reset), never on other
 * 4xx, at most `config.email.concurrency` in flight, and records the outcome.
 *
 * Who owns what: the job creates the service and closes it (close waits for the
 * emails in flight). Preferences and caps are the caller's decision (it knows the
 * rules of its email type); it passes `suppress` and the service records SUPPRESSED.
 *
 * In a dry run the service does all its database work (inside the run's rolled-back
 * transaction) and reports what would happen, but no message reaches a transport.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Knex } from 'knex';
import pRetry, { AbortError } from 'p-retry';
import type { Config } from '../config.ts';
import { Slots } from '../runtime/slots.ts';
import { isConnectionError, isLockTimeout, PermanentError, ROW_LOCKED, TransientError, messageOf } from '../errors.ts';
import { claimMany, failStalePending, findEmailLog, insertEmailLog, markFailed, markSent, markSentMany, OUTCOME_UNKNOWN, reclaimFailed, suppressFailed, type EmailLogType, type NewEmailLog } from '../sql/email-log.ts';
import type { Logger } from '../telemetry/log.ts';
import { redact } from '../telemetry/redact.ts';
import { OutboxTransport } from './outbox.ts';
import { SendGridTransport } from './sendgrid.ts';
import { groupsOf, isPlausibleAddress, type Member } from './groups.ts';
import type { Substituted, SubstitutionTemplate } from './substitution.ts';
import { OutcomeUnknownError, type Transport, type TransportGroup, type TransportMessage } from './transport.ts';

export type EmailType = 'DRIFT_REPORT' | 'INACTIVITY_NUDGE';

export interface OutgoingEmail {
  type: EmailType;
  /** Unique per email ever meant to be sent, e.g. `inactivity:{userId}:{signalId}:{severity}`. */
  idempotencyKey: string;
  userId: string | null;
  to: string;
  subject: string;
  html: string;
  text: string;
}

/**
 * - `sent`: delivered to the transport now (in a dry run: would be).
 * - `suppressed`: recorded SUPPRESSED now (preferences or cap), nothing sent; also
 *   turns an earlier FAILED attempt (known error) of the key into SUPPRESSED.
 * - `already`: the key was settled earlier (SENT or SUPPRESSED), or its earlier
 *   attempt has an unknown outcome (FAILED "outcome unknown", or still PENDING in
 *   another run): never sent again automatically.
 * - `failed`: the attempt failed (retries exhausted, or a permanent 4xx); the row is
 *   FAILED with the error and a later run may retry it.
 * - `stopped`: the run was asked to stop before this email was handed to the
 *   transport; it is still owed. In `sendMany`, one not yet claimed has no row
 *   (`UNSENT`); one claimed but still waiting for a free slot is recorded FAILED
 *   with a known error ("not sent"), so the next run claims it back and sends it.
 * - `failed` with an error starting "outcome unknown": the request reached the
 *   provider but its answer never came (OutcomeUnknownError); never resent.
 * - `unrecorded` (`sendMany` only; `send` throws instead): the provider accepted
 *   it but SENT could not be recorded; the row stays PENDING (later "outcome
 *   unknown"), never resent. An error of the caller's item.
 * - `locked` (`sendMany` only; `send` throws instead): another transaction holds
 *   the key's row (an uncommitted claim of the same key) longer than lock_timeout;
 *   nothing was recorded or sent, the email is still owed. An error of the caller's item.
 */
export type SendOutcome = 'sent' | 'suppressed' | 'already' | 'failed' | 'stopped' | 'unrecorded' | 'locked';

export interface SendResult {
  outcome: SendOutcome;
  /** status in email_log after the call (`UNSENT`: no row, see `stopped`) */
  status: 'SENT' | 'SUPPRESSED' | 'FAILED' | 'PENDING' | 'UNSENT';
  error?: string;
}

/** suppress: record SUPPRESSED in email_log (preferences or cap) and send nothing. */
export interface SendOptions {
  suppress?: 'preferences' | 'cap';
}

/** What an email is without its content: enough to claim its key. */
export type EmailHead = Omit<OutgoingEmail, 'subject' | 'html' | 'text'>;

/** An email's content; with `substituted`, also as its kind's template and its own values. */
export type EmailContent = Pick<OutgoingEmail, 'subject' | 'html' | 'text'> & { substituted?: Substituted };

/**
 * An email of `sendMany`: whole, or its head and a `render` called only when it is
 * about to be sent, so that a page's emails are never all rendered at once.
 */
export type BatchEmail =
  | { email: OutgoingEmail; options?: SendOptions }
  | {
      email: EmailHead;
      render(): EmailContent;
      options?: SendOptions;
      /**
       * Its render is small and gives `substituted` content: it is rendered before a
       * slot is free, and sent in one request with the chunk's others of its kind
       * (SendGrid personalizations, lib/email/substitution.ts).
       */
      groupable?: boolean;
    };

export interface EmailService {
  send(email: OutgoingEmail, options?: SendOptions): Promise<SendResult>;
  /** `send` for many emails at once, with batched database work; results in the same order. */
  sendMany(batch: BatchEmail[]): Promise<SendResult[]>;
  /**
   * Marks PENDING rows left by a run that stopped mid-send as FAILED "outcome
   * unknown" (they may have been delivered, so they are never resent) and returns
   * how many. `send()` does it once by itself before its first email; call it
   * earlier to report the count.
   */
  recoverStale(): Promise<number>;
  /** Waits for the emails in flight; idempotent. */
  close(): Promise<void>;
  /** The transport in use: `sendgrid` or `outbox`. */
  readonly transport: string;
}

export interface EmailServiceDeps {
  config: Config;
  /** The database (the run's transaction in a dry run). */
  db: Knex;
  log: Logger;
  dryRun: boolean;
  /** The run's clock: email_log times are written with it. */
  now: Date;
  /** Email types whose stale PENDING rows this service may sweep. @defaultValue all */
  types?: EmailType[];
  /** A PENDING row older than this is stale. @defaultValue 1 hour */
  staleAfterMs?: number;
  /** First retry delay (doubles each time, with jitter). @defaultValue 1000 */
  retryMinDelayMs?: number;
  /** Longest wait between attempts, also the cap on Retry-After. @defaultValue 60000 */
  retryMaxDelayMs?: number;
  /** Aborted on SIGTERM: no more retries (the email is recorded FAILED, retried next run). */
  signal?: AbortSignal;
  /** A transport to use instead of the configured one (tests). */
  transport?: Transport;
}

/** In `claimChunk`'s answer: the key's row is held by another transaction. */
const LOCKED = '\u0000locked';
/** An email claimed but not yet handed to the transport when the run was asked to stop. */
class StoppedBeforeSendError extends Error {
  override name = 'StoppedBeforeSendError';
}
const STOPPED_BEFORE_SEND = 'not sent: the run was asked to stop before this email was handed to the provider';

/** `sendMany` claims this many emails per unit of email concurrency at once. */
const CLAIM_CHUNK_PER_CONCURRENCY = 8;

/** A claimed email of a `sendMany` chunk, to be sent. */
interface ToSend {
  b: BatchEmail;
  email: EmailHead;
  logId: string;
  i: number;
}

/** A claimed email rendered for a group. */
type GroupMember = Member<ToSend, EmailContent>;

/** SendGrid category of each email type. */
const CATEGORIES: Record<EmailType, string> = {
  DRIFT_REPORT: 'drift-report',
  INACTIVITY_NUDGE: 'inactivity-nudge',
};

/** The one-click unsubscribe endpoint (RFC 8058) for the email logged as `logId`. */
export function oneClickUnsubscribeUrl(appBaseUrl: string, logId: string): string {
  return `${appBaseUrl}/email/unsubscribe?token=${encodeURIComponent(logId)}`;
}

/** Creates the email service; the caller owns it and calls `close()`. */
export function createEmailService(deps: EmailServiceDeps): EmailService {
  const { config, db, log, dryRun, now } = deps;
  const transport: Transport =
    deps.transport ??
    (config.email.sendgridApiKey
      ? new SendGridTransport({ apiKey: config.email.sendgridApiKey, baseUrl: config.email.sendgridApiUrl, timeoutMs: config.email.timeoutMs, connections: config.email.concurrency })
      : new OutboxTransport(config.email.outboxDir, now));
  // At most `concurrency` emails with the transport at once, first come first
  // served: a semaphore rather than p-queue, whose promises, listeners and events
  // per task were a cost of every email (bench/FINDINGS.md, round four). `close`
  // waits until none is in flight or waiting.
  const slots = new Slots(config.email.concurrency);
  const minDelay = deps.retryMinDelayMs ?? 1000;
  const maxDelay = deps.retryMaxDelayMs ?? 60_000;
  const signal = deps.signal ?? new AbortController().signal;
  let stale: Promise<number> | undefined;
  let closed = false;

  const recoverStale = (): Promise<number> => {
    stale ??= (async () => {
      const before = new Date(now.getTime() - (deps.staleAfterMs ?? 3_600_000));
      const n = await failStalePending(db, before, now, deps.types as EmailLogType[] | undefined);
      if (n) log.warn('email:outcome-unknown', { count: n, detail: `${n} email(s) left PENDING by a stopped run marked FAILED (${OUTCOME_UNKNOWN}); not resent` });
      return n;
    })();
    return stale;
  };

  /** What every email carries besides its content: tags for the provider's statistics and webhook, the unsubscribe headers. */
  const envelope = (email: EmailHead, logId: string) => ({
    customArgs: { idempotency_key: email.idempotencyKey, email_type: email.type, email_log_id: logId },
    headers: {
      'List-Unsubscribe': `<${oneClickUnsubscribeUrl(config.appBaseUrl, logId)}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  });

  /**
   * Delivers one message through the transport, with retries; returns the provider's id.
   * `content` is called once a slot is free, so that only the emails in flight are
   * rendered: 8 × CLAIM_CHUNK_PER_CONCURRENCY rendered at once (a drift report is
   * 17 kB of HTML) outlived scavenges while they queued, and were promoted.
   */
  const deliver = async (email: EmailHead, content: () => EmailContent, logId: string): Promise<string | null> => {
    // An unusable address (users.email is NOT NULL, but may be '' or garbage) fails
    // this email only, before any transport: SendGrid would refuse it (400) only
    // after a round trip, and an outbox file for it would be useless.
    if (!isPlausibleAddress(email.to)) throw new PermanentError(`invalid recipient address ${JSON.stringify(email.to.slice(0, 100))}`);
    return withRetries(email.idempotencyKey, () => {
      const { subject, html, text } = content();
      const message: TransportMessage = { to: email.to, from: config.email.from, subject, html, text, categories: [CATEGORIES[email.type]], ...envelope(email, logId), idempotencyKey: email.idempotencyKey };
      return () => transport.send(message);
    });
  };

  /** Delivers a group in one request (`transport.sendGroup`), with retries: one verdict for all. */
  const deliverGroup = (members: GroupMember[], template: SubstitutionTemplate): Promise<string | null> => {
    const group: TransportGroup = {
      from: config.email.from,
      categories: [CATEGORIES[members[0]!.email.type]],
      template,
      members: members.map(({ email, logId, content }) => ({ to: email.to, subject: content.subject, values: content.substituted!.values, ...envelope(email, logId), idempotencyKey: email.idempotencyKey })),
    };
    return withRetries(`${members[0]!.email.idempotencyKey} (and ${members.length - 1} more in its request)`, () => () => transport.sendGroup!(group));
  };

  /**
   * Takes a slot, then sends with retries. `prepare` runs once the slot is taken
   * (rendering happens there) and gives the one attempt to repeat.
   */
  const withRetries = async (key: string, prepare: () => () => Promise<{ messageId: string | null }>): Promise<string | null> => {
    if (!slots.tryTake()) await slots.take();
    try {
      // Waiting for a slot when the run was asked to stop: not started, so not sent.
      // Starting it would cost a whole attempt (up to EMAIL_TIMEOUT_MS) per slot
      // round, which could outlast the pod's termination grace period.
      if (signal.aborted) throw new StoppedBeforeSendError(STOPPED_BEFORE_SEND);
      const sendOnce = prepare();
      const sent = await pRetry(
        async () => {
          try {
            return await sendOnce();
          } catch (err) {
            // p-retry retries anything but an AbortError: stop at once on a permanent failure.
            if (err instanceof PermanentError) throw new AbortError(err);
            throw err;
          }
        },
        {
          retries: config.email.maxRetries,
          minTimeout: minDelay,
          maxTimeout: maxDelay,
          factor: 2,
          randomize: true,
          // No `signal` here on purpose: on SIGTERM the attempt in flight must finish
          // (SendGrid may already have accepted it; abandoning it would mark it FAILED
          // and a rerun would send it twice). A stop request only ends the retrying.
          shouldRetry: ({ error }) => error instanceof TransientError && !signal.aborted,
          onFailedAttempt: async ({ error, attemptNumber, retriesLeft, retryDelay }) => {
            const asked = error instanceof TransientError ? error.retryAfterMs : undefined;
            log.warn('email:retry', { key, attempt: attemptNumber, retriesLeft, error: redact(error.message), retryAfterMs: asked });
            // The API said how long to wait: wait at least that long (capped), on top of
            // the backoff p-retry applies next.
            if (asked !== undefined && retriesLeft > 0 && asked > retryDelay) await sleep(Math.min(asked, maxDelay) - retryDelay, signal);
          },
        },
      );
      return sent.messageId ?? null;
    } finally {
      slots.release();
    }
  };

  /** The email_log row that claims a key: PENDING, or SUPPRESSED with the reason. */
  const claimRow = (email: EmailHead, options: SendOptions): NewEmailLog => ({
    userId: email.userId,
    to: email.to,
    type: email.type,
    idempotencyKey: email.idempotencyKey,
    ...(options.suppress ? { status: 'SUPPRESSED' as const, error: `suppressed: ${options.suppress}` } : { status: 'PENDING' as const }),
  });

  /** What a newly inserted claim row means: an email to send, or one recorded as suppressed. */
  const claimedNew = (email: EmailHead, options: SendOptions, logId: string): { logId: string } | { result: SendResult } => {
    if (!options.suppress) return { logId };
    log.debug('email:suppressed', { key: email.idempotencyKey, type: email.type, userId: email.userId, reason: options.suppress });
    return { result: { outcome: 'suppressed', status: 'SUPPRESSED' } };
  };

  /**
   * A key that already had a row: a FAILED one with a known error is taken back
   * (to PENDING for another attempt, or to SUPPRESSED); any other is the final answer.
   */
  const claimTaken = async (email: EmailHead, options: SendOptions): Promise<{ logId: string } | { result: SendResult }> => {
    if (options.suppress) {
      const id = await suppressFailed(db, email.idempotencyKey, `suppressed: ${options.suppress}`);
      return id ? claimedNew(email, options, id) : { result: await settledBefore(email) };
    }
    const reclaimed = await reclaimFailed(db, email.idempotencyKey, now);
    if (!reclaimed) return { result: await settledBefore(email) };
    log.info('email:retrying-failed', { key: email.idempotencyKey, type: email.type, userId: email.userId });
    return { logId: reclaimed };
  };

  /**
   * Claims one key: the new row's id (PENDING, or a FAILED row claimed back), or
   * the final answer when there is nothing to send (suppressed, settled before).
   */
  const claim = async (email: OutgoingEmail, options: SendOptions): Promise<{ logId: string } | { result: SendResult }> => {
    const id = await insertEmailLog(db, claimRow(email, options), now);
    return id ? claimedNew(email, options, id) : claimTaken(email, options);
  };

  /**
   * Hands a claimed email to the transport. Returns the provider's message id to
   * record as SENT, or the final answer (failed, recorded FAILED; or a dry run's
   * "would send", which records nothing more).
   */
  const attempt = async (email: EmailHead, content: () => EmailContent, logId: string): Promise<{ messageId: string | null } | { result: SendResult }> => {
    if (dryRun) {
      content(); // rendered, as a real run would: a template that fails shows in the dry run too
      log.debug('email:would-send', { key: email.idempotencyKey, type: email.type, userId: email.userId, transport: transport.name });
      return { result: { outcome: 'sent', status: 'SENT' } };
    }
    try {
      return { messageId: await deliver(email, content, logId) };
    } catch (err) {
      return { result: await recordFailure(email, logId, err) };
    }
  };

  /**
   * Sends a group in one request. When SendGrid refuses the request itself (a
   * 4xx: one bad personalization fails them all), each is sent alone, so that
   * only the bad one fails. Any other failure is every member's, recorded as
   * `attempt` records it (an unknown outcome stays unknown for all of them).
   */
  const attemptGroup = async (members: GroupMember[], template: SubstitutionTemplate): Promise<Array<{ messageId: string | null } | { result: SendResult }>> => {
    try {
      const messageId = await deliverGroup(members, template);
      return members.map(() => ({ messageId }));
    } catch (err) {
      const original = unwrapped(err);
      if (original instanceof PermanentError && !(original instanceof OutcomeUnknownError)) {
        log.warn('email:group-refused', { count: members.length, key: members[0]!.email.idempotencyKey, error: redact(messageOf(original)), detail: 'sending each of the request alone' });
        return Promise.all(members.map((m) => attempt(m.email, () => m.content, m.logId)));
      }
      return Promise.all(members.map(async (m) => ({ result: await recordFailure(m.email, m.logId, original) })));
    }
  };

  /** Records an email the transport did not take: FAILED with its error (a stop before sending is a known error: owed to the next run). */
  const recordFailure = async (email: EmailHead, logId: string, err: unknown): Promise<SendResult> => {
    const fields = { key: email.idempotencyKey, type: email.type, userId: email.userId };
    const original = unwrapped(err);
    if (original instanceof StoppedBeforeSendError) {
      // A known error: the next run claims it back (reclaimFailed) and sends it.
      await markFailed(db, logId, STOPPED_BEFORE_SEND);
      log.info('email:stopped', { ...fields, detail: STOPPED_BEFORE_SEND });
      return { outcome: 'stopped', status: 'FAILED', error: STOPPED_BEFORE_SEND };
    }
    // An unknown outcome is stored as such, so no run ever claims it back.
    const message = redact(messageOf(original));
    const error = (original instanceof OutcomeUnknownError ? `${OUTCOME_UNKNOWN}: ${message}` : message).slice(0, 500);
    await markFailed(db, logId, error);
    log.error('email:failed', { ...fields, transport: transport.name, error });
    return { outcome: 'failed', status: 'FAILED', error };
  };

  // The provider accepted these. If recording SENT fails (the database went away, or
  // refused the write), the rows must stay PENDING: marking them FAILED with a known
  // error would let the next run claim them back and send them twice. The stale
  // sweep later makes them FAILED "outcome unknown", never resent. Returns the
  // error of each email whose SENT could not be recorded (a lost connection is
  // thrown: it ends the run with exit 3).
  const recordSent = async (sent: Array<{ email: EmailHead; id: string; providerMessageId: string | null }>): Promise<Map<string, Error>> => {
    /** By idempotency key. */
    const unrecorded = new Map<string, Error>();
    const fail = (s: (typeof sent)[number], err: unknown) => {
      log.error('email:record-failed', { key: s.email.idempotencyKey, type: s.email.type, userId: s.email.userId, transport: transport.name, messageId: s.providerMessageId, error: err, detail: 'delivered, but SENT could not be recorded; left PENDING, never resent' });
      unrecorded.set(s.email.idempotencyKey, err instanceof Error ? err : new Error(messageOf(err)));
    };
    try {
      await markSentMany(db, sent, now);
    } catch (err) {
      if (isConnectionError(err) || sent.length === 1) {
        for (const s of sent) fail(s, err);
        if (isConnectionError(err)) throw err;
      } else {
        // One row refused (a trigger, a constraint): the others are recorded one by one.
        for (const s of sent) await markSent(db, s.id, s.providerMessageId, now).catch((e: unknown) => (isConnectionError(e) ? Promise.reject(e) : fail(s, e)));
      }
    }
    // Debug, not info: one line per email was a few % of a run's CPU; the summary, the
    // progress lines and the metrics carry the counts (bench/FINDINGS.md, round two).
    for (const s of sent) if (!unrecorded.has(s.email.idempotencyKey)) log.debug('email:sent', { key: s.email.idempotencyKey, type: s.email.type, userId: s.email.userId, transport: transport.name, messageId: s.providerMessageId });
    return unrecorded;
  };

  const send = async (email: OutgoingEmail, options: SendOptions = {}): Promise<SendResult> => {
    if (closed) throw new Error('the email service is closed');
    await recoverStale();
    const claimed = await claim(email, options);
    if ('result' in claimed) return claimed.result;
    const tried = await attempt(email, () => email, claimed.logId);
    if ('result' in tried) return tried.result;
    const unrecorded = await recordSent([{ email, id: claimed.logId, providerMessageId: tried.messageId }]);
    // The error is the caller's: an item error (see recordSent).
    if (unrecorded.size) throw unrecorded.get(email.idempotencyKey)!;
    return { outcome: 'sent', status: 'SENT' };
  };

  /**
   * `send` for many emails, with the database work batched: the keys of a chunk
   * are claimed in one statement, the chunk is delivered (at most
   * `config.email.concurrency` at once), and what the provider accepted is marked
   * SENT in one statement. A chunk is a few times the concurrency: small enough
   * that a run killed mid-chunk leaves few emails of unknown outcome, large enough
   * that the statements per email are a small fraction. When the run is asked to
   * stop, no further chunk is claimed: those emails are `stopped` (no row, still
   * owed to the next run). Keys that already had a row are settled as `send` does.
   */
  const sendMany = async (batch: BatchEmail[]): Promise<SendResult[]> => {
    const content = (b: BatchEmail): (() => EmailContent) => ('render' in b ? b.render : () => b.email);
    if (closed) throw new Error('the email service is closed');
    await recoverStale();
    const results: SendResult[] = new Array<SendResult>(batch.length);
    const chunkSize = Math.max(1, CLAIM_CHUNK_PER_CONCURRENCY * config.email.concurrency);
    for (let start = 0; start < batch.length; start += chunkSize) {
      const chunk = batch.slice(start, start + chunkSize).map((b, k) => ({ b, email: b.email, options: b.options ?? {}, i: start + k }));
      if (signal.aborted) {
        for (const { i } of chunk) results[i] = { outcome: 'stopped', status: 'UNSENT' };
        continue;
      }
      const claims = await claimChunk(chunk.map(({ email, options }) => claimRow(email, options)));
      const sent: Array<{ email: EmailHead; id: string; providerMessageId: string | null }> = [];
      const settle = (email: EmailHead, logId: string, i: number, tried: { messageId: string | null } | { result: SendResult }) => {
        if ('result' in tried) return (results[i] = tried.result);
        sent.push({ email, id: logId, providerMessageId: tried.messageId });
        results[i] = { outcome: 'sent', status: 'SENT' };
      };
      // The chunk's keys settled first: what is left is to be sent.
      const claimed: ToSend[] = [];
      await Promise.all(
        chunk.map(async ({ b, email, options, i }) => {
          const logId = claims.get(email.idempotencyKey);
          claims.delete(email.idempotencyKey); // a key twice in one batch: the second is settled as taken
          if (logId === LOCKED) return (results[i] = lockedResult(email));
          const taken = logId ? claimedNew(email, options, logId) : await claimTaken(email, options).catch((err: unknown) => lockedOr(err, email));
          if ('result' in taken) return (results[i] = taken.result);
          claimed.push({ b, email, logId: taken.logId, i });
        }),
      );
      // Groupable emails (a transport that takes groups, not a dry run) go as one
      // request per kind; the others one by one, rendered when their slot is free.
      const canGroup = !dryRun && transport.sendGroup !== undefined;
      const isGroupable = (c: ToSend) => canGroup && 'groupable' in c.b && c.b.groupable === true;
      await Promise.all([
        ...claimed.filter((c) => !isGroupable(c)).map(async ({ b, email, logId, i }) => settle(email, logId, i, await attempt(email, content(b), logId))),
        ...groupsOf(claimed.filter(isGroupable), (c) => content(c.b)()).map(async (unit) => {
          if ('failed' in unit) return (results[unit.item.i] = await recordFailure(unit.item.email, unit.item.logId, unit.failed));
          if ('alone' in unit || unit.members.length === 1) {
            const alone = 'alone' in unit ? unit.alone : unit.members[0]!;
            return settle(alone.email, alone.logId, alone.i, await attempt(alone.email, () => alone.content, alone.logId));
          }
          const outcomes = await attemptGroup(unit.members, unit.template);
          unit.members.forEach((m, k) => settle(m.email, m.logId, m.i, outcomes[k]!));
        }),
      ]);
      if (sent.length) {
        const unrecorded = await recordSent(sent);
        chunk.forEach(({ email, i }) => {
          const err = unrecorded.get(email.idempotencyKey);
          if (err) results[i] = { outcome: 'unrecorded', status: 'PENDING', error: redact(messageOf(err)).slice(0, 500) };
        });
      }
    }
    return results;
  };

  /**
   * Claims a chunk's keys in one statement. When another transaction holds one of
   * them (an uncommitted claim of the same key: the insert waits on it, then fails
   * with a lock timeout and claims none), the keys are claimed one by one, so only
   * the held one is left out (as LOCKED): the others are sent now.
   */
  const claimChunk = async (rows: NewEmailLog[]): Promise<Map<string, string>> => {
    try {
      // A dry run is one transaction: a failed statement would abort all of it, so there
      // the claim gets a savepoint of its own (knex nests a transaction as one).
      return await (dryRun ? db.transaction((trx) => claimMany(trx, rows, now)) : claimMany(db, rows, now));
    } catch (err) {
      if (!isLockTimeout(err) || rows.length === 1) {
        if (isLockTimeout(err)) return new Map([[rows[0]!.idempotencyKey, LOCKED]]);
        throw err;
      }
      log.warn('email:claim-locked', { count: rows.length, error: err, detail: 'a key is held by another transaction; claiming one by one' });
      const out = new Map<string, string>();
      for (const row of rows) {
        if (out.has(row.idempotencyKey)) continue;
        const one = await claimChunk([row]);
        for (const [k, v] of one) out.set(k, v);
      }
      return out;
    }
  };

  const lockedResult = (email: EmailHead): SendResult => {
    log.error('email:locked', { key: email.idempotencyKey, type: email.type, userId: email.userId, detail: `${ROW_LOCKED}: not claimed, still owed` });
    return { outcome: 'locked', status: 'UNSENT', error: `${ROW_LOCKED} (its email_log row): not sent, still owed` };
  };

  /** A lock timeout on settling a key that already had a row is that email's (LOCKED); anything else is thrown. */
  const lockedOr = (err: unknown, email: EmailHead): { result: SendResult } => {
    if (isLockTimeout(err)) return { result: lockedResult(email) };
    throw err;
  };

  /** The answer for a key that already has a row nobody may take now. */
  const settledBefore = async (email: EmailHead): Promise<SendResult> => {
    const row = await findEmailLog(db, email.idempotencyKey);
    if (!row) throw new Error(`email_log row for ${email.idempotencyKey} vanished`);
    log.debug('email:already', { key: email.idempotencyKey, status: row.status });
    return { outcome: 'already', status: row.status, ...(row.error ? { error: row.error } : {}) };
  };

  return {
    transport: transport.name,
    send,
    sendMany,
    recoverStale,
    async close() {
      if (closed) return;
      closed = true;
      await slots.idle();
      // Only a transport this service made is closed: one passed in is the caller's.
      if (!deps.transport) await transport.close?.();
    },
  };
}

/** The error itself, out of the AbortError p-retry was given to stop retrying it. */
function unwrapped(err: unknown): unknown {
  return err instanceof AbortError ? (err.originalError ?? err) : err;
}

/** Waits, or stops waiting when the run is asked to stop. */
async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal }).catch(() => undefined);
}
