/**
 * Syncing one QuickBooks integration (JOBS.md, sync-quickbooks, steps 1-6): skip a
 * recent one, get a fresh access token, fetch both monthly reports over the fetch
 * window, map each month, and write the periods, the integration's status, the
 * ledger entry and the signal changes in one transaction (with other integrations'
 * when the job batches them: sync-writes.ts).
 */
import type { Knex } from 'knex';
import { recordSyncOutcomeIfLive, type SyncCandidate } from '../sql/quickbooks.ts';
import { escalateSignal, findOpenSignal, openSignal } from '../sql/signals.ts';
import type { Logger } from '../telemetry/log.ts';
import { Slots } from '../runtime/slots.ts';
import { redact } from '../telemetry/redact.ts';
import type { QuickBooksClient } from './client.ts';
import { QuickBooksAuthError, QuickBooksClientError, QuickBooksParseError, QuickBooksReauthError } from './errors.ts';
import type { TokenEndpoint } from './oauth.ts';
import { balanceSheetAsStored, joinMonthlyFigures, profitAndLossAsStored, readEarly, type BalanceSheetFigures, type MonthFigures, type ProfitAndLossFigures, type ReadReport } from './report-parser.ts';
import { TokenDecryptError } from './token-crypto.ts';
import { SYNC_FAILED_EVENT, writeSyncs, type SyncWriter } from './sync-writes.ts';
import { currentAccessToken, decrypt, refreshAccessToken, type TokenKeys } from './tokens.ts';
import { PermanentError, TransientError } from '../errors.ts';

/** A sync within this long of the last one is skipped (unless forced). */
export const SKIP_WITHIN_MS = 12 * 3600_000;
export { SYNC_FAILED_EVENT };

export interface SyncDeps {
  db: Knex;
  client: QuickBooksClient;
  endpoint: TokenEndpoint;
  keys: TokenKeys;
  now: Date;
  dryRun: boolean;
  force: boolean;
  log: Logger;
  /** Writes successful syncs in batches (the job's); without it each is written alone. */
  writer?: SyncWriter;
  /** Integrations fetching at once, when the caller bounds them apart from the writes (the job's). */
  fetching?: FetchSlots;
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

/** Why an integration waiting to fetch was not synced: fetching stopped (FetchSlots.stop). */
export class FetchingStopped extends Error {
  override name = 'FetchingStopped';
}

/**
 * Integrations fetching at once (their token and both reports), bounded apart from
 * the writes that follow, so that integrations waiting for their batch to commit
 * do not hold fetches up. Once stopped, waiting and later integrations fail with
 * FetchingStopped without starting.
 */
export class FetchSlots {
  readonly #slots: Slots;
  readonly #stop = new AbortController();

  constructor(count: number) {
    this.#slots = new Slots(count);
  }

  async take(): Promise<void> {
    this.#stop.signal.throwIfAborted();
    if (!this.#slots.tryTake()) await this.#slots.take(this.#stop.signal);
  }

  release(): void {
    this.#slots.release();
  }

  stop(): void {
    this.#stop.abort(new FetchingStopped('not attempted: fetching stopped'));
  }
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

  let months: Array<MonthFigures<string>>;
  try {
    if (deps.dryRun) {
      // A dry run calls neither the token endpoint nor the API: it checks the tokens
      // can be read and reports what it would fetch.
      decrypt(c.accessToken, deps.keys);
      decrypt(c.refreshToken, deps.keys);
      return { ...base, status: 'synced', wouldFetch: { ...window, reports: ['ProfitAndLoss', 'BalanceSheet'] } };
    }
    await deps.fetching?.take();
    try {
      months = await fetchMonths(deps, c, window);
    } catch (err) {
      // Intuit refused our app: no other integration starts fetching (before this
      // slot is handed to the next one).
      if (err instanceof QuickBooksClientError) deps.fetching?.stop();
      throw err;
    } finally {
      deps.fetching?.release();
    }
  } catch (err) {
    if (err instanceof QuickBooksClientError || !isSyncFailure(err)) throw err;
    return recordFailure(deps, c, err as Error).then((error) => ({ ...base, status: 'failed' as const, error, ...(err instanceof QuickBooksReauthError ? { needsReauth: true } : {}) }));
  }

  // Written with the next batch of successful syncs when the job gives a writer
  // (sync-writes.ts), else alone: one transaction of five statements either way.
  const synced = { candidate: c, months, window };
  const counts = deps.writer ? await deps.writer.write(synced) : (await writeSyncs(deps.db, [synced], deps.now))[0]!;
  if (!counts) {
    childLog(deps, c).warn('qbo:sync:company-gone', { reason: 'the company or integration was deleted during the sync; nothing written' });
    return { ...base, status: 'skipped' };
  }
  // Per integration, so debug: the summary, the progress lines and the metrics carry the counts.
  if (deps.log.isDebugEnabled()) childLog(deps, c).debug('qbo:sync:done', { months: months.length, ...counts });
  return { ...base, status: 'synced', periodsCreated: counts.created, periodsUpdated: counts.updated, periodsConflicted: counts.conflicted };
}

function childLog(deps: SyncDeps, c: SyncCandidate): Logger {
  return deps.log.child({ integrationId: c.id, companyId: c.companyId, realmId: c.realmId });
}

/** Token, both reports (a 401 refreshes once and retries once), monthly figures. */
async function fetchMonths(deps: SyncDeps, c: SyncCandidate, window: { startDate: string; endDate: string }): Promise<Array<MonthFigures<string>>> {
  const tokenDeps = { db: deps.db, endpoint: deps.endpoint, keys: deps.keys, now: deps.now };
  const fetchBoth = async (token: string): Promise<[ReadReport<ProfitAndLossFigures<string>>, ReadReport<BalanceSheetFigures<string>>]> => {
    // When one report fails, the other is stopped: nothing of this sync outlives it.
    const stop = new AbortController();
    let first: unknown;
    const failed = (err: unknown): never => {
      if (first === undefined) first = err;
      stop.abort();
      throw err;
    };
    // `scan`: the money cells stay in the answer's text, read in place (report-scan.ts).
    const get = (name: 'ProfitAndLoss' | 'BalanceSheet') => deps.client.report(c.realmId, token, name, window, { signal: stop.signal, scan: true });
    // Each report is read as soon as it arrives, so its JSON tree dies young instead of
    // waiting for the other one; one that cannot be read fails in the join, in the
    // same order as monthlyFigures (report-parser.ts, readEarly). The figures come as
    // the two-decimal text that is stored (computed in integers of hundredths).
    const pnl = get('ProfitAndLoss').then((r) => readEarly(() => profitAndLossAsStored(r)), failed);
    const bs = get('BalanceSheet').then((r) => readEarly(() => balanceSheetAsStored(r)), failed);
    const settled = await Promise.allSettled([pnl, bs]);
    if (first !== undefined) throw first;
    return [(settled[0] as PromiseFulfilledResult<ReadReport<ProfitAndLossFigures<string>>>).value, (settled[1] as PromiseFulfilledResult<ReadReport<BalanceSheetFigures<string>>>).value];
  };
  let token = await currentAccessToken(tokenDeps, c);
  let reports: [ReadReport<ProfitAndLossFigures<string>>, ReadReport<BalanceSheetFigures<string>>];
  try {
    reports = await fetchBoth(token);
  } catch (err) {
    if (!(err instanceof QuickBooksAuthError)) throw err;
    token = await refreshAccessToken(tokenDeps, c, token);
    reports = await fetchBoth(token);
  }
  return joinMonthlyFigures(reports[0], reports[1]);
}

/** Failures that are the integration's, not ours: recorded with a signal, not counted as run errors. */
function isSyncFailure(err: unknown): boolean {
  return err instanceof TokenDecryptError || err instanceof QuickBooksParseError || err instanceof TransientError || err instanceof PermanentError;
}

/** Records a failed sync and its signal in one transaction; returns the stored (short, secret-free) error. */
async function recordFailure(deps: SyncDeps, c: SyncCandidate, err: Error): Promise<string> {
  const reauth = err instanceof QuickBooksReauthError;
  const error = shortError(err);
  childLog(deps, c).warn('qbo:sync:failed', { error: err, needsReauth: reauth });
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

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}
