/**
 * Syncing one QuickBooks integration (JOBS.md, sync-quickbooks, steps 1-6): skip a
 * recent one, get a fresh access token, fetch both monthly reports over the fetch
 * window, map each month, and write the periods, the integration's status, the
 * ledger entry and the signal changes in one transaction.
 */
import type { Knex } from 'knex';
import { upsertQuickBooksPeriods, type PeriodValues } from '../sql/financial-periods.ts';
import { recordSyncOutcomeIfLive, type SyncCandidate } from '../sql/quickbooks.ts';
import { escalateSignal, findOpenSignal, openSignal, resolveOpenSignal } from '../sql/signals.ts';
import type { Logger } from '../telemetry/log.ts';
import { redact } from '../telemetry/redact.ts';
import type { QuickBooksClient } from './client.ts';
import { QuickBooksAuthError, QuickBooksClientError, QuickBooksParseError, QuickBooksReauthError } from './errors.ts';
import type { TokenEndpoint } from './oauth.ts';
import { monthlyFigures, type MonthFigures, type QboReport } from './report-parser.ts';
import { TokenDecryptError } from './token-crypto.ts';
import { currentAccessToken, decrypt, refreshAccessToken, type TokenKeys } from './tokens.ts';
import { PermanentError, TransientError } from '../errors.ts';

/** A sync within this long of the last one is skipped (unless forced). */
export const SKIP_WITHIN_MS = 12 * 3600_000;
export const SYNC_FAILED_EVENT = 'quickbooks_sync_failed';

export interface SyncDeps {
  db: Knex;
  client: QuickBooksClient;
  endpoint: TokenEndpoint;
  keys: TokenKeys;
  now: Date;
  dryRun: boolean;
  force: boolean;
  log: Logger;
}

export interface SyncResult {
  companyId: string;
  companyName: string;
  status: 'synced' | 'skipped' | 'failed';
  periodsCreated: number;
  periodsUpdated: number;
  periodsConflicted: number;
  error?: string;
  /** The failure revoked the connection (invalid_grant): the integration now needs reauth. */
  needsReauth?: boolean;
  /** Dry run: what would be fetched. */
  wouldFetch?: { startDate: string; endDate: string; reports: string[] };
}

/** The fetch window (JOBS.md step 3), as inclusive dates. */
export function fetchWindow(now: Date, latestQuickBooksPeriod: string | null): { startDate: string; endDate: string } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  let start = new Date(Date.UTC(y, m - 24, 1));
  if (latestQuickBooksPeriod) {
    const [ly, lm] = latestQuickBooksPeriod.split('-').map(Number) as [number, number];
    const refetch = new Date(Date.UTC(ly, lm - 1 - 2, 1));
    if (refetch > start) start = refetch;
  }
  return { startDate: day(start), endDate: day(new Date(Date.UTC(y, m + 1, 0))) };
}

/** Syncs one integration. Expected QuickBooks failures end as status `failed` with their signal; anything else is thrown. */
export async function syncIntegration(deps: SyncDeps, c: SyncCandidate): Promise<SyncResult> {
  const base = { companyId: c.companyId, companyName: c.companyName, periodsCreated: 0, periodsUpdated: 0, periodsConflicted: 0 };
  if (!deps.force && c.lastSyncAt && deps.now.getTime() - c.lastSyncAt.getTime() < SKIP_WITHIN_MS) return { ...base, status: 'skipped' };
  const window = fetchWindow(deps.now, c.latestQuickBooksPeriod);
  const log = deps.log.child({ integrationId: c.id, companyId: c.companyId, realmId: c.realmId });

  let months: MonthFigures[];
  try {
    if (deps.dryRun) {
      // A dry run calls neither the token endpoint nor the API: it checks the tokens
      // can be read and reports what it would fetch.
      decrypt(c.accessToken, deps.keys);
      decrypt(c.refreshToken, deps.keys);
      return { ...base, status: 'synced', wouldFetch: { ...window, reports: ['ProfitAndLoss', 'BalanceSheet'] } };
    }
    months = await fetchMonths(deps, c, window);
  } catch (err) {
    if (err instanceof QuickBooksClientError || !isSyncFailure(err)) throw err;
    return recordFailure(deps, c, err as Error, log).then((error) => ({ ...base, status: 'failed' as const, error, ...(err instanceof QuickBooksReauthError ? { needsReauth: true } : {}) }));
  }

  // One transaction of five statements: BEGIN, the outcome (which also locks the
  // integration and checks its company is live), the periods, the ledger entry with
  // the recovery of an open failure signal, COMMIT.
  const counts = await deps.db.transaction(async (trx) => {
    // The company may have been deleted while its reports were fetched: write nothing.
    if (!(await recordSyncOutcomeIfLive(trx, c.id, { status: 'SUCCESS', error: null }, deps.now))) return null;
    const written = await upsertQuickBooksPeriods(trx, c.companyId, months.map(toPeriod), deps.now);
    await resolveOpenSignal(trx, { companyId: c.companyId, eventType: SYNC_FAILED_EVENT, userId: null }, 'SYNC_RECOVERED', deps.now, [{
      companyId: c.companyId,
      signalId: null,
      entryType: 'FINANCIALS_SYNCED',
      summary: `QuickBooks financials synced: ${months.length} months (${written.created} new, ${written.updated} changed)`,
      details: { integrationId: c.id, realmId: c.realmId, ...window, months: months.length, periodsCreated: written.created, periodsUpdated: written.updated, periodsConflicted: written.conflicted },
    }]);
    return written;
  });
  if (!counts) {
    log.warn('qbo:sync:company-gone', { reason: 'the company or integration was deleted during the sync; nothing written' });
    return { ...base, status: 'skipped' };
  }
  log.info('qbo:sync:done', { months: months.length, ...counts });
  return { ...base, status: 'synced', periodsCreated: counts.created, periodsUpdated: counts.updated, periodsConflicted: counts.conflicted };
}

/** Token, both reports (a 401 refreshes once and retries once), monthly figures. */
async function fetchMonths(deps: SyncDeps, c: SyncCandidate, window: { startDate: string; endDate: string }): Promise<MonthFigures[]> {
  const tokenDeps = { db: deps.db, endpoint: deps.endpoint, keys: deps.keys, now: deps.now };
  const fetchBoth = async (token: string) => {
    // When one report fails, the other is stopped: nothing of this sync outlives it.
    const stop = new AbortController();
    let first: unknown;
    const one = (name: 'ProfitAndLoss' | 'BalanceSheet') =>
      deps.client.report(c.realmId, token, name, window, { signal: stop.signal }).catch((err: unknown) => {
        if (first === undefined) first = err;
        stop.abort();
        throw err;
      });
    const settled = await Promise.allSettled([one('ProfitAndLoss'), one('BalanceSheet')]);
    if (first !== undefined) throw first;
    return settled.map((r) => (r as PromiseFulfilledResult<QboReport>).value) as [QboReport, QboReport];
  };
  let token = await currentAccessToken(tokenDeps, c);
  let reports: [QboReport, QboReport];
  try {
    reports = await fetchBoth(token);
  } catch (err) {
    if (!(err instanceof QuickBooksAuthError)) throw err;
    token = await refreshAccessToken(tokenDeps, c, token);
    reports = await fetchBoth(token);
  }
  return monthlyFigures(reports[0], reports[1]);
}

/** Failures that are the integration's, not ours: recorded with a signal, not counted as run errors. */
function isSyncFailure(err: unknown): boolean {
  return err instanceof TokenDecryptError || err instanceof QuickBooksParseError || err instanceof TransientError || err instanceof PermanentError;
}

/** Records a failed sync and its signal in one transaction; returns the stored (short, secret-free) error. */
async function recordFailure(deps: SyncDeps, c: SyncCandidate, err: Error, log: Logger): Promise<string> {
  const reauth = err instanceof QuickBooksReauthError;
  const error = shortError(err);
  log.warn('qbo:sync:failed', { error: err, needsReauth: reauth });
  const severity = reauth ? 'HIGH' : 'MEDIUM';
  const title = reauth ? 'QuickBooks connection needs to be reconnected' : 'QuickBooks sync failed';
  const metadata = { integrationId: c.id, realmId: c.realmId, error, needsReauth: reauth, ...((err as { intuitTid?: string }).intuitTid ? { intuitTid: (err as { intuitTid?: string }).intuitTid } : {}) };
  await deps.db.transaction(async (trx) => {
    // A company deleted during the sync gets no failure signal (nor a foreign-key error).
    if (!(await recordSyncOutcomeIfLive(trx, c.id, { status: 'FAILED', error, needsReauth: reauth }, deps.now))) return;
    const open = await findOpenSignal(trx, c.companyId, SYNC_FAILED_EVENT, null);
    if (!open) {
      await openSignal(trx, { companyId: c.companyId, userId: null, channel: 'INTEGRATION', eventType: SYNC_FAILED_EVENT, category: 'FINANCIAL', severity, confidence: 'CONFIDENT', title, description: error, metadata }, deps.now);
    } else if (reauth && open.severity !== 'HIGH' && open.severity !== 'CRITICAL') {
      await escalateSignal(trx, { id: open.id, companyId: c.companyId, severity: 'HIGH', title, metadata: { ...open.metadata, ...metadata } }, deps.now);
    }
  });
  return error;
}

/** The error as stored in last_sync_error and shown in results: one line, redacted, short. */
export function shortError(err: Error): string {
  return redact(err.message.replace(/\s+/g, ' ')).slice(0, 300);
}

function toPeriod(m: MonthFigures): PeriodValues {
  return {
    periodStart: m.periodStart,
    periodEnd: m.periodEnd,
    values: {
      revenue: m.revenue, cogs: m.cogs, gross_profit: m.grossProfit, operating_expenses: m.operatingExpenses, ebitda: m.ebitda, net_income: m.netIncome,
      total_assets: m.totalAssets, total_liabilities: m.totalLiabilities, equity: m.equity, cash: m.cash,
    },
  };
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}
