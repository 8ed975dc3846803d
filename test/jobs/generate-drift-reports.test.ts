/**
 * generate-drift-reports end to end, in-process, on PostgreSQL and PGlite. The
 * run's clock is NOW (2026-03-15), so the default period is February 2026.
 */
import { expect } from 'chai';
import job from '../../jobs/generate-drift-reports.ts';
import { insertDriftReport } from '../../lib/sql/drift.ts';
import { shardOf } from '../../lib/runtime/shard.ts';
import { eachBackend } from '../support/db.ts';
import { aCompany, aFinancialPeriod, aMember, anAssessment, anOwnedCompany, aTask, aUser, preferences } from '../support/factories.ts';
import { runCli, runInProcess } from '../support/run.ts';
import { aSignal, aValuation, emailLog, ledger, outboxDirs, outboxHtml, reportOf, scores, storedReports } from '../drift/helpers.ts';

const utc = (y: number, m: number, d: number, h = 0) => new Date(Date.UTC(y, m - 1, d, h));
const FEB_START = utc(2026, 2, 1);
const MAR_START = utc(2026, 3, 1);

describe('generate-drift-reports', function () {
  this.timeout(60_000);

  eachBackend((db) => {
    let out: ReturnType<typeof outboxDirs>;
    beforeEach(async () => {
      await db().truncate();
      out = outboxDirs();
    });
    afterEach(() => out.cleanup());

    const run = (options: Record<string, unknown> = {}, env: Record<string, string> = {}) =>
      runInProcess(job, options, { database: db().database, env: { EMAIL_OUTBOX_DIR: out.dir, ...env } });
    const knex = () => db().knex;

    it('generates, stores and emails the report of last month, with its ledger entry', async () => {
      const { company, user } = await anOwnedCompany(knex(), { companyOver: { name: 'Harbor Dental LLC' } });
      await knex()('assessments').where({ company_id: company.id }).update({ completed_at: utc(2026, 1, 20), bri_score: '58.25', category_scores: scores(60, 55, 70, 40, 65, 50) });
      await anAssessment(knex(), company.id, { completed_at: utc(2026, 2, 18), bri_score: '61.75', category_scores: scores(66, 55, 68, 44, 65, 49) });
      await aValuation(knex(), company.id, '1200000.00', utc(2026, 1, 5));
      await aValuation(knex(), company.id, '1260000.00', utc(2026, 2, 5));

      const { exitCode, summary } = await run();
      expect(exitCode).to.equal(0);
      expect(summary).to.include({
        success: true, job: 'generate-drift-reports', dryRun: false, period: '2026-02',
        periodStart: '2026-02-01T00:00:00.000Z', periodEnd: '2026-03-01T00:00:00.000Z',
        totalCompanies: 1, generated: 1, skipped: 0, errors: 0, emailsSent: 1, emailsFailed: 0, emailsSuppressed: 0,
      });
      expect(summary.errorDetails).to.deep.equal([]);
      expect(summary.durationMs).to.be.a('number');

      const r = await reportOf(knex(), company.id);
      expect([r.bri_score_start, r.bri_score_end, r.bri_delta, r.direction]).to.deep.equal(['58.25', '61.75', '3.50', 'IMPROVING']);
      expect(r.period_start.toISOString()).to.equal('2026-02-01T00:00:00.000Z');
      expect(r.period_end.toISOString()).to.equal('2026-03-01T00:00:00.000Z');
      expect(r.report.version).to.equal(1);
      expect(r.report.valuation.change).to.deep.equal({ amount: '60000.00', currency: 'USD' });
      expect(r.report.valuation.changePercent).to.equal('5.00');
      expect(r.report.topMovers.map((m) => m.key)).to.deep.equal(['FINANCIAL', 'MARKET', 'OPERATIONAL']);
      expect(r.emailed_at?.toISOString()).to.equal('2026-03-15T08:00:00.000Z');

      const entries = await ledger(knex());
      expect(entries).to.have.length(1);
      expect(entries[0]!.details).to.include({ driftReportId: r.id, period: '2026-02', direction: 'IMPROVING', briDelta: '3.50' });

      expect(await emailLog(knex())).to.deep.equal([{ user_id: user.id, idempotency_key: `drift-report:${company.id}:2026-02:${user.id}`, status: 'SENT', error: null }]);
      expect(outboxHtml(out.dir)).to.have.length(1);
    });

    it('counts an assessment at exactly periodStart for the end, not the start, and leaves one at periodEnd outside', async () => {
      const { company } = await anOwnedCompany(knex());
      await knex()('assessments').where({ company_id: company.id }).update({ completed_at: utc(2026, 1, 10), bri_score: '50.00' });
      await anAssessment(knex(), company.id, { completed_at: FEB_START, bri_score: '55.00' });
      await anAssessment(knex(), company.id, { completed_at: MAR_START, bri_score: '90.00' });
      await aTask(knex(), company.id, { status: 'COMPLETED', completed_at: FEB_START });
      await aTask(knex(), company.id, { status: 'COMPLETED', completed_at: MAR_START });
      await aSignal(knex(), company.id, { severity: 'HIGH', created_at: FEB_START });
      await aSignal(knex(), company.id, { severity: 'HIGH', created_at: MAR_START, resolved_at: MAR_START });
      await aSignal(knex(), company.id, { severity: 'LOW', created_at: utc(2026, 1, 3), resolved_at: utc(2026, 2, 28, 23) });

      await run();
      const r = await reportOf(knex(), company.id);
      expect(r.report.bri).to.include({ start: '50.00', end: '55.00', delta: '5.00', direction: 'IMPROVING', assessmentsInPeriod: 1 });
      expect(r.report.tasks.completed).to.equal(1);
      expect(r.report.signals).to.deep.equal({ opened: { CRITICAL: 0, HIGH: 1, MEDIUM: 0, LOW: 0, total: 1 }, resolved: 1 });
    });

    it('counts pending and overdue tasks by creation and due dates against periodEnd', async () => {
      const { company } = await anOwnedCompany(knex());
      await aTask(knex(), company.id, { status: 'PENDING', created_at: utc(2026, 1, 1), due_at: utc(2026, 2, 28, 23) }); // pending, overdue
      await aTask(knex(), company.id, { status: 'IN_PROGRESS', created_at: utc(2026, 2, 10), due_at: MAR_START }); // pending, due at periodEnd: not overdue
      await aTask(knex(), company.id, { status: 'PENDING', created_at: utc(2026, 2, 10), due_at: null }); // pending
      await aTask(knex(), company.id, { status: 'PENDING', created_at: MAR_START, due_at: utc(2026, 2, 1) }); // created after the period
      await aTask(knex(), company.id, { status: 'DISMISSED', created_at: utc(2026, 1, 1), due_at: utc(2026, 1, 2) });
      await run();
      expect((await reportOf(knex(), company.id)).report.tasks).to.deep.equal({ completed: 0, pending: 3, overdue: 1 });
    });

    it('reports a first-ever assessment in the period as IMPROVING with no start', async () => {
      const { company } = await anOwnedCompany(knex());
      await knex()('assessments').where({ company_id: company.id }).update({ completed_at: utc(2026, 2, 12), bri_score: '42.00' });
      await run();
      const r = await reportOf(knex(), company.id);
      expect([r.bri_score_start, r.bri_score_end, r.bri_delta, r.direction]).to.deep.equal([null, '42.00', null, 'IMPROVING']);
      expect(r.report.bri.firstAssessment).to.equal(true);
      expect(r.report.narrative).to.include('completed its first Buyer Readiness Index (BRI) assessment in February 2026, scoring 42 out of 100');
    });

    it('reports an only-financials company as NO_DATA with its latest month before periodEnd and the month before it', async () => {
      const company = await aCompany(knex());
      const owner = await aUser(knex());
      await aMember(knex(), company.id, owner.id);
      await aFinancialPeriod(knex(), company.id, '2026-01-01', { revenue: '100000.00', ebitda: '20000.00' });
      await aFinancialPeriod(knex(), company.id, '2026-02-01', { revenue: '110000.10', ebitda: '19000.20' });
      await aFinancialPeriod(knex(), company.id, '2026-03-01', { revenue: '999999.00' }); // ends after periodEnd
      const { summary } = await run();
      expect(summary).to.include({ totalCompanies: 1, generated: 1, errors: 0, emailsSent: 1 });
      const r = await reportOf(knex(), company.id);
      expect(r.direction).to.equal('NO_DATA');
      expect(r.report.financials).to.deep.equal({
        latest: { month: '2026-02', revenue: '110000.10', ebitda: '19000.20' },
        previous: { month: '2026-01', revenue: '100000.00', ebitda: '20000.00' },
        revenueChange: '10000.10', revenueChangePercent: '10.00', ebitdaChange: '-999.80', ebitdaChangePercent: '-5.00',
      });
    });

    it('leaves financials out, without an error, for a company that has none', async () => {
      const { company } = await anOwnedCompany(knex());
      const { summary } = await run();
      expect(summary).to.include({ generated: 1, errors: 0 });
      expect((await reportOf(knex(), company.id)).report.financials).to.equal(null);
    });

    it('reports NO_DATA for a company whose only assessment came after the period', async () => {
      const { company } = await anOwnedCompany(knex());
      await knex()('assessments').where({ company_id: company.id }).update({ completed_at: utc(2026, 3, 5) });
      const { summary } = await run();
      expect(summary).to.include({ totalCompanies: 1, generated: 1 });
      const r = await reportOf(knex(), company.id);
      expect([r.bri_score_start, r.bri_score_end, r.direction]).to.deep.equal([null, null, 'NO_DATA']);
      expect(r.report.narrative).to.match(/had no completed Buyer Readiness Index \(BRI\) assessment by the end of February 2026/);
    });

    it('skips deleted companies and companies with neither assessments nor financials', async () => {
      await anOwnedCompany(knex(), { companyOver: { deleted_at: utc(2026, 2, 1) } });
      const idle = await aCompany(knex());
      const owner = await aUser(knex());
      await aMember(knex(), idle.id, owner.id);
      await aTask(knex(), idle.id);
      const { company } = await anOwnedCompany(knex());
      const { summary } = await run();
      expect(summary).to.include({ totalCompanies: 1, generated: 1, skipped: 0, emailsSent: 1 });
      expect((await storedReports(knex())).map((r) => r.company_id)).to.deep.equal([company.id]);
    });

    it('skips a company that already has a report for the period', async () => {
      const { company } = await anOwnedCompany(knex());
      await knex()('drift_reports').insert({ company_id: company.id, period_start: FEB_START, period_end: MAR_START, direction: 'STABLE', report: JSON.stringify({ version: 1 }), emailed_at: MAR_START });
      const { summary } = await run();
      expect(summary).to.include({ totalCompanies: 1, generated: 0, skipped: 1, emailsSent: 0 });
      expect(await ledger(knex())).to.have.length(0);
      expect(await emailLog(knex())).to.have.length(0);
    });

    it('records the email of an owner who opted out of drift reports as SUPPRESSED, and sends none', async () => {
      const { company, user } = await anOwnedCompany(knex());
      await preferences(knex(), user.id, { drift_reports: false });
      const { summary } = await run();
      expect(summary).to.include({ generated: 1, emailsSent: 0, emailsSuppressed: 1, emailsFailed: 0 });
      expect((await emailLog(knex())).map((e) => e.status)).to.deep.equal(['SUPPRESSED']);
      expect((await reportOf(knex(), company.id)).emailed_at).to.be.instanceOf(Date);
      expect(outboxHtml(out.dir)).to.have.length(0);
    });

    it('suppresses the report for an owner unsubscribed from everything, even with drift_reports on', async () => {
      const { company, user } = await anOwnedCompany(knex());
      await preferences(knex(), user.id, { drift_reports: true, unsubscribed_all: true });
      const { summary } = await run();
      expect(summary).to.include({ emailsSent: 0, emailsSuppressed: 1 });
      // The key JOBS.md gives: drift-report:{companyId}:{YYYY-MM}:{userId}, for February's report.
      expect(await emailLog(knex())).to.deep.equal([{ user_id: user.id, idempotency_key: `drift-report:${company.id}:2026-02:${user.id}`, status: 'SUPPRESSED', error: 'suppressed: preferences' }]);
    });

    it('emails every owner but no MEMBER, ADVISOR or deleted owner', async () => {
      const { company, user } = await anOwnedCompany(knex());
      const second = await aUser(knex());
      const member = await aUser(knex());
      const advisor = await aUser(knex());
      const gone = await aUser(knex(), { deleted_at: utc(2026, 1, 1) });
      await aMember(knex(), company.id, second.id, 'OWNER');
      await aMember(knex(), company.id, member.id, 'MEMBER');
      await aMember(knex(), company.id, advisor.id, 'ADVISOR');
      await aMember(knex(), company.id, gone.id, 'OWNER');
      const { summary } = await run();
      expect(summary).to.include({ emailsSent: 2 });
      expect((await emailLog(knex())).map((e) => e.user_id).sort()).to.deep.equal([user.id, second.id].sort());
    });

    it('keeps a report whose email failed, and the next run sends only the emails still owed', async () => {
      const { company, user } = await anOwnedCompany(knex());
      const optedOut = await aUser(knex());
      await aMember(knex(), company.id, optedOut.id, 'OWNER');
      await preferences(knex(), optedOut.id, { drift_reports: false });

      const first = await run({}, { EMAIL_OUTBOX_DIR: out.broken });
      expect(first.exitCode).to.equal(1);
      expect(first.summary).to.include({ success: false, generated: 1, emailsSent: 0, emailsSuppressed: 1, emailsFailed: 1, reportsAwaitingEmail: 1 });
      expect(first.summary.errorDetails).to.deep.equal([{ kind: 'email', id: `drift-report:${company.id}:2026-02:${user.id}`, error: (first.summary.errorDetails as Array<{ error: string }>)[0]!.error }]);
      expect((first.summary.errorDetails as Array<{ error: string }>)[0]!.error).to.match(/cannot write the outbox/);
      const stored = await reportOf(knex(), company.id);
      expect(stored.emailed_at).to.equal(null);
      expect((await emailLog(knex())).map((e) => [e.user_id, e.status])).to.have.deep.members([[user.id, 'FAILED'], [optedOut.id, 'SUPPRESSED']]);

      const second = await run();
      expect(second.exitCode).to.equal(0);
      expect(second.summary).to.include({ generated: 0, skipped: 1, emailsSent: 1, emailsSuppressed: 0, emailsFailed: 0, reportsAwaitingEmail: 0 });
      const after = await reportOf(knex(), company.id);
      expect(after.id).to.equal(stored.id);
      expect(after.emailed_at).to.be.instanceOf(Date);
      expect((await emailLog(knex())).map((e) => [e.user_id, e.status])).to.have.deep.members([[user.id, 'SENT'], [optedOut.id, 'SUPPRESSED']]);
      expect(await ledger(knex())).to.have.length(1);
      expect(outboxHtml(out.dir)).to.have.length(1);

      const third = await run();
      expect(third.summary).to.include({ generated: 0, emailsSent: 0, emailsSuppressed: 0 });
    });

    it('sets emailed_at for a report whose only owed email has an unknown outcome, and never resends it', async () => {
      const { company, user } = await anOwnedCompany(knex());
      await run({}, { EMAIL_OUTBOX_DIR: out.broken });
      await knex()('email_log').update({ status: 'FAILED', error: 'outcome unknown: the run stopped while sending' });
      const { summary } = await run();
      expect(summary).to.include({ emailsSent: 0, emailsFailed: 0 });
      expect((await reportOf(knex(), company.id)).emailed_at).to.be.instanceOf(Date);
      expect((await emailLog(knex())).map((e) => [e.user_id, e.status])).to.deep.equal([[user.id, 'FAILED']]);
    });

    it('backfills an older month with --period, beside the reports of other months', async () => {
      const { company } = await anOwnedCompany(knex());
      await knex()('assessments').where({ company_id: company.id }).update({ completed_at: utc(2025, 10, 20), bri_score: '40.00' });
      await anAssessment(knex(), company.id, { completed_at: utc(2025, 11, 30, 23), bri_score: '38.50' });
      await run();
      const { summary } = await run({ period: '2025-11' });
      expect(summary).to.include({ period: '2025-11', periodStart: '2025-11-01T00:00:00.000Z', periodEnd: '2025-12-01T00:00:00.000Z', generated: 1, skipped: 0 });
      const rows = await storedReports(knex());
      expect(rows.map((r) => r.report.period.month)).to.deep.equal(['2025-11', '2026-02']);
      expect([rows[0]!.bri_score_start, rows[0]!.bri_score_end, rows[0]!.bri_delta, rows[0]!.direction]).to.deep.equal(['40.00', '38.50', '-1.50', 'DECLINING']);
      expect((await emailLog(knex())).map((e) => e.idempotency_key.split(':')[2])).to.have.members(['2025-11', '2026-02']);
    });

    it('refuses a --period that is not a finished month, before any work (exit 2)', async () => {
      await anOwnedCompany(knex());
      const { exitCode } = await run({ period: '2026-03' });
      expect(exitCode).to.equal(2);
      expect(await storedReports(knex())).to.have.length(0);
      expect(await knex()('exitosx_cron.runs').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    });

    it('reports December from a run on the first of January, across the year', async () => {
      const { company } = await anOwnedCompany(knex());
      await knex()('assessments').where({ company_id: company.id }).update({ completed_at: utc(2025, 11, 30), bri_score: '70.00' });
      await anAssessment(knex(), company.id, { completed_at: utc(2025, 12, 31, 23), bri_score: '70.50' });
      await anAssessment(knex(), company.id, { completed_at: utc(2026, 1, 1), bri_score: '10.00' });
      await aFinancialPeriod(knex(), company.id, '2025-11-01', { revenue: '50.00' });
      await aFinancialPeriod(knex(), company.id, '2025-12-01', { revenue: '75.00' });
      await aFinancialPeriod(knex(), company.id, '2026-01-01', { revenue: '1.00' });
      const { summary } = await run({ now: utc(2026, 1, 1, 6) });
      expect(summary).to.include({ period: '2025-12', periodStart: '2025-12-01T00:00:00.000Z', periodEnd: '2026-01-01T00:00:00.000Z', generated: 1 });
      const r = await reportOf(knex(), company.id);
      expect(r.report.bri).to.include({ start: '70.00', end: '70.50', delta: '0.50', direction: 'STABLE' });
      expect(r.report.financials?.latest.month).to.equal('2025-12');
      expect(r.report.financials?.previous?.month).to.equal('2025-11');
      expect(r.report.financials?.revenueChangePercent).to.equal('50.00');
      expect((await emailLog(knex()))[0]!.idempotency_key).to.match(/:2025-12:/);
    });

    it('creates nothing and sends nothing when run again with the same clock', async () => {
      for (let i = 0; i < 3; i++) await anOwnedCompany(knex());
      const first = await run();
      expect(first.summary).to.include({ generated: 3, emailsSent: 3 });
      const before = { reports: await storedReports(knex()), ledger: await ledger(knex()), emails: await emailLog(knex()) };
      const second = await run();
      expect(second.exitCode).to.equal(0);
      expect(second.summary).to.include({ totalCompanies: 3, generated: 0, skipped: 3, emailsSent: 0, emailsSuppressed: 0, emailsFailed: 0 });
      expect(await storedReports(knex())).to.deep.equal(before.reports);
      expect(await ledger(knex())).to.deep.equal(before.ledger);
      expect(await emailLog(knex())).to.deep.equal(before.emails);
    });

    it('writes nothing and sends nothing in a dry run, but counts what it would do', async () => {
      for (let i = 0; i < 2; i++) await anOwnedCompany(knex());
      const { exitCode, summary } = await run({ dryRun: true });
      expect(exitCode).to.equal(0);
      expect(summary).to.include({ dryRun: true, totalCompanies: 2, generated: 2, emailsSent: 2 });
      expect(await storedReports(knex())).to.have.length(0);
      expect(await ledger(knex())).to.have.length(0);
      expect(await emailLog(knex())).to.have.length(0);
      expect(outboxHtml(out.dir)).to.have.length(0);
    });

    it('handles only --company when given', async () => {
      const { company } = await anOwnedCompany(knex());
      await anOwnedCompany(knex());
      const { summary } = await run({ companyId: company.id });
      expect(summary).to.include({ totalCompanies: 1, generated: 1 });
      expect((await storedReports(knex())).map((r) => r.company_id)).to.deep.equal([company.id]);
    });

    it('splits companies between shards: two shards are disjoint and complete', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push((await anOwnedCompany(knex())).company.id);
      const zero = await run({}, { SHARD_COUNT: '2', SHARD_INDEX: '0' });
      const afterZero = (await storedReports(knex())).map((r) => r.company_id);
      const one = await run({}, { SHARD_COUNT: '2', SHARD_INDEX: '1' });
      const all = (await storedReports(knex())).map((r) => r.company_id);
      const afterOne = all.filter((id) => !afterZero.includes(id));
      expect(afterZero.every((id) => shardOf(id, 2) === 0)).to.equal(true);
      expect(afterOne.every((id) => shardOf(id, 2) === 1)).to.equal(true);
      expect(afterZero.length + afterOne.length).to.equal(ids.length);
      expect([...all].sort()).to.deep.equal([...ids].sort());
      expect(Number(zero.summary.totalCompanies) + Number(one.summary.totalCompanies)).to.equal(12);
      expect(Number(zero.summary.generated)).to.equal(afterZero.length);
      expect(afterZero.length).to.be.greaterThan(0);
      expect(afterOne.length).to.be.greaterThan(0);
    });

    it('runs from the command line with the summary as the last line of stdout, and refuses an unfinished --period with exit 2', async function () {
      if (!db().url) this.skip(); // the CLI needs a server the child process can reach
      await anOwnedCompany(knex());
      const env = { DATABASE_URL: db().url, EMAIL_OUTBOX_DIR: out.dir };
      const bad = await runCli(['generate-drift-reports', '--now', '2026-03-15T08:00:00Z', '--period', '2026-03'], { env });
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.match(/^exitosx-cron: --period 2026-03 has not ended yet at 2026-03-15T08:00:00.000Z/m);
      expect(bad.stdout).to.equal(''); // nothing was done: no summary, no run recorded
      expect(bad.stderr.trim().split('\n')).to.have.length(1);
      const good = await runCli(['generate-drift-reports', '--now', '2026-03-15T08:00:00Z'], { env });
      expect(good.code).to.equal(0);
      expect(good.stdout.trim().split('\n')).to.have.length(1);
      expect(good.summary).to.include({ success: true, job: 'generate-drift-reports', generated: 1, emailsSent: 1 });
    });

    it('isolates an item that fails: logged with its id, counted and listed, while the others go on', async () => {
      const broken = await anOwnedCompany(knex());
      // A stored report (from some older release) that cannot be rendered, still owing its email.
      const [{ id: brokenId }] = await knex()('drift_reports')
        .insert({ company_id: broken.company.id, period_start: utc(2026, 1, 1), period_end: FEB_START, direction: 'NO_DATA', report: JSON.stringify({ version: 1 }) })
        .returning('id');
      const { company } = await anOwnedCompany(knex());
      const { exitCode, summary, logs } = await run();
      expect(exitCode).to.equal(1);
      expect(summary).to.include({ success: false, errors: 1, totalCompanies: 2, generated: 2, emailsSent: 2 });
      expect((summary.errorDetails as Array<{ kind: string; id: string }>).map((e) => [e.kind, e.id])).to.deep.equal([['report', brokenId]]);
      expect(logs.some((l) => l.message === 'item:failed' && l.id === brokenId)).to.equal(true);
      expect((await reportOf(knex(), company.id)).emailed_at).to.be.instanceOf(Date);
    });

    it('isolates a company whose report cannot be stored: its page is done again company by company', async () => {
      const broken = await anOwnedCompany(knex());
      const fine = await anOwnedCompany(knex());
      await knex().raw(`create function refuse_report() returns trigger language plpgsql as $$
        begin if new.company_id = '${broken.company.id}' then raise exception 'simulated failure for %', new.company_id; end if; return new; end $$`);
      await knex().raw('create trigger refuse_report before insert on drift_reports for each row execute function refuse_report()');
      try {
        const { exitCode, summary, logs } = await run();
        expect(exitCode).to.equal(1);
        expect(summary).to.include({ success: false, errors: 1, totalCompanies: 2, generated: 1, emailsSent: 1 });
        expect((summary.errorDetails as Array<{ kind: string; id: string }>).map((e) => [e.kind, e.id])).to.deep.equal([['company', broken.company.id]]);
        expect(logs.some((l) => l.message === 'batch:failed')).to.equal(true);
        expect((await storedReports(knex())).map((r) => r.company_id)).to.deep.equal([fine.company.id]);
        expect(await ledger(knex())).to.have.length(1);
      } finally {
        await knex().raw('drop trigger refuse_report on drift_reports');
        await knex().raw('drop function refuse_report()');
      }
    });

    it('writes a report once when two runs race for it (on conflict do nothing)', async () => {
      const { company } = await anOwnedCompany(knex());
      const report = { version: 1, company: { id: company.id, name: 'x' }, period: { month: '2026-02', start: FEB_START.toISOString(), end: MAR_START.toISOString() }, bri: { start: null, end: null, delta: null, direction: 'NO_DATA' } } as never;
      expect(await insertDriftReport(knex(), report, MAR_START)).to.be.a('string');
      expect(await insertDriftReport(knex(), report, MAR_START)).to.equal(null);
      expect(await storedReports(knex())).to.have.length(1);
      expect(await ledger(knex())).to.have.length(1);
    });
  });
});
