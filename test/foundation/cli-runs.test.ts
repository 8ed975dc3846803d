/**
 * Real processes, real PostgreSQL: SIGTERM in the middle of a run, and two runs of
 * the same job started together. detect-inactivity is the job under test, emailing
 * through a loopback SendGrid slowed down so the run is long enough to interrupt.
 */
import { expect } from 'chai';
import { createTestDb, type TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli } from '../support/run.ts';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';

describe('runs as processes (PostgreSQL)', function () {
  this.timeout(120_000);
  let t: TestDb;
  let sendgrid: SendGridServer;
  const USERS = 60;

  before(async () => {
    t = await createTestDb('postgres');
    sendgrid = await startSendGridServer();
  });
  after(async () => {
    await sendgrid.close();
    await t.close();
  });
  beforeEach(async () => {
    await t.truncate();
    sendgrid.recover();
    for (let i = 0; i < USERS; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
  });

  // LOG_LEVEL debug: the SIGTERM test waits for a per-email `email:sent` line (debug level).
  const env = () => ({ DATABASE_URL: t.url!, SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url, EMAIL_CONCURRENCY: '2', LOG_LEVEL: 'debug' });
  const counts = async () => ({
    signals: Number((await t.knex('signals').count({ n: '*' }))[0]!.n),
    ledger: Number((await t.knex('value_ledger_entries').count({ n: '*' }))[0]!.n),
    sent: Number((await t.knex('email_log').where({ status: 'SENT' }).count({ n: '*' }))[0]!.n),
    pending: Number((await t.knex('email_log').where({ status: 'PENDING' }).count({ n: '*' }))[0]!.n),
  });

  it('SIGTERM mid-run: exit 143, nothing half-written, and a rerun finishes the rest without duplicates', async () => {
    sendgrid.delay(150);
    let signalled = false;
    const first = await runCli(['detect-inactivity', '--now', NOW.toISOString()], {
      env: env(),
      onStderr: (text, child) => {
        if (!signalled && text.includes('email:sent')) {
          signalled = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(first.code, first.stderr.slice(-2000)).to.equal(143);
    expect(first.summary).to.include({ success: false, interrupted: true });
    expect(first.stdout.trim().split('\n')).to.have.length(1);
    const mid = await counts();
    expect(mid.sent).to.be.within(1, USERS - 1);
    expect(mid.pending).to.equal(0); // emails in hand were finished, not abandoned
    expect(mid.ledger).to.equal(mid.signals); // every signal has its ledger entry
    const runs = await t.knex('exitosx_cron.runs').pluck('status');
    expect(runs).to.deep.equal(['interrupted']);

    sendgrid.delay(0);
    const second = await runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: env() });
    expect(second.code, second.stderr.slice(-2000)).to.equal(0);
    const end = await counts();
    expect(end).to.deep.equal({ signals: USERS, ledger: USERS, sent: USERS, pending: 0 });
    expect(sendgrid.accepted()).to.have.length(USERS); // nobody emailed twice
  });

  it('two runs started together: one does the work, the other exits 0 at once saying the job is running', async () => {
    sendgrid.delay(50);
    const [a, b] = await Promise.all([runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: env() }), runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: env() })]);
    expect([a.code, b.code]).to.deep.equal([0, 0]);
    const locked = [a, b].filter((r) => r.summary?.alreadyRunning === true);
    expect(locked, `${a.stdout}\n${b.stdout}`).to.have.length(1);
    expect(locked[0]!.stderr).to.match(/run:locked/);
    const worker = [a, b].find((r) => r !== locked[0])!;
    expect(worker.summary).to.include({ signalsCreated: USERS, emailsSent: USERS });
    expect(await counts()).to.deep.equal({ signals: USERS, ledger: USERS, sent: USERS, pending: 0 });
  });
});
