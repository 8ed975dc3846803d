/**
 * SIGKILL in the middle of each job (the real command line, in a child process),
 * then reruns: every item done exactly once, nothing duplicated (signals, ledger
 * entries, reports, financial periods, emails; the loopback SendGrid accepted each
 * idempotency key at most once), the killed run's PENDING emails marked FAILED
 * "outcome unknown" by a run an hour later and never resent, and the killed run's
 * history row 'crashed'.
 *
 * Checked able to fail: without `on conflict (idempotency_key) do nothing` in
 * insertEmailLog (lib/sql/email-log.ts) the drift case fails (the rerun's claim of a
 * key the killed run left PENDING is an error); with the stale sweep's old strict
 * `<` a run exactly an hour later left the PENDING rows alone and both email cases failed.
 */
import { expect } from 'chai';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { OUTCOME_UNKNOWN } from '../../lib/sql/email-log.ts';
import { type TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess } from '../support/run.ts';
import { type SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { after as onEvent, counts, HOUR, later, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

describe('faults: SIGKILL mid-run, then reruns (PostgreSQL, real CLI)', function () {
  this.timeout(90_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));

  const runStatuses = async () => (await t.knex('exitosx_cron.runs').orderBy('started_at').pluck('status')) as string[];
  const outcomeUnknown = async () => Number((await t.knex('email_log').where({ status: 'FAILED' }).where('error', 'like', `${OUTCOME_UNKNOWN}%`).count({ n: '*' }))[0]!.n);

  it('detect-inactivity: killed after 5 nudges; the reruns finish without duplicates and never resend the unknown ones', async () => {
    const USERS = 30;
    for (let i = 0; i < USERS; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    sendgrid.delay(150);
    const killed = await runCli(['detect-inactivity', '--now', NOW.toISOString()], {
      env: { DATABASE_URL: t.url!, ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '3' }) },
      onStderr: onEvent('email:sent', 5, (child) => child.kill('SIGKILL')),
    });
    expect(killed.signal).to.equal('SIGKILL');
    const mid = await counts(t.knex);
    expect(mid.emails.SENT).to.be.within(5, USERS - 1);
    expect(mid.ledger.SIGNAL_CREATED).to.equal(mid.signals); // every signal with its entry
    const pendingAtKill = mid.emails.PENDING ?? 0;
    expect(await runStatuses()).to.deep.equal(['running']);

    // Rerun at the same clock: the rest done; the killed run's PENDING rows are left alone (maybe in flight).
    sendgrid.delay(0);
    const rerun = await runInProcess(inactivityJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
    expect(await runStatuses()).to.deep.equal(['crashed', 'succeeded']);
    // An hour later: the PENDING ones become FAILED "outcome unknown", and are not resent.
    const hourLater = await runInProcess(inactivityJob, { now: later(NOW, HOUR) }, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(hourLater.exitCode).to.equal(0);
    expect(hourLater.summary).to.include({ emailsOutcomeUnknown: pendingAtKill, emailsSent: 0, signalsCreated: 0 });

    const end = await counts(t.knex);
    expect(end.signals).to.equal(USERS);
    expect(end.ledger).to.deep.equal({ SIGNAL_CREATED: USERS });
    expect(end.emails).to.deep.equal({ SENT: USERS - pendingAtKill, ...(pendingAtKill ? { FAILED: pendingAtKill } : {}) });
    expect(await outcomeUnknown()).to.equal(pendingAtKill);
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(await runStatuses()).to.deep.equal(['crashed', 'succeeded', 'succeeded']);
  });

  it('generate-drift-reports: killed after 5 emails; every report once with its ledger entry, each email at most once', async () => {
    const COMPANIES = 25;
    for (let i = 0; i < COMPANIES; i++) await anOwnedCompany(t.knex);
    sendgrid.delay(150);
    const killed = await runCli(['generate-drift-reports', '--now', NOW.toISOString()], {
      env: { DATABASE_URL: t.url!, ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '3' }) },
      onStderr: onEvent('email:sent', 5, (child) => child.kill('SIGKILL')),
    });
    expect(killed.signal).to.equal('SIGKILL');
    const mid = await counts(t.knex);
    // The companies are one page: its reports commit together, before their emails.
    expect(mid.reports).to.be.within(5, COMPANIES);
    expect(mid.ledger.DRIFT_REPORT_GENERATED).to.equal(mid.reports);
    const pendingAtKill = mid.emails.PENDING ?? 0;

    sendgrid.delay(0);
    const rerun = await runInProcess(driftJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
    expect(rerun.summary).to.include({ generated: COMPANIES - mid.reports, emailsFailed: 0 });
    // Reports whose email is still PENDING (maybe in flight) wait; an hour later they are settled without resending.
    expect(await t.knex('drift_reports').whereNull('emailed_at').count({ n: '*' }).first()).to.deep.equal({ n: pendingAtKill });
    const hourLater = await runInProcess(driftJob, { now: later(NOW, HOUR) }, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(hourLater.exitCode).to.equal(0);
    expect(hourLater.summary).to.include({ generated: 0, emailsSent: 0, emailsFailed: 0 });

    const end = await counts(t.knex);
    expect(end.reports).to.equal(COMPANIES);
    expect(end.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: COMPANIES });
    expect(end.emails).to.deep.equal({ SENT: COMPANIES - pendingAtKill, ...(pendingAtKill ? { FAILED: pendingAtKill } : {}) });
    expect(await outcomeUnknown()).to.equal(pendingAtKill);
    expect(await t.knex('drift_reports').whereNull('emailed_at').count({ n: '*' }).first()).to.deep.equal({ n: 0 });
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(await runStatuses()).to.deep.equal(['crashed', 'succeeded', 'succeeded']);
  });

  describe('sync-quickbooks', () => {
    let server: LoopbackQuickBooks;
    beforeEach(async () => {
      server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    });
    afterEach(() => server.close());

    it('killed after 4 syncs; the rerun syncs each of the others once: periods, status and one ledger entry each', async () => {
      const N = 16;
      const integrations = [];
      for (let i = 0; i < N; i++) integrations.push(await anIntegration(t.knex, server));
      server.behave('*', { latencyMs: 150 });
      const killed = await runCli(['sync-quickbooks', '--now', NOW.toISOString()], {
        env: { DATABASE_URL: t.url!, ...qbEnv(server, { QUICKBOOKS_CONCURRENCY: '2', LOG_LEVEL: 'debug' }) },
        onStderr: onEvent('qbo:sync:done', 4, (child) => child.kill('SIGKILL')),
      });
      expect(killed.signal).to.equal('SIGKILL');
      const synced = await t.knex('quickbooks_integrations').where({ last_sync_status: 'SUCCESS' }).pluck('id');
      expect(synced.length).to.be.within(4, N - 1);
      const mid = await counts(t.knex);
      expect(mid.ledger.FINANCIALS_SYNCED).to.equal(synced.length);
      expect(mid.periods).to.equal(synced.length * 25); // 24 months back and this one, whole or nothing

      server.behave('*', { latencyMs: 0 });
      const rerun = await runInProcess(syncJob, {}, { database: t.database, env: qbEnv(server) });
      expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
      expect(rerun.summary).to.include({ synced: N - synced.length, skipped: synced.length, failed: 0 });

      const end = await counts(t.knex);
      expect(end.periods).to.equal(N * 25);
      expect(end.ledger).to.deep.equal({ FINANCIALS_SYNCED: N });
      expect(end.signals).to.equal(0);
      for (const i of integrations) {
        const row = await t.knex('quickbooks_integrations').where({ id: i.id }).first();
        expect(row.last_sync_status, i.id).to.equal('SUCCESS');
        expect(await t.knex('financial_periods').where({ company_id: i.companyId }).count({ n: '*' }).first()).to.deep.equal({ n: 25 });
        expect(await t.knex('value_ledger_entries').where({ company_id: i.companyId }).count({ n: '*' }).first()).to.deep.equal({ n: 1 });
      }
      expect(await runStatuses()).to.deep.equal(['crashed', 'succeeded']);
    });
  });
});
