/**
 * sync-quickbooks (daily, "0 2 * * *"): for each connected integration with
 * auto-sync on, fetch the monthly ProfitAndLoss and BalanceSheet from QuickBooks and
 * upsert them into financial_periods; record the sync's status, a ledger entry, and
 * open (or resolve) the sync-failure signal. JOBS.md, "sync-quickbooks".
 */
import { requireQuickBooksConfig } from '../lib/config.ts';
import { QuickBooksClientError } from '../lib/quickbooks/errors.ts';
import { createQuickBooksServices } from '../lib/quickbooks/services.ts';
import { FetchingStopped, FetchSlots, syncIntegration, type SyncResult } from '../lib/quickbooks/sync.ts';
import { SyncWriter } from '../lib/quickbooks/sync-writes.ts';
import { MAX_ERROR_DETAILS } from '../lib/runtime/items.ts';
import type { JobDefinition } from '../lib/runtime/job.ts';
import { countSyncCandidates, QUICKBOOKS_COLUMNS, syncCandidatePages, type SyncCandidate } from '../lib/sql/quickbooks.ts';

const job: JobDefinition = {
  name: 'sync-quickbooks',
  schedule: '0 2 * * *',
  description: 'Pulls monthly financials from QuickBooks into financial_periods',
  requiredColumns: QUICKBOOKS_COLUMNS,
  checkConfig: requireQuickBooksConfig,

  // Bad app credentials are a configuration error for the whole run, found before
  // any integration is touched (exit 2). A dry run never calls Intuit.
  async preflight(ctx) {
    if (ctx.dryRun) return;
    if ((await countSyncCandidates(ctx.db, { shard: ctx.shard, companyId: ctx.options.companyId })) === 0) return;
    await createQuickBooksServices(ctx.config, ctx.log, ctx.signal).endpoint.checkCredentials(ctx.now);
  },

  async run(ctx) {
    const filter = { shard: ctx.shard, companyId: ctx.options.companyId };
    // Successful syncs are written several per transaction (lib/quickbooks/sync-writes.ts);
    // a dry run writes nothing.
    const writer = ctx.dryRun ? undefined : new SyncWriter({ db: ctx.db, now: ctx.now, log: ctx.log });
    // QUICKBOOKS_CONCURRENCY integrations fetch at once (their token and reports:
    // two calls each, the client's global limit); as many again may be waiting for
    // their batch to commit, so that a write in progress does not hold fetches up
    // (it held a third of the slots at 1M users: bench/FINDINGS.md, round four).
    const { concurrency } = ctx.config.quickbooks;
    const fetching = new FetchSlots(concurrency);
    const deps = { ...createQuickBooksServices(ctx.config, ctx.log, ctx.signal), db: ctx.db, now: ctx.now, dryRun: ctx.dryRun, force: ctx.options.force === true, log: ctx.log, fetching, ...(writer ? { writer } : {}) };
    const totals = { integrationsChecked: 0, synced: 0, skipped: 0, failed: 0, needsReauth: 0, periodsCreated: 0, periodsUpdated: 0, periodsConflicted: 0 };
    const results: SyncResult[] = [];
    let credentialsRejected: QuickBooksClientError | undefined;

    await ctx.forEach<SyncCandidate>({
      phase: 'integrations',
      kind: 'integration',
      source: syncCandidatePages(ctx.db, filter),
      total: await countSyncCandidates(ctx.db, filter),
      id: (c) => c.id,
      concurrency: writer ? 2 * concurrency : concurrency,
      handle: async (c) => {
        if (credentialsRejected) return 'not-attempted';
        // A failed sync that raised its signal comes back as status 'failed' (handled);
        // only unexpected errors are thrown and counted as the run's errors.
        const result = await syncIntegration(deps, c).catch((err: unknown) => {
          if (err instanceof FetchingStopped) return undefined; // was waiting to fetch when Intuit refused our app
          totals.integrationsChecked++;
          if (err instanceof QuickBooksClientError) credentialsRejected ??= err; // Intuit refused our app mid-run: stop
          throw err;
        });
        if (!result) return 'not-attempted';
        totals.integrationsChecked++;
        totals[result.status]++;
        if (result.needsReauth) totals.needsReauth++; // published as exitosx_cron_needs_reauth (alert: reconnects needed)
        totals.periodsCreated += result.periodsCreated;
        totals.periodsUpdated += result.periodsUpdated;
        totals.periodsConflicted += result.periodsConflicted;
        if (results.length < MAX_ERROR_DETAILS) results.push(result);
        return result.status;
      },
    });
    if (credentialsRejected) throw credentialsRejected;
    if (writer) ctx.log.debug('qbo:sync:batches', { batches: writer.batches, integrations: writer.written });

    return { ...totals, results, ...(totals.integrationsChecked > results.length ? { resultsTruncated: true } : {}) };
  },
};

export default job;
