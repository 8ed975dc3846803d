/**
 * SIGTERM in the middle of generate-drift-reports and sync-quickbooks (the real
 * command line; detect-inactivity's is in test/foundation/cli-runs.test.ts): exit
 * 143 within a few seconds, the items in hand finished or rolled back (no report
 * without its ledger entry, no financial periods without the integration's status),
 * the run's metrics pushed to a real Pushgateway with run_exit_code 143, and a
 * rerun finishes the rest without duplicates.
 */
import { expect } from 'chai';
import driftJob from '../../jobs/generate-drift-reports.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import type { TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess } from '../support/run.ts';
import type { SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { BINARIES, startPushgateway, type ServerHandle } from '../observability/support.ts';
import { after as onEvent, counts, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

/** The value of exitosx_cron_run_exit_code for a job on the Pushgateway, if pushed. */
async function pushedExitCode(gateway: ServerHandle | undefined, job: string): Promise<number | undefined> {
  if (!gateway) return undefined;
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('exitosx_cron_run_exit_code{') && l.includes(`cron_job="${job}"`));
  return line ? Number(line.trim().split(/\s+/).pop()) : undefined;
}

describe('faults: SIGTERM mid-run (PostgreSQL, real CLI)', function () {
  this.timeout(90_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  let gateway: ServerHandle | undefined;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));
  before(async () => {
    const bin = BINARIES.pushgateway();
    if (bin) gateway = await startPushgateway(bin);
    else if (process.env.CI) throw new Error('prometheus-pushgateway not found; CI must run this test');
    else console.warn('      (prometheus-pushgateway not found: the metrics push is not checked)');
  });
  after(async () => {
    await gateway?.stop();
  });
  const pushEnv = (): Record<string, string> => (gateway ? { PUSHGATEWAY_URL: gateway.url } : {});

  /** Runs the CLI, sends SIGTERM after the `n`th `event` log line, and checks it stopped with 143 within 5 s, as an interrupted run. */
  const terminatedAfter = async (args: string[], env: Record<string, string>, event: string, n: number) => {
    let signalledAt = 0;
    const result = await runCli([...args, '--now', NOW.toISOString()], {
      env: { DATABASE_URL: t.url!, ...env },
      onStderr: onEvent(event, n, (child) => {
        signalledAt = Date.now();
        child.kill('SIGTERM');
      }),
    });
    const stoppedIn = Date.now() - signalledAt;
    expect(result.code, result.stderr.slice(-2000)).to.equal(143);
    expect(stoppedIn).to.be.below(5000);
    expect(result.summary).to.include({ success: false, interrupted: true });
    return result;
  };

  it('generate-drift-reports: exit 143 soon after, each stored report with its ledger entry; the rerun does the rest', async () => {
    const COMPANIES = 25;
    for (let i = 0; i < COMPANIES; i++) await anOwnedCompany(t.knex);
    sendgrid.delay(200);
    await terminatedAfter(['generate-drift-reports'], { ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '2' }), ...pushEnv() }, 'email:sent', 4);
    const mid = await counts(t.knex);
    // The companies are one page: its reports commit together, before their emails.
    expect(mid.reports).to.be.within(4, COMPANIES);
    expect(mid.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: mid.reports });
    expect(mid.emails.PENDING ?? 0).to.equal(0); // the emails in hand were finished
    // A report stored but not yet emailed is owed (emailed_at null), never lost.
    const owed = Number((await t.knex('drift_reports').whereNull('emailed_at').count({ n: '*' }))[0]!.n);
    expect(mid.emails.SENT).to.equal(mid.reports - owed);
    expect(await t.knex('exitosx_cron.runs').pluck('status')).to.deep.equal(['interrupted']);
    if (gateway) expect(await pushedExitCode(gateway, 'generate-drift-reports')).to.equal(143);

    sendgrid.delay(0);
    const rerun = await runInProcess(driftJob, {}, { database: t.database, env: sendgridEnv(sendgrid) });
    expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
    const end = await counts(t.knex);
    expect(end.reports).to.equal(COMPANIES);
    expect(end.ledger).to.deep.equal({ DRIFT_REPORT_GENERATED: COMPANIES });
    expect(end.emails).to.deep.equal({ SENT: COMPANIES });
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(sendgrid.accepted()).to.have.length(COMPANIES);
  });

  describe('sync-quickbooks', () => {
    let server: LoopbackQuickBooks;
    beforeEach(async () => {
      server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    });
    afterEach(() => server.close());

    it('exit 143 soon after; each integration synced whole (periods, status, ledger) or untouched; the rerun syncs the rest', async () => {
      const N = 16;
      const integrations = [];
      for (let i = 0; i < N; i++) integrations.push(await anIntegration(t.knex, server));
      server.behave('*', { latencyMs: 300 });
      await terminatedAfter(['sync-quickbooks'], { ...qbEnv(server, { QUICKBOOKS_CONCURRENCY: '3', LOG_LEVEL: 'debug' }), ...pushEnv() } as Record<string, string>, 'qbo:sync:done', 3);
      // Whole or nothing per integration: status SUCCESS ⇔ its 25 periods and its ledger entry.
      let done = 0;
      for (const i of integrations) {
        const row = await t.knex('quickbooks_integrations').where({ id: i.id }).first();
        const periods = Number((await t.knex('financial_periods').where({ company_id: i.companyId }).count({ n: '*' }))[0]!.n);
        const entries = Number((await t.knex('value_ledger_entries').where({ company_id: i.companyId }).count({ n: '*' }))[0]!.n);
        if (row.last_sync_status === 'SUCCESS') {
          done++;
          expect([periods, entries]).to.deep.equal([25, 1]);
        } else {
          expect([row.last_sync_status, periods, entries]).to.deep.equal([null, 0, 0]);
        }
      }
      expect(done).to.be.within(3, N - 1);
      expect(await t.knex('signals').count({ n: '*' }).first()).to.deep.equal({ n: 0 }); // a stop is not a sync failure
      expect(await t.knex('exitosx_cron.runs').pluck('status')).to.deep.equal(['interrupted']);
      if (gateway) expect(await pushedExitCode(gateway, 'sync-quickbooks')).to.equal(143);

      server.behave('*', { latencyMs: 0 });
      const rerun = await runInProcess(syncJob, {}, { database: t.database, env: qbEnv(server) });
      expect(rerun.exitCode, JSON.stringify(rerun.summary)).to.equal(0);
      expect(rerun.summary).to.include({ synced: N - done, skipped: done, failed: 0 });
      const end = await counts(t.knex);
      expect(end.periods).to.equal(N * 25);
      expect(end.ledger).to.deep.equal({ FINANCIALS_SYNCED: N });
    });
  });
});
