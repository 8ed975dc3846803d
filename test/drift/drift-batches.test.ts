/**
 * The job's reads are set-based: companies come in keyset pages, and each page's
 * facts cost a fixed number of statements however many companies it holds.
 */
import { expect } from 'chai';
import { companyBatches, owedReportBatches, type CompanyItem } from '../../lib/sql/drift-batches.ts';
import { aSignal } from './helpers.ts';
import { periodOf } from '../../lib/drift/period.ts';
import { eachBackend } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';

const FEB = periodOf('2026-02');
const ONE_SHARD = { shard: { count: 1, index: 0 } };

describe('drift batches', () => {
  eachBackend((db) => {
    beforeEach(() => db().truncate());

    async function collect<T>(source: AsyncIterable<T[]>): Promise<T[][]> {
      const pages: T[][] = [];
      for await (const page of source) pages.push(page);
      return pages;
    }

    async function statements(fn: () => Promise<unknown>): Promise<number> {
      let n = 0;
      const count = () => n++;
      db().knex.on('query', count);
      try {
        await fn();
      } finally {
        db().knex.removeListener('query', count);
      }
      return n;
    }

    it('pages through every active company once, in id order', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await anOwnedCompany(db().knex)).company.id);
      const pages = await collect(companyBatches(db().knex, FEB, ONE_SHARD, 2));
      expect(pages.map((p) => p.length)).to.deep.equal([2, 2, 1]);
      expect(pages.flat().map((c) => c.company.id)).to.deep.equal([...ids].sort());
      expect(pages.flat().every((c) => c.facts !== null && c.recipients.length === 1)).to.equal(true);
    });

    it('reads a page of 3 companies and a page of 12 with the same number of statements', async () => {
      for (let i = 0; i < 3; i++) await anOwnedCompany(db().knex);
      const small = await statements(() => collect(companyBatches(db().knex, FEB, ONE_SHARD)));
      for (let i = 0; i < 9; i++) await anOwnedCompany(db().knex);
      const large = await statements(() => collect(companyBatches(db().knex, FEB, ONE_SHARD)));
      // one page, five facts (signals read once for up to PAGES_PER_SIGNAL_SCAN pages), one recipients
      expect(small).to.equal(7);
      expect(large).to.equal(small);
    });

    it('reads the signals of many pages with one statement (signals has no index on company_id), each page with its own figures', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await anOwnedCompany(db().knex)).company.id);
      const last = [...ids].sort()[4]!; // on the third page of two
      await aSignal(db().knex, last, { severity: 'HIGH', created_at: new Date('2026-02-10T00:00:00Z') });
      await aSignal(db().knex, last, { created_at: new Date('2026-01-10T00:00:00Z'), resolved_at: new Date('2026-02-12T00:00:00Z') });
      await aSignal(db().knex, last, { severity: 'LOW', created_at: new Date('2026-03-01T00:00:00Z') }); // after the period
      const signalReads: string[] = [];
      const onQuery = (q: { sql: string }) => /\bfrom signals\b/.test(q.sql) && signalReads.push(q.sql);
      db().knex.on('query', onQuery);
      let pages: Awaited<ReturnType<typeof collect<CompanyItem>>>;
      try {
        pages = await collect(companyBatches(db().knex, FEB, ONE_SHARD, 2));
      } finally {
        db().knex.removeListener('query', onQuery);
      }
      expect(pages.map((p) => p.length)).to.deep.equal([2, 2, 1]);
      expect(signalReads).to.have.length(1);
      const facts = Object.fromEntries(pages.flat().map((c) => [c.company.id, c.facts!.signals]));
      expect(facts[last]).to.deep.equal({ opened: { CRITICAL: 0, HIGH: 1, MEDIUM: 0, LOW: 0 }, resolved: 1 });
      for (const id of ids.filter((x) => x !== last)) expect(facts[id]).to.deep.equal({ opened: {}, resolved: 0 });
    });

    it('pages through reports still owing email, skipping deleted companies', async () => {
      const a = await anOwnedCompany(db().knex);
      const b = await anOwnedCompany(db().knex, { companyOver: { deleted_at: new Date('2026-02-01T00:00:00Z') } });
      for (const c of [a.company, b.company]) {
        await db().knex('drift_reports').insert({ company_id: c.id, period_start: FEB.start, period_end: FEB.end, direction: 'NO_DATA', report: JSON.stringify({ version: 1 }) });
      }
      const pages = await collect(owedReportBatches(db().knex, ONE_SHARD));
      expect(pages.flat().map((r) => [r.companyId, r.recipients.map((x) => x.userId)])).to.deep.equal([[a.company.id, [a.user.id]]]);
    });
  });
});
