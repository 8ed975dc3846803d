/**
 * Shards that overlap by mistake: at the same time, one run with SHARD_COUNT=1
 * (every item), one with SHARD_COUNT=2 SHARD_INDEX=1 and one with SHARD_COUNT=3
 * SHARD_INDEX=2. Their lock keys differ (job:0, job:1, job:2), so nothing stops
 * them but the unique keys underneath: no duplicate signals, ledger entries,
 * reports or emails. (SHARD_COUNT=2 SHARD_INDEX=0 would share the lock of the
 * unsharded run, `job:0`, and exit at once with alreadyRunning.)
 *
 * Checked able to fail: without `on conflict (company_id, period_start) do nothing`
 * in insertDriftReport (lib/sql/drift.ts) the drift case fails (racing inserts end
 * as item errors, exit 1).
 */
import { expect } from 'chai';
import { type TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli } from '../support/run.ts';
import { type SendGridServer } from '../support/sendgrid-server.ts';
import { counts, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

const SHARDINGS = [{ SHARD_COUNT: '1' }, { SHARD_COUNT: '2', SHARD_INDEX: '1' }, { SHARD_COUNT: '3', SHARD_INDEX: '2' }];

describe('faults: overlapping shards run at once (PostgreSQL, real CLI)', function () {
  this.timeout(90_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));

  const runAll = (job: string) =>
    Promise.all(SHARDINGS.map((shard) => runCli([job, '--now', NOW.toISOString()], { env: { DATABASE_URL: t.url!, ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '4' }), ...shard } })));

  it('detect-inactivity: one signal, one SIGNAL_CREATED entry and one nudge per owner', async () => {
    const USERS = 40;
    for (let i = 0; i < USERS; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    sendgrid.delay(30);
    const results = await runAll('detect-inactivity');
    for (const r of results) {
      expect(r.code, r.stderr.slice(-2000)).to.equal(0);
      expect(r.summary).not.to.have.property('alreadyRunning');
    }
    expect(results.reduce((sum, r) => sum + Number(r.summary!.signalsCreated), 0)).to.equal(USERS);
    const c = await counts(t.knex);
    expect(c.signals).to.equal(USERS);
    expect(c.ledger).to.deep.equal({ SIGNAL_CREATED: USERS });
    expect(c.emails).to.deep.equal({ SENT: USERS });
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(sendgrid.accepted()).to.have.length(USERS);
  });

  it('generate-drift-reports: one report, one ledger entry and one email per company', async () => {
    const COMPANIES = 40;
    for (let i = 0; i < COMPANIES; i++) await anOwnedCompany(t.knex);
    sendgrid.delay(30);
    const results = await runAll('generate-drift-reports');
    for (const r of results) {
      expect(r.code, r.stderr.slice(-2000)).to.equal(0);
      expect(r.summary).not.to.have.property('alreadyRunning');
    }
    expect(results.reduce((sum, r) => sum + Number(r.summary!.generated), 0)).to.equal(COMPANIES);
    const c = await counts(t.knex);
    expect(c.reports).to.equal(COMPANIES);
    expect(c.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: COMPANIES });
    expect(c.emails).to.deep.equal({ SENT: COMPANIES });
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(sendgrid.accepted()).to.have.length(COMPANIES);
  });

  it('SHARD_COUNT=2 SHARD_INDEX=0 shares the unsharded run\'s lock (job:0): one of the two exits at once, nothing twice', async () => {
    for (let i = 0; i < 20; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    sendgrid.delay(100);
    const results = await Promise.all([{ SHARD_COUNT: '1' }, { SHARD_COUNT: '2', SHARD_INDEX: '0' }].map((shard) =>
      runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: { DATABASE_URL: t.url!, ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2' }), ...shard } })));
    expect(results.map((r) => r.code)).to.deep.equal([0, 0]);
    const locked = results.filter((r) => r.summary?.alreadyRunning === true);
    expect(locked.length).to.be.at.most(1); // when their runs did not overlap in time, both ran
    // Whatever ran did its items once; a locked-out unsharded run leaves the other
    // half to the next run (as a manual run during a scheduled one does).
    const created = results.reduce((sum, r) => sum + Number(r.summary!.signalsCreated ?? 0), 0);
    const c = await counts(t.knex);
    expect(c.signals).to.equal(created);
    expect(c.ledger).to.deep.equal({ SIGNAL_CREATED: created });
    expect(c.emails).to.deep.equal({ SENT: created });
    expect(maxPerKey(sendgrid)).to.equal(1);
    // The next run (no overlap) finishes: every owner once.
    const next = await runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: { DATABASE_URL: t.url!, ...sendgridEnv(sendgrid) } });
    expect(next.code).to.equal(0);
    expect((await counts(t.knex)).signals).to.equal(20);
    expect(maxPerKey(sendgrid)).to.equal(1);
  });
});
