/**
 * sync-quickbooks (daily, "0 2 * * *"): for each connected integration with
 * auto-sync on, fetch the monthly ProfitAndLoss and BalanceSheet from QuickBooks and
 * upsert them into financial_periods; record the sync's status, a ledger entry, and
 * open (or resolve) the sync-failure signal. JOBS.md, "sync-quickbooks".
 */
import { requireQuickBooksConfig } from '../lib/config.ts';
import { MAX_ERROR_DETAILS } from '../lib/runtime/items.ts';
import type { JobContext, JobDefinition } from '../lib/runtime/job.ts';
import { QuickBooksClient } from '../lib/quickbooks/client.ts';
import type { QuickBooksClientError } from '../lib/quickbooks/errors.ts';
import { TokenEndpoint } from '../lib/quickbooks/oauth.ts';
import { syncIntegration, type SyncResult } from '../lib/quickbooks/sync.ts';
import { countSyncCandidates, QUICKBOOKS_COLUMNS, syncCandidatePages, type SyncCandidate } from '../lib/sql/quickbooks.ts';
import { registerSecrets } from '../lib/telemetry/redact.ts';

/** The Intuit token endpoint of this run (made once: preflight and items share it). */
function tokenEndpoint(ctx: JobContext): TokenEndpoint {
  const q = ctx.config.quickbooks;
  return new TokenEndpoint({ clientId: q.clientId!, clientSecret: q.clientSecret!, environment: q.environment, tokenUrl: q.tokenUrl, timeoutMs: q.timeoutMs });
}

const job: JobDefinition = {
  name: 'sync-quickbooks',
  schedule: '0 2 * * *',
  description: 'Pulls monthly financials from QuickBooks into financial_periods',
  requiredColumns: QUICKBOOKS_COLUMNS,
  checkConfig: requireQuickBooksConfig,

  // Bad app credentials are a configuration error for the whole run: found before
  // any integration is touched (exit 2). A dry run never calls Intuit.
  async preflight(ctx) {
    registerSecrets(ctx.config.quickbooks.clientSecret);
    if (ctx.dryRun) return;
    if ((await countSyncCandidates(ctx.db, { shard: ctx.shard, companyId: ctx.options.companyId })) === 0) return;
    await tokenEndpoint(ctx).checkCredentials(ctx.now);
  },

  async run(ctx) {
    const q = ctx.config.quickbooks;
    const filter = { shard: ctx.shard, companyId: ctx.options.companyId };
    const client = new QuickBooksClient({
      apiUrl: q.apiUrl, accountingMethod: q.accountingMethod, maxInFlightPerRealm: q.maxInFlightPerRealm, maxPerMinutePerRealm: q.maxPerMinutePerRealm,
      maxInFlight: q.concurrency * 2, timeoutMs: q.timeoutMs, log: ctx.log, signal: ctx.signal,
    });
    const deps = {
      db: ctx.db, client, endpoint: tokenEndpoint(ctx), keys: { current: ctx.config.tokenEncryptionKey!, previous: ctx.config.tokenEncryptionKeyPrevious },
      now: ctx.now, dryRun: ctx.dryRun, force: ctx.options.force === true, log: ctx.log,
    };

    const totals = { integrationsChecked: 0, synced: 0, skipped: 0, failed: 0, periodsCreated: 0, periodsUpdated: 0, periodsConflicted: 0 };
    const results: SyncResult[] = [];
    let credentialsRejected: QuickBooksClientError | undefined;

    await ctx.forEach<SyncCandidate>({
      phase: 'integrations',
      kind: 'integration',
      source: syncCandidatePages(ctx.db, filter),
      total: await countSyncCandidates(ctx.db, filter),
      id: (c) => c.id,
      concurrency: q.concurrency,
      handle: async (c) => {
        if (credentialsRejected) return 'not-attempted';
        totals.integrationsChecked++;
        let result: SyncResult;
        try {
          result = await syncIntegration(deps, c);
        } catch (err) {
          // Intuit refused our app credentials mid-run: stop touching integrations.
          if ((err as Error).name === 'QuickBooksClientError') credentialsRejected ??= err as QuickBooksClientError;
          throw err;
        }
        totals[result.status]++;
        totals.periodsCreated += result.periodsCreated;
        totals.periodsUpdated += result.periodsUpdated;
        totals.periodsConflicted += result.periodsConflicted;
        if (results.length < MAX_ERROR_DETAILS) results.push(result);
        return result.status;
      },
    });
    if (credentialsRejected) throw credentialsRejected;

    return { ...totals, results, ...(totals.integrationsChecked > results.length ? { resultsTruncated: true } : {}) };
  },
};

export default job;
