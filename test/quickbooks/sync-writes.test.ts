/**
 * What a sync writes, and in how many statements: one transaction of five
 * (BEGIN, the outcome that also locks the live integration, the periods, the
 * ledger entry with the recovery of an open failure signal, COMMIT), with exact
 * counts, and nothing at all for a company deleted during the sync. Real
 * databases; QuickBooks is the loopback server.
 */
import { expect } from 'chai';
import { Decimal } from 'decimal.js';
import type { Knex } from 'knex';
import { loadConfig } from '../../lib/config.ts';
import type { LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { createQuickBooksServices } from '../../lib/quickbooks/services.ts';
import { SYNC_FAILED_EVENT, syncIntegration } from '../../lib/quickbooks/sync.ts';
import { PERIOD_FIELDS, upsertQuickBooksPeriods, type PeriodValues } from '../../lib/sql/financial-periods.ts';
import { syncCandidatePages, type SyncCandidate } from '../../lib/sql/quickbooks.ts';
import { openSignal } from '../../lib/sql/signals.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import { eachBackend } from '../support/db.ts';
import { aFinancialPeriod, daysBefore } from '../support/factories.ts';
import { NOW } from '../support/run.ts';
import { anIntegration, qbEnv, statementVerbs, useLoopbackQuickBooks } from './support.ts';
import { PassThrough } from 'node:stream';

describe('sync-quickbooks writes', function () {
  this.timeout(30_000);
  eachBackend((db) => {
    let server!: LoopbackQuickBooks;
    useLoopbackQuickBooks(db, (s) => (server = s));

    const deps = () => {
      const log = createLogger({ level: 'debug', pretty: false, stream: new PassThrough().resume() });
      return { ...createQuickBooksServices(loadConfig(qbEnv(server)), log, new AbortController().signal), db: db().knex, now: NOW, dryRun: false, force: false, log };
    };
    const candidate = async (id: string): Promise<SyncCandidate> => {
      for await (const page of syncCandidatePages(db().knex, { shard: { count: 1, index: 0 } })) {
        const c = page.find((x) => x.id === id);
        if (c) return c;
      }
      throw new Error(`no candidate ${id}`);
    };
    const statements = <T>(fn: () => Promise<T>) => statementVerbs(db().knex, fn);

    it('a successful sync is one transaction of five statements, resolving an open failure signal with its ledger entry', async () => {
      const i = await anIntegration(db().knex, server);
      await db().knex.transaction((trx) => openSignal(trx, { companyId: i.companyId, userId: null, channel: 'INTEGRATION', eventType: SYNC_FAILED_EVENT, category: 'FINANCIAL', severity: 'MEDIUM', confidence: 'CONFIDENT', title: 'QuickBooks sync failed', metadata: {} }, daysBefore(1)));
      const c = await candidate(i.id);
      const { result, verbs } = await statements(() => syncIntegration(deps(), c));
      expect(result).to.include({ status: 'synced', periodsCreated: 25, periodsUpdated: 0, periodsConflicted: 0 });
      expect(verbs).to.have.length(5);
      expect(verbs[0]).to.equal('begin');
      expect(verbs.at(-1)).to.equal('commit');

      const signal = await db().knex('signals').where({ company_id: i.companyId }).first();
      expect(signal).to.include({ resolution: 'SYNC_RECOVERED' });
      expect(new Date(signal.resolved_at).toISOString()).to.equal(NOW.toISOString());
      const ledger = await db().knex('value_ledger_entries').where({ company_id: i.companyId }).orderBy('entry_type');
      expect(ledger.map((e) => [e.entry_type, e.signal_id, e.summary])).to.deep.equal([
        ['FINANCIALS_SYNCED', null, 'QuickBooks financials synced: 25 months (25 new, 0 changed)'],
        ['SIGNAL_CREATED', signal.id, 'QuickBooks sync failed'],
        ['SIGNAL_RESOLVED', signal.id, 'Resolved: QuickBooks sync failed'],
      ]);
      const synced = ledger[0]!;
      expect(typeof synced.details === 'string' ? JSON.parse(synced.details) : synced.details).to.deep.include({ integrationId: i.id, realmId: i.realmId, months: 25, periodsCreated: 25, periodsUpdated: 0, periodsConflicted: 0 });
      expect(ledger[2]!.details).to.satisfy((d: unknown) => (typeof d === 'string' ? JSON.parse(d) : d).resolution === 'SYNC_RECOVERED');
      expect(new Date((await db().knex('quickbooks_integrations').where({ id: i.id }).first()).last_sync_at).toISOString()).to.equal(NOW.toISOString());
    });

    it('writes nothing for a company deleted while its reports were fetched', async () => {
      const i = await anIntegration(db().knex, server);
      const c = await candidate(i.id);
      await db().knex('companies').where({ id: i.companyId }).update({ deleted_at: NOW });
      const { result, verbs } = await statements(() => syncIntegration(deps(), c));
      expect(result.status).to.equal('skipped');
      expect(verbs).to.have.length(3); // begin, the outcome that found no live row, and the end
      expect(await db().knex('financial_periods').where({ company_id: i.companyId })).to.have.length(0);
      expect(await db().knex('value_ledger_entries').where({ company_id: i.companyId })).to.have.length(0);
      expect(await db().knex('quickbooks_integrations').where({ id: i.id }).first()).to.include({ last_sync_at: null, last_sync_status: null });
    });

    describe('the periods upsert (one statement)', () => {
      const month = (start: string, revenue: string | null): PeriodValues => ({
        periodStart: start,
        periodEnd: `${start.slice(0, 8)}28`,
        values: Object.fromEntries(PERIOD_FIELDS.map((f) => [f, f === 'revenue' ? (revenue === null ? null : new Decimal(revenue)) : f === 'cash' ? new Decimal('5.005') : null])) as PeriodValues['values'],
      });
      const read = (knex: Knex, companyId: string, start: string) => knex('financial_periods').where({ company_id: companyId, period_start: start }).first();

      it('counts created, updated, unchanged and conflicted exactly; stamps only the unchanged; never touches MANUAL', async () => {
        const i = await anIntegration(db().knex, server);
        const earlier = daysBefore(3);
        const kept = { revenue: '10.00', cogs: null, gross_profit: null, operating_expenses: null, ebitda: null, net_income: null, total_assets: null, total_liabilities: null, equity: null, cash: '5.01', source: 'QUICKBOOKS', synced_at: earlier, updated_at: earlier };
        await aFinancialPeriod(db().knex, i.companyId, '2026-01-01', kept); // same amounts (5.005 rounds to 5.01): unchanged
        await aFinancialPeriod(db().knex, i.companyId, '2025-12-01', { ...kept, revenue: '9.99' }); // changed: updated
        await aFinancialPeriod(db().knex, i.companyId, '2025-11-01', { revenue: '1.00', source: 'MANUAL' }); // conflicted
        const { result, verbs } = await statements(() => upsertQuickBooksPeriods(db().knex, i.companyId, [month('2025-11-01', '7'), month('2025-12-01', '10'), month('2026-01-01', '10.000'), month('2026-02-01', null)], NOW));
        expect(verbs).to.deep.equal(['with']);
        expect(result).to.deep.equal({ created: 1, updated: 1, unchanged: 1, conflicted: 1 });

        const unchanged = await read(db().knex, i.companyId, '2026-01-01');
        expect(new Date(unchanged.synced_at).toISOString()).to.equal(NOW.toISOString());
        expect(new Date(unchanged.updated_at).toISOString()).to.equal(earlier.toISOString());
        const updated = await read(db().knex, i.companyId, '2025-12-01');
        expect(updated).to.include({ revenue: '10.00', cash: '5.01', source: 'QUICKBOOKS', period_end: '2025-12-28' });
        expect(new Date(updated.updated_at).toISOString()).to.equal(NOW.toISOString());
        expect(await read(db().knex, i.companyId, '2025-11-01')).to.include({ revenue: '1.00', source: 'MANUAL', synced_at: null });
        const created = await read(db().knex, i.companyId, '2026-02-01');
        expect(created).to.include({ revenue: null, cash: '5.01', source: 'QUICKBOOKS' });
        expect(new Date(created.synced_at).toISOString()).to.equal(NOW.toISOString());

        // Again with the same months: nothing changes, all but MANUAL unchanged.
        expect(await upsertQuickBooksPeriods(db().knex, i.companyId, [month('2025-11-01', '7'), month('2025-12-01', '10'), month('2026-01-01', '10'), month('2026-02-01', null)], NOW)).to.deep.equal({ created: 0, updated: 0, unchanged: 3, conflicted: 1 });
      });

      it('does nothing for no months', async () => {
        const { result, verbs } = await statements(() => upsertQuickBooksPeriods(db().knex, 'none', [], NOW));
        expect(result).to.deep.equal({ created: 0, updated: 0, unchanged: 0, conflicted: 0 });
        expect(verbs).to.deep.equal([]);
      });
    });
  });
});
