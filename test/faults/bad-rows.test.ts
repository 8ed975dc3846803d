/**
 * Bad rows, each isolated: a null score is "no score", category scores that are not
 * an object (or lack categories, or hold garbage) are "unknown", a session in the
 * future means active now, an owner's unusable address fails that email only,
 * financial periods full of nulls are "unknown" figures, and an integration whose
 * company is deleted while it syncs writes nothing. The rest of each run is
 * unaffected. Real PostgreSQL; SendGrid and QuickBooks are the loopback servers.
 */
import { expect } from 'chai';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { type TestDb } from '../support/db.ts';
import { aFinancialPeriod, anAssessment, anOwnedCompany, aSession, daysBefore } from '../support/factories.ts';
import { NOW, runInProcess } from '../support/run.ts';
import { type SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { counts, DAY, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

describe('faults: bad rows (PostgreSQL)', function () {
  this.timeout(60_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));

  const errorIds = (summary: Record<string, unknown>) => (summary.errorDetails as Array<{ id: string }>).map((e) => e.id);

  it('generate-drift-reports: odd scores and financials give reports with unknowns; a bad address fails its email only', async () => {
    const good = [await anOwnedCompany(t.knex), await anOwnedCompany(t.knex), await anOwnedCompany(t.knex)];
    // COMPLETED but no score (only assessment): NO_DATA, not a crash.
    const nullScore = await anOwnedCompany(t.knex);
    await t.knex('assessments').where({ company_id: nullScore.company.id }).update({ bri_score: null });
    // category_scores a JSON string, an array, an empty object, garbage values.
    const cats: Record<string, unknown> = { string: JSON.stringify('FINANCIAL=60'), array: JSON.stringify([60, 61]), empty: JSON.stringify({}), garbage: JSON.stringify({ FINANCIAL: 'abc', MARKET: { x: 1 }, LEGAL_TAX: null, PERSONAL: true }) };
    const catCompanies: Record<string, string> = {};
    for (const [name, value] of Object.entries(cats)) {
      const c = await anOwnedCompany(t.knex);
      await t.knex('assessments').where({ company_id: c.company.id }).update({ category_scores: value });
      catCompanies[name] = c.company.id;
    }
    // Financial periods full of nulls.
    const nullFin = await anOwnedCompany(t.knex);
    await aFinancialPeriod(t.knex, nullFin.company.id, '2026-01-01', { revenue: null, ebitda: null });
    await aFinancialPeriod(t.knex, nullFin.company.id, '2025-12-01', { revenue: null, ebitda: '10.00' });
    // Owners whose address SendGrid refuses (email is NOT NULL: an empty string and a non-address).
    const empty = await anOwnedCompany(t.knex, { userOver: { email: '' } });
    const invalid = await anOwnedCompany(t.knex, { userOver: { email: 'not-an-email' } });

    const r = await runInProcess(driftJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    const total = 3 + 1 + 4 + 1 + 2;
    expect(r.summary).to.include({ totalCompanies: total, generated: total, emailsSent: total - 2, emailsFailed: 2 });
    // The two refused emails are the run's only errors, each listed with its key.
    expect(r.exitCode).to.equal(1);
    expect(errorIds(r.summary).sort()).to.deep.equal([`drift-report:${empty.company.id}:2026-02:${empty.user.id}`, `drift-report:${invalid.company.id}:2026-02:${invalid.user.id}`].sort());
    const c = await counts(t.knex);
    expect(c.reports).to.equal(total);
    expect(c.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: total });
    expect(c.emails).to.deep.equal({ SENT: total - 2, FAILED: 2 });
    expect(maxPerKey(sendgrid)).to.equal(1);

    const report = async (companyId: string) => (await t.knex('drift_reports').where({ company_id: companyId }).first()).report;
    expect((await report(nullScore.company.id)).bri).to.include({ end: null, direction: 'NO_DATA' });
    for (const id of Object.values(catCompanies)) {
      const rep = await report(id);
      expect(rep.bri.end).to.equal('60.00');
      expect(rep.categories.every((m: { end: unknown }) => m.end === null)).to.equal(true);
    }
    const fin = (await report(nullFin.company.id)).financials;
    expect(fin.latest).to.deep.include({ month: '2026-01', revenue: null, ebitda: null });
    expect(fin.revenueChange).to.equal(null);
    for (const g of good) expect((await report(g.company.id)).bri.end).to.equal('60.00');

    // A rerun sends nothing again; the refused emails stay owed (FAILED, exit 1) and nothing else changes.
    const again = await runInProcess(driftJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(again.summary).to.include({ generated: 0, emailsSent: 0, emailsFailed: 2 });
    expect((await counts(t.knex)).reports).to.equal(total);
    expect(maxPerKey(sendgrid)).to.equal(1);
  });

  it('detect-inactivity: a future session is activity now, a null score is no score, a bad address fails its nudge only', async () => {
    const good = [await anOwnedCompany(t.knex, { daysInactive: 30 }), await anOwnedCompany(t.knex, { daysInactive: 30 })];
    // A session in the future (clock skew): active now. One had an open signal: it is resolved.
    const future = await anOwnedCompany(t.knex, { daysInactive: 30 });
    const futureNew = await anOwnedCompany(t.knex);
    await aSession(t.knex, futureNew.user.id, new Date(NOW.getTime() + 3 * DAY));
    // The latest COMPLETED assessment has no score: the nudge shows the last known score.
    const nullScore = await anOwnedCompany(t.knex, { daysInactive: 30 });
    await anAssessment(t.knex, nullScore.company.id, { bri_score: '55.50', completed_at: daysBefore(60), created_at: daysBefore(61) });
    await t.knex('assessments').where({ company_id: nullScore.company.id }).where('completed_at', '>', daysBefore(40)).update({ bri_score: null });
    // Owners with unusable addresses.
    const invalid = await anOwnedCompany(t.knex, { daysInactive: 30, userOver: { email: 'not-an-email' } });
    const empty = await anOwnedCompany(t.knex, { daysInactive: 30, userOver: { email: '' } });

    const first = await runInProcess(inactivityJob, { now: new Date(NOW.getTime() - 2 * DAY) }, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(first.exitCode, JSON.stringify(first.summary)).to.equal(0);
    // The future user comes back (a session dated after the clock).
    await aSession(t.knex, future.user.id, new Date(NOW.getTime() + 3 * DAY));
    sendgrid.requests.length = 0;

    const r = await runInProcess(inactivityJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(r.exitCode, JSON.stringify(r.summary)).to.equal(0);
    expect(r.summary).to.include({ signalsResolved: 1, signalsCreated: 0 });
    const c = await counts(t.knex);
    // Signals: two good, null-score, two bad addresses (the future user's one resolved).
    expect(c.signals).to.equal(6);
    expect(c.openSignals).to.equal(5);
    expect(c.ledger).to.deep.equal({ SIGNAL_CREATED: 6, SIGNAL_RESOLVED: 1 });
    expect(await t.knex('signals').where({ user_id: futureNew.user.id }).count({ n: '*' }).first()).to.deep.equal({ n: 0 });
    // Nudges: the bad addresses FAILED (a known error, owed), the others SENT once.
    const byUser = async (userId: string) => (await t.knex('email_log').where({ user_id: userId }).first())?.status;
    expect(await byUser(invalid.user.id)).to.equal('FAILED');
    expect(await byUser(empty.user.id)).to.equal('FAILED');
    for (const g of [...good, nullScore, future]) expect(await byUser(g.user.id)).to.equal('SENT');
    expect(c.emails).to.deep.equal({ SENT: 4, FAILED: 2 });
    expect(first.summary).to.include({ emailsSent: 4, emailsFailed: 2 });
    // The null score is "no score": the nudge shows the last known one.
    const nudge = await t.knex('email_log').where({ user_id: nullScore.user.id }).first();
    expect(nudge.status).to.equal('SENT');
    expect(r.logs.filter((l) => l.message === 'item:failed')).to.have.length(0);
  });

  it('detect-inactivity: the nudge shows the last known score, not a later null one', async () => {
    const c = await anOwnedCompany(t.knex, { daysInactive: 30 });
    await anAssessment(t.knex, c.company.id, { bri_score: '55.50', completed_at: daysBefore(60), created_at: daysBefore(61) });
    await t.knex('assessments').where({ company_id: c.company.id }).where('completed_at', '>', daysBefore(40)).update({ bri_score: null });
    const r = await runInProcess(inactivityJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(r.exitCode).to.equal(0);
    const [mail] = sendgrid.accepted();
    const text = JSON.stringify(mail!.body);
    expect(text).to.include('55.5 / 100');
    expect(text).not.to.include('not assessed yet');
  });

  describe('sync-quickbooks', () => {
    let server: LoopbackQuickBooks;
    beforeEach(async () => {
      server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    });
    afterEach(() => server.close());

    it('a QuickBooks period full of nulls is overwritten with the figures; a MANUAL one is left alone', async () => {
      const i = await anIntegration(t.knex, server);
      await aFinancialPeriod(t.knex, i.companyId, '2026-01-01', { revenue: null, ebitda: null, source: 'QUICKBOOKS' });
      await aFinancialPeriod(t.knex, i.companyId, '2025-12-01', { revenue: null, ebitda: null, source: 'MANUAL' });
      const r = await runInProcess(syncJob, {}, { database: t.database, env: qbEnv(server) });
      expect(r.exitCode, JSON.stringify(r.summary)).to.equal(0);
      // The window starts two months before the latest QuickBooks month (2026-01): 2025-11 .. 2026-03.
      expect(r.summary).to.include({ synced: 1, periodsCreated: 3, periodsUpdated: 1, periodsConflicted: 1 });
      const jan = await t.knex('financial_periods').where({ company_id: i.companyId, period_start: '2026-01-01' }).first();
      // The figures of the loopback's ledger depend on the realm id, the same on every run.
      expect(jan).to.include({ source: 'QUICKBOOKS' });
      expect(jan.revenue).to.match(/^\d+\.\d{2}$/);
      expect(jan.total_assets).to.match(/^-?\d+\.\d{2}$/);
      expect(await t.knex('financial_periods').where({ company_id: i.companyId, period_start: '2025-12-01' }).first()).to.include({ source: 'MANUAL', revenue: null });
    });

    for (const how of ['soft-deleted', 'hard-deleted'] as const) {
      it(`an integration whose company is ${how} while it syncs writes nothing; the others sync`, async () => {
        const others = [await anIntegration(t.knex, server), await anIntegration(t.knex, server)];
        const gone = await anIntegration(t.knex, server);
        // A MANUAL period full of nulls on another company is left alone.
        await aFinancialPeriod(t.knex, others[0]!.companyId, '2026-01-01', { revenue: null, ebitda: null });
        server.behave('*', { latencyMs: 150 });
        let deleted: Promise<unknown> | undefined;
        server.onReportRequest = (realmId) => {
          if (realmId !== gone.realmId || deleted) return;
          // (.then: a knex builder runs only when asked)
          deleted = (how === 'soft-deleted' ? t.knex('companies').where({ id: gone.companyId }).update({ deleted_at: NOW }) : t.knex('companies').where({ id: gone.companyId }).delete()).then(() => undefined);
        };
        const r = await runInProcess(syncJob, {}, { database: t.database, env: qbEnv(server) });
        await deleted;
        expect(r.exitCode, JSON.stringify(r.summary)).to.equal(0);
        expect(r.summary).to.include({ synced: 2, skipped: 1, failed: 0, errors: 0 });
        expect(await t.knex('financial_periods').where({ company_id: gone.companyId }).count({ n: '*' }).first()).to.deep.equal({ n: 0 });
        expect(await t.knex('value_ledger_entries').where({ company_id: gone.companyId }).count({ n: '*' }).first()).to.deep.equal({ n: 0 });
        expect(await t.knex('signals').where({ company_id: gone.companyId }).count({ n: '*' }).first()).to.deep.equal({ n: 0 });
        for (const o of others) {
          const row = await t.knex('quickbooks_integrations').where({ id: o.id }).first();
          expect(row.last_sync_status).to.equal('SUCCESS');
        }
        const manual = await t.knex('financial_periods').where({ company_id: others[0]!.companyId, period_start: '2026-01-01' }).first();
        expect(manual).to.include({ source: 'MANUAL', revenue: null, ebitda: null });
      });
    }
  });
});
