/**
 * PostgreSQL really crashes and restarts: a private cluster (support/private-postgres.ts:
 * Debian's initdb, `postgres` a child of this test), one for the whole file, while the
 * real command line works on it.
 *
 * - kill -9 of the postmaster and its backends mid-run: the run exits 3 with its
 *   summary and one line on stderr; nothing is half-written; once a new postmaster
 *   on the same directory has run crash recovery, a rerun completes without duplicates.
 * - Restart mid-run (fast shutdown, SIGINT, then a new postmaster): a job exits 3 as
 *   above when a statement is in flight (its session ends with 57P01, "terminating
 *   connection due to administrator command") or it asks for a connection while the
 *   server is away (57P03 "shutting down / starting up", or a refused connection); it
 *   carries on and completes when the restart falls between two of its statements:
 *   the pool drops the dead connections and opens new ones to the new server (the run
 *   lock's connection is gone then, and only the unique keys guard it). Seen here:
 *   generate-drift-reports and sync-quickbooks exit 3 (each has a statement or a
 *   connection request every ~150 ms); detect-inactivity exited 3 in one run and
 *   completed in another (its last phase sends emails for ~1 s between two
 *   statements). The suite does not retry a lost connection mid-run on purpose: the
 *   Job's retry (backoffLimit) reruns the whole job later, safe by its unique keys.
 *   The test accepts either outcome and checks the data and the rerun in both.
 * - A server that comes up read-only (default_transaction_read_only = on): one clear
 *   line and exit 3, no stack trace, and no item tried (no retry storm).
 *
 * Checked able to fail (mutation tried, then restored): with read-only (25006) left
 * out of `databaseFailure` (lib/errors.ts) the read-only case exits 1 with a
 * "run:failed" stack trace in the log. The kill -9 cases fail when the server is
 * started again before the run has exited (seen while writing them: the drift run
 * then reconnected and completed, exit 0), which is why `crash` only kills.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import pg from 'pg';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { openPostgresUrl, type Database } from '../../lib/db/connect.ts';
import { migrate, productColumns } from '../../lib/db/migrate.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import type { JobDefinition } from '../../lib/runtime/job.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess, type CliResult } from '../support/run.ts';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { createPrivatePostgres, unavailableReason, type PrivatePostgres } from './support/private-postgres.ts';
import { after as onEvent, counts, maxPerKey, sendgridEnv } from './support.ts';

const DB_NAME = 'exitosx';
const TABLES = [...Object.keys(productColumns()), 'exitosx_cron.runs'];

describe('faults: PostgreSQL crashes and restarts (private cluster, real CLI)', function () {
  this.timeout(120_000);
  let server: PrivatePostgres | undefined;
  let sendgrid: SendGridServer;
  let qb: LoopbackQuickBooks;
  /** The test's own handle on the cluster (reopened after each crash: its pool died with the server). */
  let db: Database | undefined;

  before(async function () {
    const reason = unavailableReason();
    if (reason) {
      if (process.env.CI) throw new Error(`CI must run the crash tests: ${reason}`);
      console.warn(`      (skipped: ${reason})`);
      this.skip();
    }
    server = await createPrivatePostgres();
    const admin = new pg.Client({ connectionString: server.url() });
    await admin.connect();
    await admin.query(`create database ${DB_NAME}`);
    await admin.end();
    const d = await openPostgresUrl(server.url(DB_NAME), 'exitosx-test');
    await migrate(d.knex);
    await d.close();
    sendgrid = await startSendGridServer();
    qb = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  });

  after(async () => {
    await db?.close().catch(() => undefined);
    await sendgrid?.close();
    await qb?.close();
    await server?.destroy();
  });

  /** A fresh handle on the cluster's database. */
  const reopen = async (): Promise<Knex> => {
    await db?.close().catch(() => undefined);
    db = await openPostgresUrl(server!.url(DB_NAME), 'exitosx-test');
    return db.knex;
  };

  /** Set while the server is read-only: nothing to empty then (and it could not). */
  let readOnly = false;

  beforeEach(async () => {
    if (readOnly) return;
    const knex = await reopen();
    await knex.raw(`truncate ${TABLES.join(', ')} cascade`);
    sendgrid.recover();
    sendgrid.requests.length = 0;
    sendgrid.delay(0);
    qb.behave('*', { latencyMs: 0 });
  });

  const env = (over: Record<string, string | undefined>) => ({ DATABASE_URL: server!.url(DB_NAME), ...over });

  /** Runs the CLI and, after `times` of `event` in its log, does `fault` to the server (awaited before returning). */
  const runWithFault = async (args: string[], over: Record<string, string | undefined>, event: string, times: number, fault: () => Promise<void>): Promise<CliResult> => {
    let done: Promise<void> | undefined;
    const result = await runCli([...args, '--now', NOW.toISOString()], { env: env(over), onStderr: onEvent(event, times, () => (done = fault())) });
    expect(done, `${event} ×${times} never came: ${result.stderr.slice(-2000)}`).not.to.equal(undefined);
    await done;
    if (process.env.FAULTS_DEBUG) console.log(args[0], result.code, JSON.stringify(result.summary).slice(0, 400));
    return result;
  };

  /** Exit 3 with the summary last on stdout and one plain line on stderr, or (restart only) a run that carried on. */
  const expectExit3 = (r: CliResult, allowCompleted = false): 'exit 3' | 'completed' => {
    expect(r.signal).to.equal(null);
    expect(r.summary, r.stderr.slice(-3000)).to.be.an('object');
    if (allowCompleted && r.code !== 3) {
      expect([0, 1], r.stderr.slice(-3000)).to.include(r.code);
      return 'completed';
    }
    expect(r.code, r.stderr.slice(-3000)).to.equal(3);
    expect(r.summary).to.include({ success: false });
    expect(String(r.summary!.error)).to.match(/^database connection lost: /);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('exitosx-cron: '))).to.have.length(1);
    return 'exit 3';
  };

  const rerun = async (job: JobDefinition, over: Record<string, string>) => {
    await reopen();
    const r = await runInProcess(job, {}, { database: db!, env: over });
    expect(r.exitCode, JSON.stringify(r.summary)).to.equal(0);
    return r;
  };

  /** kill -9 now; the new postmaster (crash recovery) starts only once the run has exited, before its rerun. */
  const crash = () => server!.kill9();
  /** Starts the server again when a crash left it down (crash recovery on the same directory). */
  const upAgain = async () => {
    if (!server!.running()) await server!.start();
  };
  const restart = async () => {
    await server!.fastShutdown();
    await server!.start();
  };

  /** detect-inactivity: 30 inactive owners, nudges sent 2 at a time, 100 ms each. */
  const inactivityCase = async (fault: () => Promise<void>, allowCompleted: boolean) => {
    const USERS = 30;
    for (let i = 0; i < USERS; i++) await anOwnedCompany(db!.knex, { daysInactive: 30 });
    sendgrid.delay(100);
    const r = await runWithFault(['detect-inactivity'], sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2' }), 'email:sent', 3, fault);
    const outcome = expectExit3(r, allowCompleted);
    await upAgain();
    const mid = await counts(await reopen());
    expect(mid.ledger.SIGNAL_CREATED ?? 0).to.equal(mid.signals);
    sendgrid.delay(0);
    await rerun(inactivityJob, sendgridEnv(sendgrid));
    const end = await counts(db!.knex);
    expect(end.signals).to.equal(USERS);
    expect(end.ledger).to.deep.equal({ SIGNAL_CREATED: USERS });
    expect((end.emails.SENT ?? 0) + (end.emails.PENDING ?? 0) + (end.emails.FAILED ?? 0)).to.equal(USERS);
    expect(maxPerKey(sendgrid)).to.equal(1);
    return outcome;
  };

  /** generate-drift-reports: 25 companies, emails 2 at a time, 100 ms each. */
  const driftCase = async (fault: () => Promise<void>, allowCompleted: boolean) => {
    const COMPANIES = 25;
    for (let i = 0; i < COMPANIES; i++) await anOwnedCompany(db!.knex);
    sendgrid.delay(100);
    const r = await runWithFault(['generate-drift-reports'], sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2' }), 'email:sent', 3, fault);
    const outcome = expectExit3(r, allowCompleted);
    await upAgain();
    const mid = await counts(await reopen());
    expect(mid.ledger.DRIFT_REPORT_GENERATED ?? 0).to.equal(mid.reports);
    sendgrid.delay(0);
    await rerun(driftJob, sendgridEnv(sendgrid));
    const end = await counts(db!.knex);
    expect(end.reports).to.equal(COMPANIES);
    expect(end.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: COMPANIES });
    expect(maxPerKey(sendgrid)).to.equal(1);
    return outcome;
  };

  /** sync-quickbooks: 12 integrations, 2 at a time, 150 ms per QuickBooks call. */
  const syncCase = async (fault: () => Promise<void>, allowCompleted: boolean) => {
    const N = 12;
    const integrations = [];
    for (let i = 0; i < N; i++) integrations.push(await anIntegration(db!.knex, qb));
    qb.behave('*', { latencyMs: 150 });
    const r = await runWithFault(['sync-quickbooks'], qbEnv(qb, { QUICKBOOKS_CONCURRENCY: '2', LOG_LEVEL: 'debug' }), 'qbo:sync:done', 2, fault);
    const outcome = expectExit3(r, allowCompleted);
    await upAgain();
    const knex = await reopen();
    // Each integration whole (status, 25 periods, one ledger entry) or untouched.
    for (const i of integrations) {
      const row = await knex('quickbooks_integrations').where({ id: i.id }).first();
      const periods = Number((await knex('financial_periods').where({ company_id: i.companyId }).count({ n: '*' }))[0]!.n);
      const entries = Number((await knex('value_ledger_entries').where({ company_id: i.companyId }).count({ n: '*' }))[0]!.n);
      expect([periods, entries], i.id).to.deep.equal(row.last_sync_status === 'SUCCESS' ? [25, 1] : [0, 0]);
    }
    qb.behave('*', { latencyMs: 0 });
    await rerun(syncJob, qbEnv(qb) as Record<string, string>);
    const end = await counts(db!.knex);
    expect(end.periods).to.equal(N * 25);
    expect(end.ledger).to.deep.equal({ FINANCIALS_SYNCED: N });
    return outcome;
  };

  describe('kill -9 of the postmaster mid-run: exit 3; after crash recovery a rerun completes without duplicates', () => {
    it('detect-inactivity', async () => {
      await inactivityCase(crash, false);
      expect(server!.log()).to.match(/database system was interrupted|was not properly shut down/);
    });
    it('generate-drift-reports', async () => {
      await driftCase(crash, false);
    });
    it('sync-quickbooks', async () => {
      await syncCase(crash, false);
    });
  });

  describe('restart mid-run (fast shutdown, then a new postmaster): exit 3 (or carried on), a rerun completes', () => {
    const seen: Record<string, string> = {};
    after(() => {
      if (Object.keys(seen).length) console.log(`      restart outcomes: ${JSON.stringify(seen)}`);
    });
    it('detect-inactivity', async () => {
      seen['detect-inactivity'] = await inactivityCase(restart, true);
    });
    it('generate-drift-reports', async () => {
      seen['generate-drift-reports'] = await driftCase(restart, true);
    });
    it('sync-quickbooks', async () => {
      seen['sync-quickbooks'] = await syncCase(restart, true);
    });
  });

  describe('a server that comes up read-only (default_transaction_read_only = on)', () => {
    before(async () => {
      await db?.close();
      db = undefined;
      await server!.fastShutdown();
      await server!.start({ default_transaction_read_only: 'on' });
      readOnly = true;
    });
    after(async () => {
      readOnly = false;
      await server!.fastShutdown();
      await server!.start();
    });

    for (const job of ['detect-inactivity', 'generate-drift-reports', 'sync-quickbooks']) {
      it(`${job}: one clear line and exit 3, no stack trace, no item tried`, async () => {
        const r = await runCli([job, '--now', NOW.toISOString()], { env: env({ ...sendgridEnv(sendgrid), ...qbEnv(qb) }) });
        expect(r.code, r.stderr.slice(-3000)).to.equal(3);
        const plain = r.stderr.split('\n').filter((l) => l.startsWith('exitosx-cron: '));
        expect(plain).to.have.length(1);
        expect(plain[0]).to.match(/^exitosx-cron: database is read-only \(a standby, or default_transaction_read_only is on\): cannot execute (UPDATE|INSERT) in a read-only transaction$/);
        expect(r.stderr).not.to.match(/\n\s+at |"stack"/);
        expect(r.stderr).not.to.match(/item:failed|batch:failed|run:failed/);
        expect(r.summary).to.include({ success: false, errors: 0 });
        expect(Number(r.summary!.durationMs), 'no retry storm: it stops at the first write').to.be.below(10_000);
      });
    }
  });
});
