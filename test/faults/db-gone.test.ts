/**
 * The database goes away mid-run: the server terminates the job's connections
 * (pg_terminate_backend on every `exitosx-cron:*` backend of the test database,
 * several times over about a second) while the real command line works. The run
 * ends with exit 3 and a summary (or, when the job could carry on, isolates what
 * failed and finishes), nothing is half-written, and a rerun completes.
 */
import { expect } from 'chai';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import type { JobDefinition } from '../../lib/runtime/job.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import type { TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess, type CliResult } from '../support/run.ts';
import type { SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { after as onEvent, counts, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

describe('faults: the database goes away mid-run (PostgreSQL, real CLI)', function () {
  this.timeout(90_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  let qb: LoopbackQuickBooks;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));
  before(async () => {
    qb = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  });
  after(async () => {
    await qb?.close();
  });

  /** Terminates the job's backends 5 times, 200 ms apart; returns how many it terminated. */
  const terminateRepeatedly = async (): Promise<number> => {
    const dbName = new URL(t.url!).pathname.slice(1);
    let n = 0;
    for (let i = 0; i < 5; i++) {
      const { rows } = await t.knex.raw<{ rows: Array<{ ok: boolean }> }>(
        `select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name like 'exitosx-cron:%' and datname = ?`,
        [dbName],
      );
      n += rows.filter((r) => r.ok).length;
      await new Promise((r) => setTimeout(r, 200));
    }
    return n;
  };

  /** Runs the CLI; after `times` of `event`, terminates its connections. */
  const runAndCut = async (args: string[], env: Record<string, string>, event: string, times: number): Promise<CliResult> => {
    let cut: Promise<number> | undefined;
    const result = await runCli([...args, '--now', NOW.toISOString()], {
      env: { DATABASE_URL: t.url!, ...env },
      onStderr: onEvent(event, times, () => (cut = terminateRepeatedly())),
    });
    expect(await cut, "backends terminated").to.be.above(0);
    if (process.env.FAULTS_DEBUG) console.log(args[0], result.code, JSON.stringify(result.summary).slice(0, 600));
    // Exit 3 with a summary, or (the job carried on) 0/1 with a summary; never a crash without one.
    expect(result.signal).to.equal(null);
    expect([0, 1, 3], result.stderr.slice(-3000)).to.include(result.code);
    expect(result.summary, result.stderr.slice(-3000)).to.be.an('object');
    if (result.code === 3) expect(String(result.summary!.error)).to.match(/database connection lost|terminat/i);
    // A run that carried on lost its lock with its connection, and says so.
    else expect(result.stderr).to.include('"run:lock-lost"');
    return result;
  };

  const rerun = async (job: JobDefinition, env: Record<string, string>) => {
    const r = await runInProcess(job, {}, { database: t.database, env });
    expect(r.exitCode, JSON.stringify(r.summary)).to.equal(0);
    return r;
  };

  it('detect-inactivity: every signal with its SIGNAL_CREATED entry; the rerun completes', async () => {
    const USERS = 30;
    for (let i = 0; i < USERS; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    sendgrid.delay(100);
    const r = await runAndCut(['detect-inactivity'], sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2' }), 'email:sent', 3);
    const mid = await counts(t.knex);
    expect(mid.ledger.SIGNAL_CREATED ?? 0).to.equal(mid.signals);
    sendgrid.delay(0);
    await rerun(inactivityJob, sendgridEnv(sendgrid));
    const end = await counts(t.knex);
    expect(end.signals).to.equal(USERS);
    expect(end.ledger).to.deep.equal({ SIGNAL_CREATED: USERS });
    expect((end.emails.SENT ?? 0) + (end.emails.PENDING ?? 0) + (end.emails.FAILED ?? 0)).to.equal(USERS);
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(r.code).to.be.oneOf([0, 1, 3]);
  });

  it('generate-drift-reports: every report with its ledger entry; the rerun completes', async () => {
    const COMPANIES = 25;
    for (let i = 0; i < COMPANIES; i++) await anOwnedCompany(t.knex);
    sendgrid.delay(100);
    await runAndCut(['generate-drift-reports'], sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2' }), 'email:sent', 3);
    const mid = await counts(t.knex);
    expect(mid.ledger.DRIFT_REPORT_GENERATED ?? 0).to.equal(mid.reports);
    sendgrid.delay(0);
    await rerun(driftJob, sendgridEnv(sendgrid));
    const end = await counts(t.knex);
    expect(end.reports).to.equal(COMPANIES);
    expect(end.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: COMPANIES });
    expect(maxPerKey(sendgrid)).to.equal(1);
  });

  it('sync-quickbooks: each integration whole or untouched; the rerun completes', async () => {
    const N = 16;
    const integrations = [];
    for (let i = 0; i < N; i++) integrations.push(await anIntegration(t.knex, qb));
    qb.behave('*', { latencyMs: 150 });
    await runAndCut(['sync-quickbooks'], qbEnv(qb, { QUICKBOOKS_CONCURRENCY: '2', LOG_LEVEL: 'debug' }) as Record<string, string>, 'qbo:sync:done', 2);
    for (const i of integrations) {
      const row = await t.knex('quickbooks_integrations').where({ id: i.id }).first();
      const periods = Number((await t.knex('financial_periods').where({ company_id: i.companyId }).count({ n: '*' }))[0]!.n);
      const entries = Number((await t.knex('value_ledger_entries').where({ company_id: i.companyId }).count({ n: '*' }))[0]!.n);
      if (row.last_sync_status === 'SUCCESS') expect([periods, entries], i.id).to.deep.equal([25, 1]);
      else expect([periods, entries], i.id).to.deep.equal([0, 0]);
    }
    qb.behave('*', { latencyMs: 0 });
    await rerun(syncJob, qbEnv(qb) as Record<string, string>);
    const end = await counts(t.knex);
    expect(end.periods).to.equal(N * 25);
    expect(end.ledger).to.deep.equal({ FINANCIALS_SYNCED: N });
  });
});

describe('faults: the database refuses to record a sent email (PostgreSQL)', function () {
  this.timeout(60_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));

  it('leaves the email PENDING (it was delivered), fails that user only, and no later run sends it again', async () => {
    const users = [await anOwnedCompany(t.knex, { daysInactive: 30 }), await anOwnedCompany(t.knex, { daysInactive: 30 }), await anOwnedCompany(t.knex, { daysInactive: 30 })];
    const victim = users[1]!.user.id;
    // The provider accepts the email, then recording SENT fails (a real error from the server).
    await t.knex.raw(`create function refuse_sent() returns trigger language plpgsql as $$
      begin raise exception 'disk full (injected)'; end $$`);
    await t.knex.raw(`create trigger refuse_sent before update on email_log for each row
      when (new.status = 'SENT' and new.user_id = '${victim}') execute function refuse_sent()`);
    const r = await runInProcess(inactivityJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(r.exitCode).to.equal(1);
    expect((r.summary.errorDetails as Array<{ id: string }>).map((e) => e.id)).to.deep.equal([victim]);
    expect(sendgrid.accepted()).to.have.length(3);
    expect((await t.knex('email_log').where({ user_id: victim }).first()).status).to.equal('PENDING');
    await t.knex.raw('drop trigger refuse_sent on email_log');

    // Neither a rerun now nor one an hour later sends it again; the later one marks it outcome unknown.
    await runInProcess(inactivityJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    const hourLater = await runInProcess(inactivityJob, { now: new Date(NOW.getTime() + 3600_000) }, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(hourLater.summary).to.include({ emailsOutcomeUnknown: 1, emailsSent: 0 });
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(sendgrid.accepted()).to.have.length(3);
    expect(await counts(t.knex)).to.deep.include({ signals: 3, emails: { SENT: 2, FAILED: 1 } });
  });
});
