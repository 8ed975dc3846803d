/**
 * quickbooks_integrations: the sync's candidates (read set-based, in keyset pages),
 * the token row locked for a refresh, and the sync status.
 */
import type { Knex } from 'knex';
import { shardCondition, type Shard } from '../runtime/shard.ts';

/** The product columns the sync reads or writes (checked at start). */
export const QUICKBOOKS_COLUMNS: Record<string, string[]> = {
  quickbooks_integrations: ['id', 'company_id', 'realm_id', 'access_token', 'refresh_token', 'access_token_expires_at', 'refresh_token_expires_at', 'auto_sync_enabled', 'disconnected_at', 'needs_reauth', 'last_sync_at', 'last_sync_status', 'last_sync_error', 'updated_at'],
  companies: ['id', 'name', 'deleted_at'],
  financial_periods: ['company_id', 'period_start', 'period_end', 'revenue', 'cogs', 'gross_profit', 'operating_expenses', 'ebitda', 'net_income', 'total_assets', 'total_liabilities', 'equity', 'cash', 'source', 'synced_at', 'created_at', 'updated_at'],
  signals: ['id', 'company_id', 'user_id', 'channel', 'event_type', 'category', 'severity', 'confidence', 'title', 'description', 'metadata', 'created_at', 'updated_at', 'resolved_at', 'resolution'],
  value_ledger_entries: ['company_id', 'signal_id', 'entry_type', 'summary', 'details', 'created_at'],
};

/** One integration to sync, with what the sync needs to plan its fetch. */
export interface SyncCandidate {
  id: string;
  companyId: string;
  companyName: string;
  realmId: string;
  /** Encrypted (enc:v1). */
  accessToken: string;
  /** Encrypted (enc:v1). */
  refreshToken: string;
  accessTokenExpiresAt: Date;
  refreshTokenExpiresAt: Date;
  lastSyncAt: Date | null;
  /** The latest QUICKBOOKS-sourced period_start stored for the company, 'YYYY-MM-DD'. */
  latestQuickBooksPeriod: string | null;
}

export interface CandidateFilter {
  shard: Shard;
  companyId?: string;
}

/**
 * Candidates: auto-sync enabled, not disconnected, not needing re-authorisation,
 * company not deleted; this shard's only. Filters shared by the count and the pages.
 */
function candidates(db: Knex, filter: CandidateFilter): Knex.QueryBuilder {
  const q = db('quickbooks_integrations as i')
    .join('companies as c', 'c.id', 'i.company_id')
    .where('i.auto_sync_enabled', true)
    .whereNull('i.disconnected_at')
    .where('i.needs_reauth', false)
    .whereNull('c.deleted_at')
    .andWhereRaw(shardCondition(db, 'i.id', filter.shard));
  if (filter.companyId) q.where('i.company_id', filter.companyId);
  return q;
}

/** How many candidates this shard has (for progress). */
export async function countSyncCandidates(db: Knex, filter: CandidateFilter): Promise<number> {
  const row = await candidates(db, filter).count<{ n: string | number }>({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

/** Pages of candidates in id order (keyset), `pageSize` at a time. */
export async function* syncCandidatePages(db: Knex, filter: CandidateFilter, pageSize = 500): AsyncGenerator<SyncCandidate[]> {
  let after = '';
  for (;;) {
    const rows: Array<Record<string, unknown>> = await candidates(db, filter)
      .where('i.id', '>', after)
      .orderBy('i.id')
      .limit(pageSize)
      .select(
        'i.id', 'i.company_id', 'c.name as company_name', 'i.realm_id', 'i.access_token', 'i.refresh_token',
        'i.access_token_expires_at', 'i.refresh_token_expires_at', 'i.last_sync_at',
        db.raw(`(select max(fp.period_start) from financial_periods fp where fp.company_id = i.company_id and fp.source = 'QUICKBOOKS') as latest_period`),
      );
    if (!rows.length) return;
    yield rows.map(toCandidate);
    if (rows.length < pageSize) return;
    after = String(rows[rows.length - 1]!.id);
  }
}

function toCandidate(r: Record<string, unknown>): SyncCandidate {
  return {
    id: String(r.id),
    companyId: String(r.company_id),
    companyName: String(r.company_name),
    realmId: String(r.realm_id),
    accessToken: String(r.access_token),
    refreshToken: String(r.refresh_token),
    accessTokenExpiresAt: new Date(r.access_token_expires_at as Date),
    refreshTokenExpiresAt: new Date(r.refresh_token_expires_at as Date),
    lastSyncAt: r.last_sync_at ? new Date(r.last_sync_at as Date) : null,
    latestQuickBooksPeriod: r.latest_period ? dateText(r.latest_period) : null,
  };
}

function dateText(v: unknown): string {
  return v instanceof Date ? v.toISOString().slice(0, 10) : String(v).slice(0, 10);
}

/** The token columns of one integration, as stored (encrypted). */
export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
  refreshTokenExpiresAt: Date;
  needsReauth: boolean;
}

/**
 * Locks an integration's row for a token refresh (SELECT … FOR UPDATE, inside the
 * caller's transaction) and returns its tokens as they are now: another run may
 * have refreshed them while this one waited.
 */
export async function lockIntegrationTokens(trx: Knex, id: string): Promise<StoredTokens | undefined> {
  const r = await trx('quickbooks_integrations')
    .where({ id })
    .forUpdate()
    .first('access_token', 'refresh_token', 'access_token_expires_at', 'refresh_token_expires_at', 'needs_reauth');
  if (!r) return undefined;
  return {
    accessToken: r.access_token,
    refreshToken: r.refresh_token,
    accessTokenExpiresAt: new Date(r.access_token_expires_at),
    refreshTokenExpiresAt: new Date(r.refresh_token_expires_at),
    needsReauth: Boolean(r.needs_reauth),
  };
}

/** Stores a refreshed, encrypted token pair and its expiry times. */
export async function saveTokens(trx: Knex, id: string, t: Omit<StoredTokens, 'needsReauth'>, now: Date): Promise<void> {
  await trx('quickbooks_integrations').where({ id }).update({
    access_token: t.accessToken,
    refresh_token: t.refreshToken,
    access_token_expires_at: t.accessTokenExpiresAt,
    refresh_token_expires_at: t.refreshTokenExpiresAt,
    updated_at: now,
  });
}

/**
 * Records the outcome of a sync on the integration, if it and its company still
 * exist and the company is not deleted, and returns whether it did. One statement:
 * the UPDATE also locks the row for the rest of the caller's transaction, and its
 * join with companies is the liveness check. The candidate was selected before its
 * (slow) QuickBooks calls; a company deleted meanwhile must get nothing written (a
 * hard delete would make the writes fail on the foreign keys, a soft delete would
 * store periods and signals for a deleted company), so a false return means the
 * caller writes nothing else.
 */
export async function recordSyncOutcomeIfLive(trx: Knex, id: string, outcome: { status: 'SUCCESS' | 'FAILED'; error: string | null; needsReauth?: boolean }, now: Date): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: unknown[] }>(
    `update quickbooks_integrations i
     set last_sync_at = ?, last_sync_status = ?, last_sync_error = ?, needs_reauth = i.needs_reauth or ?, updated_at = ?
     from companies c
     where i.id = ? and c.id = i.company_id and c.deleted_at is null
     returning 1`,
    [now, outcome.status, outcome.error, outcome.needsReauth === true, now, id],
  );
  return rows.length > 0;
}

/**
 * recordSyncOutcomeIfLive for a batch of successful syncs, in one statement: stamps
 * SUCCESS on each integration whose company is live (locking its row for the
 * rest of the caller's transaction) and returns the ids it stamped. An id missing
 * from the result is one whose company was deleted meanwhile: nothing else may be
 * written for it.
 */
export async function recordSyncSuccessesIfLive(trx: Knex, ids: string[], now: Date): Promise<Set<string>> {
  if (!ids.length) return new Set();
  const { rows } = await trx.raw<{ rows: Array<{ id: string }> }>(
    `update quickbooks_integrations i
     set last_sync_at = ?, last_sync_status = 'SUCCESS', last_sync_error = null, updated_at = ?
     from companies c
     where i.id in (select json_array_elements_text(?::json)) and c.id = i.company_id and c.deleted_at is null
     returning i.id`,
    [now, now, JSON.stringify(ids)],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * One stored (encrypted) refresh token, for checking the token key: that of the
 * most recently updated connected integration, undefined when there is none.
 */
export async function latestStoredToken(db: Knex): Promise<{ id: string; refreshToken: string } | undefined> {
  const r = await db('quickbooks_integrations').whereNull('disconnected_at').orderBy('updated_at', 'desc').orderBy('id').first('id', 'refresh_token');
  return r ? { id: String(r.id), refreshToken: String(r.refresh_token) } : undefined;
}
