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
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { type TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli } from '../support/run.ts';
import { type SendGridServer } from '../support/sendgrid-server.ts';
import { counts, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

/**
 * A slow SendGrid: a loopback proxy that holds every request until `open()`, then
 * hands it to the loopback SendGrid and relays the answer. `arrived` settles when
 * the first request comes in, i.e. when a run is inside its lock, sending.
 */
async function heldSendGrid(target: SendGridServer): Promise<{ url: string; arrived: Promise<void>; open: () => void; close: () => Promise<void> }> {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let first!: () => void;
  const arrived = new Promise<void>((r) => (first = r));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      first();
      void gate
        .then(() => fetch(`${target.url}${req.url ?? '/'}`, { method: req.method, headers: { authorization: req.headers.authorization ?? '', 'content-type': req.headers['content-type'] ?? 'application/json' }, body: Buffer.concat(chunks) }))
        .then(async (answer) => {
          const headers: Record<string, string> = {};
          for (const name of ['content-type', 'x-message-id', 'retry-after']) if (answer.headers.has(name)) headers[name] = answer.headers.get(name)!;
          res.writeHead(answer.status, headers).end(Buffer.from(await answer.arrayBuffer()));
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived,
    open,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

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

  it('SHARD_COUNT=2 SHARD_INDEX=0 shares the unsharded run\'s lock (job:0): started while the unsharded run sends, it exits at once, nothing twice', async function () {
    this.timeout(180_000);
    for (let i = 0; i < 20; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
    // The unsharded run's emails are held until the other run has exited: the two overlap for certain.
    const held = await heldSendGrid(sendgrid);
    try {
      const env = (shard: Record<string, string>, over: Record<string, string> = {}) => ({ DATABASE_URL: t.url!, ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2', ...over }), ...shard });
      const unsharded = runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: env({ SHARD_COUNT: '1' }, { SENDGRID_API_URL: held.url, EMAIL_TIMEOUT_MS: '150000' }), timeoutMs: 150_000 });
      await held.arrived; // it holds its lock (job:0) and is sending
      // (Straight to SendGrid: were the lock not shared, this run would send and finish, and fail the check below.)
      const sharded = await runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: env({ SHARD_COUNT: '2', SHARD_INDEX: '0' }) });
      held.open();
      const results = [await unsharded, sharded];
      expect(results.map((r) => r.code), results.map((r) => r.stderr.slice(-1000)).join('\n')).to.deep.equal([0, 0]);
      // Exactly one was locked out: the one that came second.
      expect(results.map((r) => r.summary?.alreadyRunning === true)).to.deep.equal([false, true]);
      expect(sharded.summary).to.include({ success: true, alreadyRunning: true });
      expect(sharded.stderr).to.contain('"run:locked"');
      // The unsharded run did every owner, once.
      expect(results[0]!.summary).to.include({ signalsCreated: 20 });
      const c = await counts(t.knex);
      expect(c.signals).to.equal(20);
      expect(c.ledger).to.deep.equal({ SIGNAL_CREATED: 20 });
      expect(c.emails).to.deep.equal({ SENT: 20 });
      expect(maxPerKey(sendgrid)).to.equal(1);
      expect(sendgrid.accepted()).to.have.length(20);
      // The next run (no overlap) has nothing left to do.
      const next = await runCli(['detect-inactivity', '--now', NOW.toISOString()], { env: { DATABASE_URL: t.url!, ...sendgridEnv(sendgrid) } });
      expect(next.code).to.equal(0);
      expect(next.summary).to.include({ signalsCreated: 0 });
      expect((await counts(t.knex)).signals).to.equal(20);
      expect(maxPerKey(sendgrid)).to.equal(1);
    } finally {
      held.open();
      await held.close();
    }
  });
});
