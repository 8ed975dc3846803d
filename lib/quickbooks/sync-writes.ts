/**
 * Writing successful syncs (JOBS.md, sync-quickbooks, steps 4-5), several integrations
 * per transaction. Each integration's writes are the same as when it is written
 * alone: its status (which also locks its row and checks its company is live), its
 * months, its FINANCIALS_SYNCED entry and the recovery of its open failure signal.
 *
 * Why batch: one transaction of five statements per integration was most of the
 * job's SQL round trips and commits (bench/FINDINGS.md, sync-quickbooks). The
 * writer commits like a database group commit: while one batch is being written,
 * the syncs that finish wait and are written together in the next one, so no
 * timer adds latency when the job is idle, and batches grow when it is busy.
 *
 * Atomicity per integration holds: when a batch fails (a trigger refuses one row,
 * a deadlock with another process), its integrations are written again one by
 * one, each in its own transaction, so one bad integration fails alone and the
 * others keep their writes (like lib/runtime/items.ts does for pages). A lost
 * connection is not redone: it fails every integration of the batch and stops
 * the run.
 */
import type { Decimal } from 'decimal.js';
import type { Knex } from 'knex';
import { isConnectionError } from '../errors.ts';
import { upsertQuickBooksPeriodsMany, type PeriodValues, type UpsertCounts } from '../sql/financial-periods.ts';
import { recordSyncSuccessesIfLive, type SyncCandidate } from '../sql/quickbooks.ts';
import { resolveOpenCompanySignals, type LedgerEntry } from '../sql/signals.ts';
import type { Logger } from '../telemetry/log.ts';
import type { MonthFigures } from './report-parser.ts';

/** The failure signal a successful sync resolves. */
export const SYNC_FAILED_EVENT = 'quickbooks_sync_failed';

/** One successful sync, fetched and mapped, ready to be stored. */
export interface SyncedIntegration {
  candidate: SyncCandidate;
  /** Exact decimals, or their two-decimal text as the sync maps them (report-parser.ts, the AsStored functions). */
  months: Array<MonthFigures<Decimal | string>>;
  window: { startDate: string; endDate: string };
}

/**
 * Writes successful syncs in one transaction of five statements whatever their
 * number: BEGIN, the outcomes (that also lock the live integrations), the periods
 * of every company, the ledger entries with the recovery of open failure signals,
 * COMMIT. Returns each sync's period counts, in order, or null for one whose
 * company was deleted while its reports were fetched (nothing was written for it).
 * Integrations must be of distinct companies (company_id is unique per integration).
 */
export async function writeSyncs(db: Knex, syncs: SyncedIntegration[], now: Date): Promise<Array<UpsertCounts | null>> {
  return db.transaction(async (trx) => {
    // The company may have been deleted while its reports were fetched: write nothing for it.
    const live = await recordSyncSuccessesIfLive(trx, syncs.map((s) => s.candidate.id), now);
    const written = syncs.filter((s) => live.has(s.candidate.id));
    if (!written.length) return syncs.map(() => null);
    const counts = await upsertQuickBooksPeriodsMany(trx, written.map((s) => ({ companyId: s.candidate.companyId, periods: s.months.map(toPeriod) })), now);
    const entries: LedgerEntry[] = written.map(({ candidate: c, months, window }) => {
      const n = counts.get(c.companyId)!;
      return {
        companyId: c.companyId,
        signalId: null,
        entryType: 'FINANCIALS_SYNCED',
        summary: `QuickBooks financials synced: ${months.length} months (${n.created} new, ${n.updated} changed)`,
        details: { integrationId: c.id, realmId: c.realmId, ...window, months: months.length, periodsCreated: n.created, periodsUpdated: n.updated, periodsConflicted: n.conflicted },
      };
    });
    await resolveOpenCompanySignals(trx, written.map((s) => s.candidate.companyId), SYNC_FAILED_EVENT, 'SYNC_RECOVERED', now, entries);
    return syncs.map((s) => (live.has(s.candidate.id) ? counts.get(s.candidate.companyId)! : null));
  });
}

interface Pending {
  sync: SyncedIntegration;
  resolve: (counts: UpsertCounts | null) => void;
  reject: (err: unknown) => void;
}

/** Gathers the successful syncs of a run and writes them in batches (see the file's comment). */
export class SyncWriter {
  readonly #db: Knex;
  readonly #now: Date;
  readonly #log: Logger;
  readonly #maxBatch: number;
  #pending: Pending[] = [];
  #writing = false;
  #scheduled = false;
  /** Batches written, and integrations in them (the job's debug line; tests). */
  batches = 0;
  written = 0;

  constructor(options: { db: Knex; now: Date; log: Logger; maxBatch?: number }) {
    this.#db = options.db;
    this.#now = options.now;
    this.#log = options.log;
    this.#maxBatch = options.maxBatch ?? 100;
  }

  /** Stores one successful sync with the next batch; resolves once it is committed (null: its company is gone, nothing written). */
  write(sync: SyncedIntegration): Promise<UpsertCounts | null> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ sync, resolve, reject });
      this.#schedule();
    });
  }

  /** Starts the next batch after the current tick (syncs finishing together go together), unless one is being written. */
  #schedule(): void {
    if (this.#writing || this.#scheduled || !this.#pending.length) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#writing || !this.#pending.length) return;
      const batch = this.#pending.splice(0, this.#maxBatch);
      this.#writing = true;
      void this.#flush(batch).finally(() => {
        this.#writing = false;
        this.#schedule();
      });
    });
  }

  async #flush(batch: Pending[]): Promise<void> {
    this.batches++;
    this.written += batch.length;
    let results: Array<UpsertCounts | null>;
    try {
      results = await writeSyncs(this.#db, batch.map((p) => p.sync), this.#now);
    } catch (err) {
      if (batch.length === 1 || isConnectionError(err)) return batch.forEach((p) => p.reject(err));
      this.#log.warn('qbo:sync:batch-failed', { size: batch.length, first: batch[0]!.sync.candidate.id, error: err, detail: 'writing its integrations one by one' });
      for (const p of batch) {
        try {
          p.resolve((await writeSyncs(this.#db, [p.sync], this.#now))[0]!);
        } catch (one) {
          p.reject(one);
        }
      }
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]!));
  }
}

function toPeriod(m: MonthFigures<Decimal | string>): PeriodValues {
  return {
    periodStart: m.periodStart,
    periodEnd: m.periodEnd,
    values: {
      revenue: m.revenue, cogs: m.cogs, gross_profit: m.grossProfit, operating_expenses: m.operatingExpenses, ebitda: m.ebitda, net_income: m.netIncome,
      total_assets: m.totalAssets, total_liabilities: m.totalLiabilities, equity: m.equity, cash: m.cash,
    },
  };
}
