/**
 * Successful syncs written several per transaction (lib/quickbooks/sync-writes.ts):
 * one transaction of five statements for a whole batch with each integration's
 * exact counts, nothing for a company deleted meanwhile, and a batch that fails
 * redone one by one so that only the bad integration fails. Real databases.
 */
import { expect } from 'chai';
import { Decimal } from 'decimal.js';
import { PassThrough } from 'node:stream';
import type { LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import type { MonthFigures } from '../../lib/quickbooks/report-parser.ts';
import { SYNC_FAILED_EVENT, SyncWriter, writeSyncs, type SyncedIntegration } from '../../lib/quickbooks/sync-writes.ts';
import { syncCandidatePages, type SyncCandidate } from '../../lib/sql/quickbooks.ts';
import { openSignal } from '../../lib/sql/signals.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import { eachBackend } from '../support/db.ts';
import { aFinancialPeriod, daysBefore } from '../support/factories.ts';
import { NOW } from '../support/run.ts';
import { anIntegration, statementVerbs, useLoopbackQuickBooks } from './support.ts';

const WINDOW = { startDate: '2025-12-01', endDate: '2026-03-31' };

/** A month with a revenue and a cash figure, the rest unknown. */
function month(start: string, revenue: string): MonthFigures {
  const none = { cogs: null, grossProfit: null, operatingExpenses: null, ebitda: null, netIncome: null, totalAssets: null, totalLiabilities: null, equity: null };
  return { periodStart: start, periodEnd: `${start.slice(0, 8)}28`, revenue: new Decimal(revenue), cash: new Decimal('1.5'), ...none };
}
const MONTHS = [month('2025-12-01', '10'), month('2026-01-01', '20'), month('2026-02-01', '30')];

describe('sync-quickbooks batched writes', function () {
  this.timeout(30_000);
  eachBackend((db) => {
    let server!: LoopbackQuickBooks;
    useLoopbackQuickBooks(db, (s) => (server = s));

    const candidates = async (): Promise<Map<string, SyncCandidate>> => {
      const all = new Map<string, SyncCandidate>();
      for await (const page of syncCandidatePages(db().knex, { shard: { count: 1, index: 0 } })) for (const c of page) all.set(c.id, c);
      return all;
    };
    const synced = (c: SyncCandidate, months = MONTHS): SyncedIntegration => ({ candidate: c, months, window: WINDOW });
    const ledger = (companyId: string) => db().knex('value_ledger_entries').where({ company_id: companyId }).orderBy('entry_type').pluck('entry_type');
    const periods = (companyId: string) => db().knex('financial_periods').where({ company_id: companyId }).orderBy('period_start');
    const status = async (id: string) => (await db().knex('quickbooks_integrations').where({ id }).first()).last_sync_status as string | null;
    const verbsOf = <T>(fn: () => Promise<T>) => statementVerbs(db().knex, fn);

    it('writes a batch in one transaction of five statements, with each integration\'s exact counts and nothing for a deleted company', async () => {
      const fresh = await anIntegration(db().knex, server);
      const known = await anIntegration(db().knex, server);
      const gone = await anIntegration(db().knex, server);
      // known: December the same (unchanged), January different (updated), February MANUAL (conflicted); an open failure signal.
      const same = { revenue: '10.00', ebitda: null, cash: '1.50', source: 'QUICKBOOKS', synced_at: daysBefore(3), updated_at: daysBefore(3) };
      await aFinancialPeriod(db().knex, known.companyId, '2025-12-01', same);
      await aFinancialPeriod(db().knex, known.companyId, '2026-01-01', { ...same, revenue: '19.99' });
      await aFinancialPeriod(db().knex, known.companyId, '2026-02-01', { revenue: '7.00', source: 'MANUAL' });
      await db().knex.transaction((trx) => openSignal(trx, { companyId: known.companyId, userId: null, channel: 'INTEGRATION', eventType: SYNC_FAILED_EVENT, category: 'FINANCIAL', severity: 'MEDIUM', confidence: 'CONFIDENT', title: 'QuickBooks sync failed', metadata: {} }, daysBefore(1)));
      const all = await candidates();
      await db().knex('companies').where({ id: gone.companyId }).update({ deleted_at: NOW });

      const { result, verbs } = await verbsOf(() => writeSyncs(db().knex, [synced(all.get(fresh.id)!), synced(all.get(known.id)!), synced(all.get(gone.id)!)], NOW));
      expect(verbs).to.have.length(5);
      expect([verbs[0], verbs.at(-1)]).to.deep.equal(['begin', 'commit']);
      expect(result).to.deep.equal([
        { created: 3, updated: 0, unchanged: 0, conflicted: 0 },
        { created: 0, updated: 1, unchanged: 1, conflicted: 1 },
        null,
      ]);

      expect((await periods(fresh.companyId)).map((p) => [p.period_start, p.revenue, p.source])).to.deep.equal([['2025-12-01', '10.00', 'QUICKBOOKS'], ['2026-01-01', '20.00', 'QUICKBOOKS'], ['2026-02-01', '30.00', 'QUICKBOOKS']]);
      const k = await periods(known.companyId);
      expect(k.map((p) => [p.period_start, p.revenue, p.source])).to.deep.equal([['2025-12-01', '10.00', 'QUICKBOOKS'], ['2026-01-01', '20.00', 'QUICKBOOKS'], ['2026-02-01', '7.00', 'MANUAL']]);
      expect(new Date(k[0].updated_at).toISOString(), 'an unchanged month is only stamped').to.equal(daysBefore(3).toISOString());
      expect(new Date(k[0].synced_at).toISOString()).to.equal(NOW.toISOString());
      expect(k[2].synced_at).to.equal(null);
      expect(await periods(gone.companyId)).to.have.length(0);

      expect(await ledger(fresh.companyId)).to.deep.equal(['FINANCIALS_SYNCED']);
      expect(await ledger(known.companyId)).to.deep.equal(['FINANCIALS_SYNCED', 'SIGNAL_CREATED', 'SIGNAL_RESOLVED']);
      expect(await ledger(gone.companyId)).to.deep.equal([]);
      const entry = await db().knex('value_ledger_entries').where({ company_id: known.companyId, entry_type: 'FINANCIALS_SYNCED' }).first();
      expect(entry.summary).to.equal('QuickBooks financials synced: 3 months (0 new, 1 changed)');
      expect(typeof entry.details === 'string' ? JSON.parse(entry.details) : entry.details).to.deep.equal({ integrationId: known.id, realmId: known.realmId, ...WINDOW, months: 3, periodsCreated: 0, periodsUpdated: 1, periodsConflicted: 1 });
      expect(await db().knex('signals').where({ company_id: known.companyId }).first()).to.include({ resolution: 'SYNC_RECOVERED' });
      expect([await status(fresh.id), await status(known.id), await status(gone.id)]).to.deep.equal(['SUCCESS', 'SUCCESS', null]);
    });

    it('redoes a failed batch one by one: the integration the database refuses fails alone, the others keep all their writes', async () => {
      const a = await anIntegration(db().knex, server);
      const broken = await anIntegration(db().knex, server);
      const b = await anIntegration(db().knex, server);
      const all = await candidates();
      await db().knex.raw(`create function refuse_period() returns trigger language plpgsql as $$
        begin if new.company_id = '${broken.companyId}' then raise exception 'simulated failure for %', new.company_id; end if; return new; end $$`);
      await db().knex.raw('create trigger refuse_period before insert on financial_periods for each row execute function refuse_period()');
      try {
        const lines: string[] = [];
        const stream = new PassThrough();
        stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
        const writer = new SyncWriter({ db: db().knex, now: NOW, log: createLogger({ level: 'info', pretty: false, stream }) });
        // Written in the same tick: one batch.
        const outcomes = await Promise.allSettled([a, broken, b].map((i) => writer.write(synced(all.get(i.id)!))));
        expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
        expect(String((outcomes[1] as PromiseRejectedResult).reason)).to.match(/simulated failure/);
        expect((outcomes[0] as PromiseFulfilledResult<unknown>).value).to.deep.equal({ created: 3, updated: 0, unchanged: 0, conflicted: 0 });
        expect(writer.batches).to.equal(1);
        expect(lines.map((l) => JSON.parse(l) as { message: string; size?: number }).find((l) => l.message === 'qbo:sync:batch-failed')).to.include({ size: 3 });
        for (const ok of [a, b]) {
          expect(await periods(ok.companyId)).to.have.length(3);
          expect(await ledger(ok.companyId)).to.deep.equal(['FINANCIALS_SYNCED']);
          expect(await status(ok.id)).to.equal('SUCCESS');
        }
        expect(await periods(broken.companyId)).to.have.length(0);
        expect(await ledger(broken.companyId)).to.deep.equal([]);
        expect(await status(broken.id), 'the refused integration keeps no part of its sync').to.equal(null);
      } finally {
        await db().knex.raw('drop trigger refuse_period on financial_periods');
        await db().knex.raw('drop function refuse_period()');
      }
    });
  });
});
