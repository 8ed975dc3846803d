/**
 * The run lifecycle, through the real runtime with a small real job defined here
 * ("stamp each company with a ledger entry"): isolation, bounded errorDetails,
 * dry run, SIGTERM, locking, run history and sharding.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import type { JobDefinition } from '../../lib/runtime/job.ts';
import { shardCondition, shardOf } from '../../lib/runtime/shard.ts';
import { insertLedgerEntries } from '../../lib/sql/signals.ts';
import { eachBackend } from '../support/db.ts';
import { aCompany } from '../support/factories.ts';
import { NOW, runInProcess } from '../support/run.ts';

/** Runs `fn` with what this process writes to stderr captured (and not shown); restores stderr whatever happens. */
async function withStderr<T>(fn: () => Promise<T>): Promise<{ result: T; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')), true)) as typeof process.stderr.write;
  try {
    return { result: await fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

interface StampOptions {
  failIds?: Set<string>;
  delayMs?: number;
  onItem?: (id: string) => void;
}

/** A real job: for each company without a stamp, insert one ledger entry in a transaction. */
function stampJob(o: StampOptions = {}): JobDefinition {
  return {
    name: 'detect-inactivity',
    schedule: '* * * * *',
    description: 'test job',
    requiredColumns: { companies: ['id'] },
    async run(ctx) {
      const pages = async function* (db: Knex) {
        let after = '';
        for (;;) {
          const ids: string[] = await db('companies').where('id', '>', after).andWhere(shardCondition(db, 'id', ctx.shard)).orderBy('id').limit(7).pluck('id');
          if (!ids.length) return;
          yield ids;
          after = ids[ids.length - 1]!;
        }
      };
      await ctx.forEach({
        phase: 'companies',
        kind: 'company',
        source: pages(ctx.db),
        id: (id: string) => id,
        concurrency: 3,
        handle: async (id: string) => {
          o.onItem?.(id);
          if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
          if (o.failIds?.has(id)) throw new Error(`cannot stamp ${id}: token=abc123secret`);
          return ctx.db.transaction(async (trx) => {
            const done = await trx('value_ledger_entries').where({ company_id: id, summary: 'stamp' }).first();
            if (done) return 'skipped';
            await insertLedgerEntries(trx, [{ companyId: id, signalId: null, entryType: 'FINANCIALS_SYNCED', summary: 'stamp', details: {} }], ctx.now);
            return 'stamped';
          });
        },
      });
      return { stamped: ctx.tally.outcomes.stamped ?? 0, skipped: ctx.tally.outcomes.skipped ?? 0 };
    },
  };
}

describe('run lifecycle', () => {
  eachBackend((db) => {
    const companies = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await aCompany(db().knex, { id: `c${String(i).padStart(4, '0')}` })).id);
      return ids;
    };
    const stamps = async () => (await db().knex('value_ledger_entries').where({ summary: 'stamp' }).pluck('company_id')).sort();

    beforeEach(() => db().truncate());

    it('isolates a failing item: the others are done, the failure is counted and listed with its id, exit 1', async () => {
      const ids = await companies(20);
      const r = await runInProcess(stampJob({ failIds: new Set([ids[3]!]) }), {}, { database: db().database });
      expect(r.exitCode).to.equal(1);
      expect(r.summary).to.include({ success: false, stamped: 19, errors: 1 });
      expect(r.summary.errorDetails).to.deep.equal([{ kind: 'company', id: ids[3], error: `cannot stamp ${ids[3]}: token=[REDACTED]` }]);
      expect(await stamps()).to.have.length(19);
      const failed = r.logs.find((l) => l.message === 'item:failed');
      expect(failed).to.include({ id: ids[3], job: 'detect-inactivity', runId: r.summary.runId });
    });

    it('bounds errorDetails at 100 entries and says it truncated them', async () => {
      const ids = await companies(130);
      const r = await runInProcess(stampJob({ failIds: new Set(ids) }), {}, { database: db().database });
      expect(r.summary.errors).to.equal(130);
      expect(r.summary.errorDetails).to.have.length(100);
      expect(r.summary.errorDetailsTruncated).to.equal(true);
    });

    it('a dry run computes the same counts and writes nothing, not even run history', async () => {
      await companies(10);
      const r = await runInProcess(stampJob(), { dryRun: true }, { database: db().database });
      expect(r.exitCode).to.equal(0);
      expect(r.summary).to.include({ success: true, dryRun: true, stamped: 10 });
      expect(await stamps()).to.deep.equal([]);
      expect(await db().knex('exitosx_cron.runs').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    });

    it('a rerun with the same clock changes nothing', async () => {
      await companies(9);
      await runInProcess(stampJob(), {}, { database: db().database });
      const r = await runInProcess(stampJob(), {}, { database: db().database });
      expect(r.summary).to.include({ stamped: 0, skipped: 9 });
      expect(await stamps()).to.have.length(9);
    });

    it('on SIGTERM finishes the items in hand, exits 143, and a rerun does the rest without duplicates', async () => {
      const ids = await companies(40);
      const controller = new AbortController();
      let seen = 0;
      const r = await runInProcess(stampJob({ delayMs: 5, onItem: () => ++seen === 10 && controller.abort() }), {}, { database: db().database, signal: controller.signal });
      expect(r.exitCode).to.equal(143);
      expect(r.summary).to.include({ success: false, interrupted: true });
      const partial = await stamps();
      expect(partial.length).to.be.within(10, 13); // the 10th and those already in flight finish
      const again = await runInProcess(stampJob(), {}, { database: db().database });
      expect(again.exitCode).to.equal(0);
      expect(again.summary).to.include({ stamped: 40 - partial.length, skipped: partial.length });
      expect(await stamps()).to.deep.equal(ids);
      const statuses = await db().knex('exitosx_cron.runs').orderBy('started_at').pluck('status');
      expect(statuses).to.deep.equal(['interrupted', 'succeeded']);
    });

    it('records each run in the history with its summary and exit code', async () => {
      await companies(3);
      const r = await runInProcess(stampJob(), { now: NOW }, { database: db().database });
      const row = await db().knex('exitosx_cron.runs').where({ id: r.summary.runId }).first();
      expect(row).to.include({ job: 'detect-inactivity', status: 'succeeded', exit_code: 0, shard_index: 0, shard_count: 1 });
      expect(row.clock.toISOString()).to.equal(NOW.toISOString());
      expect(row.summary).to.include({ stamped: 3 });
    });

    it('marks runs left "running" by a killed process as crashed', async () => {
      await db().knex('exitosx_cron.runs').insert({ id: '00000000-0000-4000-8000-000000000001', job: 'detect-inactivity', shard_index: 0, shard_count: 1, status: 'running', clock: NOW });
      await runInProcess(stampJob(), {}, { database: db().database });
      const row = await db().knex('exitosx_cron.runs').where({ id: '00000000-0000-4000-8000-000000000001' }).first();
      expect(row.status).to.equal('crashed');
    });

    it('two shards together handle every item exactly once, and agree with the JavaScript hash', async () => {
      const ids = await companies(50);
      const seen: Record<number, string[]> = { 0: [], 1: [] };
      for (const index of [0, 1]) {
        await runInProcess(stampJob({ onItem: (id) => seen[index]!.push(id) }), {}, { database: db().database, env: { SHARD_COUNT: '2', SHARD_INDEX: String(index) } });
      }
      expect([...seen[0]!, ...seen[1]!].sort()).to.deep.equal(ids);
      expect(seen[0]!.length).to.be.within(10, 40);
      for (const index of [0, 1]) for (const id of seen[index]!) expect(shardOf(id, 2)).to.equal(index);
    });

    it('exits 2 listing the columns a job needs that the database lacks', async () => {
      const job = { ...stampJob(), requiredColumns: { companies: ['id', 'valuation_band'], users: ['shoe_size'] } };
      const { result, stderr } = await withStderr(() => runInProcess(job, {}, { database: db().database }));
      expect(result.exitCode).to.equal(2);
      // One line on stderr, naming every missing column (and only those) and the fix.
      expect(stderr.split('\n').filter((l) => l.startsWith('exitosx-cron:'))).to.deep.equal([
        'exitosx-cron: database is missing columns the job uses: companies.valuation_band, users.shoe_size (run exitosx-cron migrate, or check DATABASE_URL)',
      ]);
    });
  });

  describe('locking (PostgreSQL)', () => {
    eachBackend((db) => {
      it('a second run of the same job and shard exits 0 at once, saying the job is running', async function () {
        if (db().kind !== 'postgres') this.skip(); // PGlite is one process by its lock file
        await db().truncate();
        for (let i = 0; i < 20; i++) await aCompany(db().knex);
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let running!: () => void;
        const inside = new Promise<void>((r) => (running = r));
        const slow = { ...stampJob(), run: async () => (running(), await gate, {}) };
        // A run that holds the lock (it is inside its job) until released, then a contender.
        const holder = runInProcess(slow, {}, { database: db().database });
        await inside;
        const contender = await runInProcess(stampJob(), {}, { database: db().database });
        expect(contender.exitCode).to.equal(0);
        expect(contender.summary).to.include({ success: true, alreadyRunning: true });
        expect(contender.logs.some((l) => l.level === 'warn' && l.message === 'run:locked')).to.equal(true);
        release();
        expect((await holder).exitCode).to.equal(0);
        const other = await runInProcess(stampJob(), {}, { database: db().database, env: { SHARD_COUNT: '2', SHARD_INDEX: '1' } });
        expect(other.summary.alreadyRunning).to.equal(undefined);
      });
    });
  });
});
