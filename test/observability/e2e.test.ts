/**
 * End to end with the real servers: a real Pushgateway and a real Prometheus (Debian
 * binaries on free loopback ports, 1 s scrape and evaluation) loading the suite's
 * alert rules and scraping the Pushgateway with honor_labels: true. Jobs run through
 * the real runtime and publisher; their failures are real (a table missing from the
 * database; the real detect-inactivity command with SendGrid unreachable; a push
 * the Pushgateway rejects). Prometheus is asked, as an SRE's
 * Grafana would, until the alerts go pending and clear, and every dashboard query
 * returns data.
 */
import { expect } from 'chai';
import { loadConfig } from '../../lib/config.ts';
import type { JobDefinition } from '../../lib/runtime/job.ts';
import { createMetricsPublisher } from '../../lib/telemetry/metrics.ts';
import { backends, createTestDb, type TestDb } from '../support/db.ts';
import { aCompany, anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess } from '../support/run.ts';
import {
  ALERTS_FILE,
  dashboardQueries,
  eventually,
  freePort,
  probeJob,
  promQuery,
  requireBinary,
  startPrometheus,
  startPushgateway,
  type ServerHandle,
} from './support.ts';

describe('observability end to end (real Pushgateway and Prometheus with the alert rules)', function () {
  this.timeout(90_000);
  let gateway: ServerHandle | undefined;
  let prometheus: ServerHandle | undefined;
  let db: TestDb | undefined;

  before(async function () {
    const pushgatewayBin = requireBinary(this, 'pushgateway');
    const prometheusBin = requireBinary(this, 'prometheus');
    gateway = await startPushgateway(pushgatewayBin);
    prometheus = await startPrometheus(prometheusBin, { pushgatewayUrl: gateway.url, ruleFiles: [ALERTS_FILE] });
    db = await createTestDb(backends()[0]!);
    for (let i = 0; i < 3; i++) await aCompany(db.knex);
  });

  after(async () => {
    await prometheus?.stop();
    await gateway?.stop();
    await db?.close();
  });

  /** Runs a job through the real runtime with the real metrics publisher. */
  const run = async (def: JobDefinition) => {
    const env = { PUSHGATEWAY_URL: gateway!.url, PUSHGATEWAY_TIMEOUT_MS: '2000' };
    return runInProcess(def, {}, { database: db!.database, env, publishers: [createMetricsPublisher(loadConfig(env))] });
  };
  const alerts = (name: string, cronJob: string) => promQuery(prometheus!.url, `ALERTS{alertname="${name}", cron_job="${cronJob}"}`);
  const activeAlert = async (name: string, cronJob: string) => {
    const res = await fetch(`${prometheus!.url}/api/v1/alerts`);
    const body = (await res.json()) as { data: { alerts: Array<{ labels: Record<string, string>; state: string; value: string }> } };
    return body.data.alerts.find((a) => a.labels.alertname === name && a.labels.cron_job === cronJob);
  };

  let missingTable = false;
  let newField = false;
  const inactivity = probeJob({
    name: 'detect-inactivity',
    table: () => (missingTable ? 'no_such_table' : 'companies'),
    summary: (n) => ({
      usersChecked: n, signalsCreated: n, signalsEscalated: 1, signalsResolved: 1, emailsSent: n, emailsSuppressed: 1, emailsFailed: 0, skipped: 0,
      ...(newField ? { nudgesQueued: n } : {}),
    }),
  });
  const drift = probeJob({
    name: 'generate-drift-reports',
    table: () => 'companies',
    summary: (n) => ({ periodStart: '2026-02-01T00:00:00.000Z', totalCompanies: n, generated: n, skipped: 0, emailsSent: n, emailsFailed: 1 }),
  });
  const quickbooks = probeJob({
    name: 'sync-quickbooks',
    table: () => 'companies',
    summary: (n) => ({ integrationsChecked: n, synced: n - 1, skipped: 0, failed: 1, needsReauth: 1, periodsCreated: 24, periodsUpdated: 2, results: [] }),
  });

  it('a failed run raises ExitosxCronRunFailed, and a successful rerun clears it', async () => {
    missingTable = true;
    const failed = await run(inactivity);
    expect(failed.exitCode).to.equal(1);
    expect(failed.summary.errors).to.equal(3);

    const alert = await eventually('ExitosxCronRunFailed pending or firing', async () => {
      const a = await activeAlert('ExitosxCronRunFailed', 'detect-inactivity');
      return a && ['pending', 'firing'].includes(a.state) ? a : undefined;
    });
    expect(alert.labels).to.include({ job: 'exitosx_cron', shard: '0', severity: 'warning' });
    expect(Number(alert.value), 'the alert value is the exit code').to.equal(1);
    // Three items are too few for the error-ratio alert (20 at least).
    expect(await alerts('ExitosxCronItemErrorRatioHigh', 'detect-inactivity')).to.deep.equal([]);
    // The silence alert does not fire either: no success yet is ExitosxCronNoSuccessOnRecord's, after 26h.
    expect(await alerts('ExitosxCronJobSilent', 'detect-inactivity')).to.deep.equal([]);

    missingTable = false;
    const ok = await run(inactivity);
    expect(ok.exitCode).to.equal(0);
    await eventually('ExitosxCronRunFailed to clear', async () => ((await alerts('ExitosxCronRunFailed', 'detect-inactivity')).length === 0 ? true : undefined));
    const lastSuccess = await promQuery(prometheus!.url, 'exitosx_cron_last_success_timestamp_seconds{cron_job="detect-inactivity"}');
    expect(lastSuccess).to.have.length(1);
  });

  it('the real detect-inactivity job with SendGrid unreachable: its failed emails raise ExitosxCronEmailsFailing through the CLI', async function () {
    if (db!.kind !== 'postgres') this.skip();
    await anOwnedCompany(db!.knex, { daysInactive: 30 });
    await anOwnedCompany(db!.knex, { daysInactive: 60 });
    const result = await runCli(['detect-inactivity', '--now', NOW.toISOString()], {
      env: {
        DATABASE_URL: db!.url,
        PUSHGATEWAY_URL: gateway!.url,
        SENDGRID_API_KEY: 'SG.e2e-test-key-0123456789.abcdefghijklmnopqrstuvwxyz',
        SENDGRID_API_URL: `http://127.0.0.1:${await freePort()}`,
        EMAIL_MAX_RETRIES: '1',
        EMAIL_TIMEOUT_MS: '1000',
      },
    });
    expect(result.summary?.emailsFailed, result.stderr.slice(-2000)).to.equal(2);
    expect(result.summary?.signalsCreated).to.equal(2);
    const alert = await eventually('ExitosxCronEmailsFailing firing for detect-inactivity', async () => {
      const a = await activeAlert('ExitosxCronEmailsFailing', 'detect-inactivity');
      return a?.state === 'firing' ? a : undefined;
    });
    expect(Number(alert.value)).to.equal(2);
    await db!.truncate();
    for (let i = 0; i < 3; i++) await aCompany(db!.knex);
  });

  it('a push the Pushgateway rejects raises ExitosxCronPushFailing without changing the run outcome, and clears once pushes work', async () => {
    // A group left by another version holds a metric under a name the job now reports
    // with another type: the Pushgateway refuses a push that would make it inconsistent.
    const legacy = `${gateway!.url}/metrics/job/exitosx_cron/cron_job/legacy/shard/0`;
    const seeded = await fetch(legacy, { method: 'PUT', body: '# TYPE exitosx_cron_nudges_queued counter\nexitosx_cron_nudges_queued 7\n' });
    expect(seeded.status).to.equal(200);

    newField = true;
    const result = await run(inactivity);
    expect(result.exitCode, 'the push failure does not change the exit code').to.equal(0);
    const failure = result.logs.find((l) => l.message === 'metrics:push-failed');
    expect(JSON.stringify(failure?.error)).to.match(/status 400/);

    const alert = await eventually('ExitosxCronPushFailing firing', async () => {
      const a = await activeAlert('ExitosxCronPushFailing', 'detect-inactivity');
      return a?.state === 'firing' ? a : undefined;
    });
    expect(alert.labels).to.include({ job: 'exitosx_cron', shard: '0' });

    // Every dashboard panel's query returns data, with all three jobs' metrics in.
    for (const def of [drift, quickbooks]) expect((await run(def)).exitCode).to.equal(0);
    for (const q of dashboardQueries()) {
      const rows = await eventually(`data for panel "${q.panel}" ${q.refId}: ${q.expr}`, async () => {
        const r = await promQuery(prometheus!.url, q.expr);
        return r.length > 0 ? r : undefined;
      });
      expect(rows.length, q.panel).to.be.greaterThan(0);
    }
    // The jobs' own counts arrived under their snake_case names.
    expect((await promQuery(prometheus!.url, 'exitosx_cron_needs_reauth{cron_job="sync-quickbooks"}'))[0]?.value[1]).to.equal('1');
    expect((await promQuery(prometheus!.url, 'exitosx_cron_generated{cron_job="generate-drift-reports"}'))[0]?.value[1]).to.equal('3');
    await eventually('ExitosxCronEmailsFailing for the drift job', async () => (await activeAlert('ExitosxCronEmailsFailing', 'generate-drift-reports')) ?? undefined);

    // Remove the stale group (RUNBOOK: ExitosxCronPushFailing) and run again.
    expect((await fetch(legacy, { method: 'DELETE' })).status).to.equal(202);
    expect((await run(inactivity)).logs.find((l) => l.message === 'metrics:pushed')).to.include({ method: 'PUT' });
    await eventually('ExitosxCronPushFailing to clear', async () => ((await alerts('ExitosxCronPushFailing', 'detect-inactivity')).length === 0 ? true : undefined));
  });
});
