/**
 * The product application holds locks while a job runs (real PostgreSQL, the real
 * command line with short timeouts from its environment). A second connection, the
 * "app", holds a lock in an open transaction:
 *
 * - an integration row `SELECT … FOR UPDATE` (a user reconnecting QuickBooks);
 * - an open inactivity signal `FOR UPDATE` (one to escalate, one of a returner);
 * - an uncommitted `drift_reports` insert of the same company and period;
 * - an uncommitted `email_log` claim of the same idempotency key.
 *
 * In each, the run ends by itself, within the lock timeout (twice: the page, then
 * the item alone) plus a margin, with exit 1; every other item is done, the locked
 * one is listed as "row locked by another transaction" and counted in lockTimeouts,
 * nothing is half-written; once the app lets go, the rerun completes the locked item.
 * And a page read the app blocks ends the run with exit 3 and one line, never a hang;
 * a normal dry run lives with a short idle-in-transaction limit; and the run lock's
 * connection survives a server-wide idle_session_timeout.
 *
 * Checked able to fail (each mutation tried, then restored): without the pool's
 * `afterCreate` setting the session timeouts (lib/db/connect.ts) the sync case hangs
 * until the test's 60 s CLI timeout, as the issue reported; without the one-by-one
 * claim fallback (lib/email/service.ts, claimChunk) the email case's dry run reports 0
 * errors and no email for the page (the page redone company by company finds every
 * report stored and skips it: the held email is silently not attempted); with a failed
 * page of returners not redone signal by signal, the returner case resolves none of
 * them; without LOCK_SESSION_SQL on the lock's connection the idle_session_timeout
 * case logs run:lock-lost.
 */
import { expect } from 'chai';
import pg from 'pg';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { openPostgresUrl } from '../../lib/db/connect.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import type { TestDb } from '../support/db.ts';
import { anOwnedCompany, daysBefore } from '../support/factories.ts';
import { NOW, runCli, runInProcess, type CliResult } from '../support/run.ts';
import type { SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { acceptedPerKey, counts, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

/** The lock timeout of these runs: short, so that a test waits seconds, not the default 5. */
const LOCK_MS = 1000;
const TIMEOUTS = { DATABASE_LOCK_TIMEOUT_MS: String(LOCK_MS), DATABASE_STATEMENT_TIMEOUT_MS: '30000', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '10000' };
/** A page waits once, then its locked item alone once more; the margin is the work itself on a loaded, shared machine. */
const ENDS_WITHIN_MS = 2 * LOCK_MS + 10_000;

/** The app: a second connection holding a lock in an open transaction until `release`. */
interface App {
  release(how?: 'rollback' | 'commit'): Promise<void>;
}

async function appHolds(url: string, statements: Array<[string, unknown[]?]>): Promise<App> {
  const client = new pg.Client({ connectionString: url, application_name: 'product-app' });
  await client.connect();
  await client.query('begin');
  for (const [sql, params] of statements) await client.query(sql, params);
  let done = false;
  return {
    async release(how = 'rollback') {
      if (done) return;
      done = true;
      await client.query(how).catch(() => undefined);
      await client.end();
    },
  };
}

const rowLocked = /^row locked by another transaction/;

describe('faults: the product app holds locks while a job runs (PostgreSQL, real CLI)', function () {
  this.timeout(90_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  let app: App | undefined;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));
  afterEach(async () => {
    await app?.release();
    app = undefined;
  });

  /** Runs the CLI with the short timeouts; checks it ended by itself in time. */
  const run = async (args: string[], env: Record<string, string | undefined>): Promise<CliResult & { ms: number }> => {
    const started = Date.now();
    const r = await runCli([...args, '--now', NOW.toISOString()], { env: { DATABASE_URL: t.url!, ...TIMEOUTS, ...env } });
    const ms = Date.now() - started;
    expect(r.signal, r.stderr.slice(-2000)).to.equal(null);
    // The run's own time (from its start, after Node has loaded the program: on a
    // loaded CI machine that alone can take seconds).
    expect(Number(r.summary?.durationMs), 'ended by itself, within the lock timeout plus a margin').to.be.below(ENDS_WITHIN_MS);
    return { ...r, ms };
  };

  const details = (r: { summary?: Record<string, unknown> }) => (r.summary?.errorDetails ?? []) as Array<{ kind: string; id: string; error: string }>;

  describe('sync-quickbooks', () => {
    let qb: LoopbackQuickBooks;
    beforeEach(async () => {
      qb = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    });
    afterEach(() => qb.close());

    it('an integration row the app holds FOR UPDATE fails alone; the others sync; the rerun syncs it', async () => {
      const integrations = [];
      for (let i = 0; i < 4; i++) integrations.push(await anIntegration(t.knex, qb));
      const locked = integrations[1]!;
      app = await appHolds(t.url!, [['select * from quickbooks_integrations where id = $1 for update', [locked.id]]]);

      const r = await run(['sync-quickbooks'], qbEnv(qb));
      expect(r.code, r.stderr.slice(-2000)).to.equal(1);
      expect(r.summary).to.include({ synced: 3, failed: 0, errors: 1, lockTimeouts: 1 });
      expect(details(r).map((d) => [d.kind, d.id])).to.deep.equal([['integration', locked.id]]);
      expect(details(r)[0]!.error).to.match(rowLocked);
      // Nothing half-written for the locked one; the others whole.
      for (const i of integrations) {
        const row = await t.knex('quickbooks_integrations').where({ id: i.id }).first();
        const periods = await t.knex('financial_periods').where({ company_id: i.companyId }).count({ n: '*' }).first();
        const entries = await t.knex('value_ledger_entries').where({ company_id: i.companyId }).count({ n: '*' }).first();
        if (i === locked) expect([row.last_sync_status, periods, entries]).to.deep.equal([null, { n: 0 }, { n: 0 }]);
        else expect([row.last_sync_status, periods, entries]).to.deep.equal(['SUCCESS', { n: 25 }, { n: 1 }]);
      }
      expect(await counts(t.knex)).to.deep.include({ signals: 0 });

      await app.release();
      const rerun = await runInProcess(syncJob, {}, { database: t.database, env: qbEnv(qb) });
      expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
      expect(rerun.summary).to.include({ synced: 1, skipped: 3, lockTimeouts: 0 });
      const end = await counts(t.knex);
      expect(end.periods).to.equal(4 * 25);
      expect(end.ledger).to.deep.equal({ FINANCIALS_SYNCED: 4 });
    });
  });

  describe('detect-inactivity', () => {
    const openSignal = (companyId: string, userId: string, over: Record<string, unknown> = {}): Promise<string> =>
      t.knex('signals').insert({
        company_id: companyId, user_id: userId, channel: 'TIME_DECAY', event_type: 'user_inactivity', category: 'PERSONAL', severity: 'MEDIUM',
        confidence: 'CONFIDENT', title: 'Owner inactive for 30 days', metadata: JSON.stringify({ daysInactive: 30 }), created_at: daysBefore(20), updated_at: daysBefore(20), ...over,
      }).returning('id').then((rows: Array<{ id: string }>) => rows[0]!.id);

    it('an open signal the app holds (one to escalate, one of a returner) fails alone; the others escalate and resolve; the rerun does it', async () => {
      // Three owners now at 50 days with an open MEDIUM signal (to escalate), three returners (active 2 days ago).
      const escalating = [];
      for (let i = 0; i < 3; i++) {
        const { company, user } = await anOwnedCompany(t.knex, { daysInactive: 50 });
        escalating.push({ user: user.id, signal: await openSignal(company.id, user.id) });
      }
      const returning = [];
      for (let i = 0; i < 3; i++) {
        const { company, user } = await anOwnedCompany(t.knex, { daysInactive: 2 });
        returning.push({ user: user.id, signal: await openSignal(company.id, user.id) });
      }
      const [heldUp, heldBack] = [escalating[1]!, returning[1]!];
      app = await appHolds(t.url!, [['select * from signals where id = any($1::text[]) for update', [[heldUp.signal, heldBack.signal]]]]);

      const r = await run(['detect-inactivity'], sendgridEnv(sendgrid));
      expect(r.code, r.stderr.slice(-2000)).to.equal(1);
      expect(r.summary).to.include({ signalsEscalated: 2, signalsResolved: 2, errors: 2, lockTimeouts: 2, emailsSent: 2 });
      expect(details(r).map((d) => [d.kind, d.id]).sort()).to.deep.equal([['signal', heldBack.signal], ['user', heldUp.user]].sort());
      for (const d of details(r)) expect(d.error).to.match(rowLocked);
      const signal = (id: string) => t.knex('signals').where({ id }).first();
      for (const e of escalating) expect((await signal(e.signal)).severity, e.user).to.equal(e === heldUp ? 'MEDIUM' : 'HIGH');
      for (const x of returning) expect((await signal(x.signal)).resolution, x.user).to.equal(x === heldBack ? null : 'USER_RETURNED');
      // Every change with its ledger entry, none for the held ones.
      expect((await counts(t.knex)).ledger).to.deep.equal({ SIGNAL_ESCALATED: 2, SIGNAL_RESOLVED: 2 });

      await app.release();
      const rerun = await runInProcess(inactivityJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
      expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
      expect(rerun.summary).to.include({ signalsEscalated: 1, signalsResolved: 1, emailsSent: 1 });
      expect((await signal(heldUp.signal)).severity).to.equal('HIGH');
      expect((await signal(heldBack.signal)).resolution).to.equal('USER_RETURNED');
      expect((await counts(t.knex)).ledger).to.deep.equal({ SIGNAL_ESCALATED: 3, SIGNAL_RESOLVED: 3 });
      expect(maxPerKey(sendgrid)).to.equal(1);
      expect(sendgrid.accepted()).to.have.length(3);
    });
  });

  describe('generate-drift-reports', () => {
    const PERIOD_START = new Date('2026-02-01T00:00:00Z');

    it("an uncommitted drift_reports insert of the same company and period fails that company alone; the rerun generates its report", async () => {
      const owned = [];
      for (let i = 0; i < 4; i++) owned.push(await anOwnedCompany(t.knex));
      const held = owned[2]!;
      app = await appHolds(t.url!, [[
        `insert into drift_reports (company_id, period_start, period_end, direction, report) values ($1, $2, $3, 'NO_DATA', '{}'::jsonb)`,
        [held.company.id, PERIOD_START, new Date('2026-03-01T00:00:00Z')],
      ]]);

      const r = await run(['generate-drift-reports'], sendgridEnv(sendgrid));
      expect(r.code, r.stderr.slice(-2000)).to.equal(1);
      expect(r.summary).to.include({ generated: 3, errors: 1, lockTimeouts: 1, emailsSent: 3 });
      expect(details(r).map((d) => [d.kind, d.id])).to.deep.equal([['company', held.company.id]]);
      expect(details(r)[0]!.error).to.match(rowLocked);
      const mid = await counts(t.knex);
      expect([mid.reports, mid.ledger]).to.deep.equal([3, { DRIFT_REPORT_GENERATED: 3 }]);

      await app.release('rollback');
      const rerun = await runInProcess(driftJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
      expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
      expect(rerun.summary).to.include({ generated: 1, emailsSent: 1 });
      const end = await counts(t.knex);
      expect([end.reports, end.ledger, end.emails]).to.deep.equal([4, { DRIFT_REPORT_GENERATED: 4 }, { SENT: 4 }]);
      expect(maxPerKey(sendgrid)).to.equal(1);
    });

    it('an uncommitted email_log claim of the same idempotency key fails that email alone; the others are sent; the rerun sends it once', async () => {
      const owned = [];
      for (let i = 0; i < 4; i++) owned.push(await anOwnedCompany(t.knex));
      const held = owned[1]!;
      const key = `drift-report:${held.company.id}:2026-02:${held.user.id}`;
      app = await appHolds(t.url!, [[
        `insert into email_log (user_id, to_email, email_type, idempotency_key, status) values ($1, $2, 'DRIFT_REPORT', $3, 'PENDING')`,
        [held.user.id, held.user.email, key],
      ]]);

      // A dry run first (one transaction, rolled back): the held key fails alone there too,
      // its claim in a savepoint of its own, so the rest of the dry run's transaction lives on.
      const timed = await openPostgresUrl(t.url!, 'exitosx-cron:dry-run', 4, { lockTimeoutMs: LOCK_MS, statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 10_000 });
      try {
        const dry = await runInProcess(driftJob, { dryRun: true }, { database: timed, env: sendgridEnv(sendgrid) });
        expect(dry.exitCode, JSON.stringify(dry.summary)).to.equal(1);
        expect(dry.summary).to.include({ dryRun: true, generated: 4, emailsSent: 3, errors: 1, lockTimeouts: 1 });
      } finally {
        await timed.close();
      }
      expect(await counts(t.knex)).to.deep.include({ reports: 0, emails: {} });

      const r = await run(['generate-drift-reports'], sendgridEnv(sendgrid));
      expect(r.code, r.stderr.slice(-2000)).to.equal(1);
      expect(r.summary).to.include({ generated: 4, emailsSent: 3, errors: 1, lockTimeouts: 1, reportsAwaitingEmail: 1 });
      expect(details(r).map((d) => [d.kind, d.id])).to.deep.equal([['email', key]]);
      expect(details(r)[0]!.error).to.match(rowLocked);
      expect(acceptedPerKey(sendgrid).has(key)).to.equal(false);
      expect(await t.knex('drift_reports').whereNull('emailed_at').pluck('company_id')).to.deep.equal([held.company.id]);
      expect((await counts(t.knex)).emails).to.deep.equal({ SENT: 3 });

      await app.release('rollback');
      const rerun = await runInProcess(driftJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
      expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
      expect(rerun.summary).to.include({ generated: 0, emailsSent: 1 });
      expect(acceptedPerKey(sendgrid).get(key)).to.equal(1);
      expect(maxPerKey(sendgrid)).to.equal(1);
      expect((await counts(t.knex)).emails).to.deep.equal({ SENT: 4 });
      expect(await t.knex('drift_reports').whereNull('emailed_at').count({ n: '*' }).first()).to.deep.equal({ n: 0 });
    });

    it('a page read the app blocks (a table lock) ends the run with exit 3 and one line once statement_timeout passes, never a hang', async () => {
      for (let i = 0; i < 3; i++) await anOwnedCompany(t.knex);
      // A migration in the app holding the table: the read waits; statement_timeout (1 s) comes before lock_timeout (10 s).
      app = await appHolds(t.url!, [['lock table companies in access exclusive mode']]);
      const r = await run(['generate-drift-reports'], { ...sendgridEnv(sendgrid), DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_LOCK_TIMEOUT_MS: '10000' });
      expect(r.code, r.stderr.slice(-2000)).to.equal(3);
      const plain = r.stderr.split('\n').filter((l) => l.startsWith('exitosx-cron: '));
      expect(plain).to.have.length(1);
      expect(plain[0]).to.match(/^exitosx-cron: database too slow: a read was cancelled by statement_timeout \(DATABASE_STATEMENT_TIMEOUT_MS\): canceling statement due to statement timeout$/);
      expect(r.stderr).not.to.match(/\n\s+at /);
      expect(r.summary).to.include({ success: false });
      expect(String(r.summary!.error)).to.match(/statement_timeout/);
      await app.release();
      expect((await counts(t.knex)).reports).to.equal(0);
    });
  });

  it('a normal dry run lives with a short idle-in-transaction limit (its one transaction is never idle for long)', async () => {
    for (let i = 0; i < 20; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    for (const job of ['generate-drift-reports', 'detect-inactivity']) {
      const r = await run([job, '--dry-run'], { ...sendgridEnv(sendgrid), DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '2000' });
      expect(r.code, r.stderr.slice(-2000)).to.equal(0);
      expect(r.summary).to.include({ dryRun: true, success: true });
    }
    expect((await counts(t.knex)).signals).to.equal(0);
  });

  it("keeps the run lock's connection through a server-wide idle_session_timeout while the run works", async () => {
    for (let i = 0; i < 6; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    const dbName = new URL(t.url!).pathname.slice(1);
    await t.knex.raw(`alter database ${dbName} set idle_session_timeout = '1s'`);
    try {
      // The nudges go as one request (SendGrid personalizations), answered after 3.5 s:
      // the run lasts well over the 1 s idle limit.
      sendgrid.delay(3500);
      const r = await run(['detect-inactivity'], { ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '1' }) });
      expect(r.code, r.stderr.slice(-2000)).to.equal(0);
      expect(Number(r.summary!.durationMs)).to.be.above(3000);
      expect(r.stderr).not.to.include('run:lock-lost');
    } finally {
      sendgrid.delay(0);
      await t.knex.raw(`alter database ${dbName} reset idle_session_timeout`);
    }
  });
});
