/**
 * email_log and email_preferences: the record of every email the platform sends or
 * deliberately does not send, and what each user asked for. The unique
 * `idempotency_key` is what keeps a rerun (or a racing run) from sending an email
 * twice: a key is claimed by inserting its row, and `ON CONFLICT DO NOTHING` makes
 * the database, not a read before the write, decide who owns it.
 *
 * Status lifecycle: PENDING (claimed, about to go to the transport) → SENT or
 * FAILED; SUPPRESSED (preferences, caps) is written directly. A FAILED row whose
 * error is known may be claimed back to PENDING by a later run; a FAILED row whose
 * error starts with `outcome unknown` (a PENDING row left by a run that stopped
 * mid-send) is never claimed back: it may have been delivered.
 */
import type { Knex } from 'knex';

export type EmailLogStatus = 'PENDING' | 'SENT' | 'FAILED' | 'SUPPRESSED';
export type EmailLogType = 'DRIFT_REPORT' | 'INACTIVITY_NUDGE';

/** Prefix of the error of a row whose delivery is unknown (never resent automatically). */
export const OUTCOME_UNKNOWN = 'outcome unknown';

export interface EmailLogRow {
  id: string;
  status: EmailLogStatus;
  error: string | null;
}

export interface NewEmailLog {
  userId: string | null;
  to: string;
  type: EmailLogType;
  idempotencyKey: string;
  status: 'PENDING' | 'SUPPRESSED';
  error?: string | null;
}

/**
 * Claims a key by inserting its row (PENDING, or SUPPRESSED with the reason in
 * `error`). Returns the new row's id, or null when the key already has a row.
 */
export async function insertEmailLog(db: Knex, e: NewEmailLog, now: Date): Promise<string | null> {
  return (await claimMany(db, [e], now)).get(e.idempotencyKey) ?? null;
}

/** The row of a key, if any. */
export async function findEmailLog(db: Knex, idempotencyKey: string): Promise<EmailLogRow | undefined> {
  return db('email_log').select('id', 'status', 'error').where({ idempotency_key: idempotencyKey }).first();
}

/**
 * Takes a FAILED row with a known error back to PENDING for another attempt,
 * atomically: of two runs racing for it, only one gets the row. `created_at` is
 * moved to `now` so that the stale-PENDING sweep measures this attempt, not the
 * first one. Returns the row id, or null when it was not claimable.
 */
export async function reclaimFailed(db: Knex, idempotencyKey: string, now: Date): Promise<string | null> {
  const rows: Array<{ id: string }> = await db('email_log')
    .where({ idempotency_key: idempotencyKey, status: 'FAILED' })
    .whereRaw(`coalesce(error, '') not like ?`, [`${OUTCOME_UNKNOWN}%`])
    .update({ status: 'PENDING', error: null, created_at: now })
    .returning(['id']);
  return rows[0]?.id ?? null;
}

/**
 * Records as SUPPRESSED a key whose earlier attempt FAILED with a known error (the
 * user opted out, or a cap applies, since): nothing will be sent for it. Returns
 * the row id, or null when the row was not in that state.
 */
export async function suppressFailed(db: Knex, idempotencyKey: string, reason: string): Promise<string | null> {
  const rows: Array<{ id: string }> = await db('email_log')
    .where({ idempotency_key: idempotencyKey, status: 'FAILED' })
    .whereRaw(`coalesce(error, '') not like ?`, [`${OUTCOME_UNKNOWN}%`])
    .update({ status: 'SUPPRESSED', error: reason })
    .returning(['id']);
  return rows[0]?.id ?? null;
}

/** Marks a claimed row SENT (see `markSentMany`). */
export async function markSent(db: Knex, id: string, providerMessageId: string | null, now: Date): Promise<void> {
  await markSentMany(db, [{ id, providerMessageId }], now);
}

/** Marks a claimed row FAILED with a (redacted, short) error. */
export async function markFailed(db: Knex, id: string, error: string): Promise<void> {
  await db('email_log').where({ id }).whereIn('status', ['PENDING', 'FAILED']).update({ status: 'FAILED', error: error.slice(0, 1000) });
}

/**
 * Marks PENDING rows created at or before `before` FAILED with an "outcome unknown" error:
 * the run that claimed them stopped between the claim and the provider's answer.
 * Returns how many it marked.
 */
export async function failStalePending(db: Knex, before: Date, now: Date, types?: EmailLogType[]): Promise<number> {
  // At least `staleAfter` old (<=): a run whose clock is exactly an hour after the
  // stopped run's (rows are stamped with the run's clock) sweeps its rows too.
  // Rows another transaction holds (the run that claimed them, settling them right
  // now) are skipped, not waited for: that run knows their outcome.
  const stale = db('email_log').select('id').where('status', 'PENDING').where('created_at', '<=', before).forUpdate().skipLocked();
  if (types?.length) stale.whereIn('email_type', types);
  return db('email_log').whereIn('id', stale).update({ status: 'FAILED', error: `${OUTCOME_UNKNOWN}: the run sending it stopped before the provider answered (found PENDING at ${now.toISOString()}); not resent automatically` });
}

/** A claim of `claimMany`: the row as `insertEmailLog` would write it. */
export type EmailClaim = NewEmailLog;

/**
 * Claims keys by inserting their rows (PENDING, or SUPPRESSED with the reason in
 * `error`), in one statement: returns, for each key
 * that had no row, the new row's id. Keys that already had one are absent: the
 * caller settles those one by one (`reclaimFailed`, `suppressFailed`, ...).
 */
export async function claimMany(db: Knex, claims: EmailClaim[], now: Date): Promise<Map<string, string>> {
  if (!claims.length) return new Map();
  const { rows } = await db.raw<{ rows: Array<{ id: string; idempotency_key: string }> }>(
    `insert into email_log (user_id, to_email, email_type, idempotency_key, status, error, created_at)
     select v.user_id, v.to_email, v.email_type, v.idempotency_key, v.status, v.error, ?
     from json_to_recordset(?::json) as v(user_id text, to_email text, email_type text, idempotency_key text, status text, error text)
     on conflict (idempotency_key) do nothing
     returning id, idempotency_key`,
    [now, JSON.stringify(claims.map((c) => ({ user_id: c.userId, to_email: c.to, email_type: c.type, idempotency_key: c.idempotencyKey, status: c.status, error: c.error ?? null })))],
  );
  return new Map(rows.map((r) => [r.idempotency_key, r.id]));
}

/** Marks many claimed rows SENT in one statement. */
export async function markSentMany(db: Knex, sent: Array<{ id: string; providerMessageId: string | null }>, now: Date): Promise<void> {
  if (!sent.length) return;
  // A stale sweep of another run may have marked an in-flight row "outcome
  // unknown" meanwhile; the real outcome wins.
  await db.raw(
    `update email_log e
     set status = 'SENT', provider_message_id = v.mid, sent_at = ?, error = null
     from json_to_recordset(?::json) as v(id text, mid text)
     where e.id = v.id and e.status in ('PENDING', 'FAILED')`,
    [now, JSON.stringify(sent.map((s) => ({ id: s.id, mid: s.providerMessageId })))],
  );
}
