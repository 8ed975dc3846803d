/**
 * The metrics publisher against a real Pushgateway: what every exit path pushes,
 * the grouping key, the last success surviving a failure, dry runs pushing nothing,
 * and a failing push never changing the run's outcome.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { loadConfig } from '../../lib/config.ts';
import { tryLock } from '../../lib/runtime/lock.ts';
import { runJob } from '../../lib/runtime/run.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import { createMetricsPublisher, summaryCounts } from '../../lib/telemetry/metrics.ts';
import { summaryMetricName } from '../../lib/telemetry/names.ts';
import { backends, createTestDb, eachBackend } from '../support/db.ts';
import { aCompany, anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess } from '../support/run.ts';
import { freePort, probeJob, pushgatewaySamples, requireBinary, startPushgateway, tempDir, wipePushgateway, type ServerHandle } from './support.ts';

describe('metric names from summary fields', () => {
  it('maps camelCase summary fields to snake_case metric names under exitosx_cron_', () => {
    expect(summaryMetricName('signalsCreated')).to.equal('exitosx_cron_signals_created');
    expect(summaryMetricName('emailsSent')).to.equal('exitosx_cron_emails_sent');
    expect(summaryMetricName('generated')).to.equal('exitosx_cron_generated');
    expect(summaryMetricName('needsReauth')).to.equal('exitosx_cron_needs_reauth');
    expect(summaryMetricName('integrationsChecked')).to.equal('exitosx_cron_integrations_checked');
    expect(summaryMetricName('HTTPRetries')).to.equal('exitosx_cron_http_retries');
    expect(summaryMetricName('periods', 'created')).to.equal('exitosx_cron_periods_created');
  });

  it('publishes numeric fields (and one level of nested counts), not flags, text, lists or durationMs', () => {
    const counts = summaryCounts({
      success: true, job: 'sync-quickbooks', runId: 'r', dryRun: false, synced: 3, failed: 1, errors: 0,
      periods: { created: 24, updated: 2, note: 'x' }, results: [{ periodsCreated: 1 }], durationMs: 1234, periodStart: '2026-02-01',
    });
    expect(Object.fromEntries(counts.map((c) => [c.metric, c.value]))).to.deep.equal({
      exitosx_cron_synced: 3,
      exitosx_cron_failed: 1,
      exitosx_cron_errors: 0,
      exitosx_cron_periods_created: 24,
      exitosx_cron_periods_updated: 2,
    });
  });
});

describe('metrics push to a real Pushgateway', function () {
  this.timeout(30_000);
  let gateway: ServerHandle | undefined;

  before(async function () {
    const bin = requireBinary(this, 'pushgateway');
    gateway = await startPushgateway(bin);
  });
  after(async () => {
    await gateway?.stop();
  });
  beforeEach(async () => {
    if (gateway) await wipePushgateway(gateway.url);
  });

  const env = (over: Record<string, string> = {}) => ({ PUSHGATEWAY_URL: gateway!.url, POD_NAME: 'exitosx-detect-inactivity-29000000-abcde', JOB_NAME: 'exitosx-detect-inactivity-29000000', ...over });
  const publishers = (over: Record<string, string> = {}) => [createMetricsPublisher(loadConfig(env(over)))];
  const ours = async () => (await pushgatewaySamples(gateway!.url)).filter((s) => s.labels.job === 'exitosx_cron');
  const sample = (samples: Awaited<ReturnType<typeof ours>>, name: string, labels: Record<string, string> = {}) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

  const inactivity = (table = 'companies', onItem?: (i: number) => void) =>
    probeJob({
      name: 'detect-inactivity',
      table: () => table,
      onItem,
      summary: (n) => ({ usersChecked: n, signalsCreated: n, signalsEscalated: 1, signalsResolved: 0, emailsSent: n, emailsSuppressed: 1, skipped: 0 }),
    });

  eachBackend((db) => {
    beforeEach(async () => {
      await db().truncate();
      for (let i = 0; i < 3; i++) await aCompany(db().knex);
    });

    it('a successful run pushes run metrics, summary counts and the item histogram, grouped by job, cron_job and shard only', async () => {
      const before = Date.now() / 1000;
      const result = await runInProcess(inactivity(), {}, { database: db().database, env: env(), publishers: publishers() });
      expect(result.exitCode).to.equal(0);
      const samples = await ours();
      const group = { job: 'exitosx_cron', cron_job: 'detect-inactivity', shard: '0' };
      expect(sample(samples, 'exitosx_cron_run_success', group)?.value).to.equal(1);
      expect(sample(samples, 'exitosx_cron_run_exit_code', group)?.value).to.equal(0);
      expect(sample(samples, 'exitosx_cron_last_success_timestamp_seconds', group)?.value).to.be.within(before, Date.now() / 1000);
      expect(sample(samples, 'exitosx_cron_last_run_timestamp_seconds', group)?.value).to.be.within(before, Date.now() / 1000);
      expect(sample(samples, 'exitosx_cron_run_duration_seconds', group)?.value).to.be.within(0, 30);
      expect(sample(samples, 'exitosx_cron_items_total', { ...group, outcome: 'checked' })?.value).to.equal(3);
      expect(sample(samples, 'exitosx_cron_item_duration_seconds_count', group)?.value).to.equal(3);
      expect(sample(samples, 'exitosx_cron_item_duration_seconds_bucket', { ...group, le: '+Inf' })?.value).to.equal(3);
      expect(sample(samples, 'exitosx_cron_signals_created', group)?.value).to.equal(3);
      expect(sample(samples, 'exitosx_cron_emails_suppressed', group)?.value).to.equal(1);
      expect(sample(samples, 'exitosx_cron_errors', group)?.value).to.equal(0);
      // Never the pod: one group per CronJob shard, replaced by every run.
      for (const s of samples) expect(Object.keys(s.labels).sort()).to.satisfy((keys: string[]) => keys.every((k) => ['cron_job', 'instance', 'job', 'le', 'outcome', 'shard'].includes(k)));
      expect(JSON.stringify(samples)).not.to.include('abcde');
      expect(result.logs.find((l) => l.message === 'metrics:pushed')).to.include({ method: 'PUT' });
    });

    it('a failed run (exit 1) pushes run_success 0 and its errors, and keeps the last success timestamp', async () => {
      await runInProcess(inactivity(), {}, { database: db().database, env: env(), publishers: publishers() });
      const group = { cron_job: 'detect-inactivity', shard: '0' };
      const lastSuccess = sample(await ours(), 'exitosx_cron_last_success_timestamp_seconds', group)!.value;

      const failed = await runInProcess(inactivity('no_such_table'), {}, { database: db().database, env: env(), publishers: publishers() });
      expect(failed.exitCode).to.equal(1);
      expect(failed.logs.find((l) => l.message === 'metrics:pushed')).to.include({ method: 'POST' });
      const samples = await ours();
      expect(sample(samples, 'exitosx_cron_run_success', group)?.value).to.equal(0);
      expect(sample(samples, 'exitosx_cron_run_exit_code', group)?.value).to.equal(1);
      expect(sample(samples, 'exitosx_cron_last_success_timestamp_seconds', group)?.value).to.equal(lastSuccess);
      expect(sample(samples, 'exitosx_cron_last_run_timestamp_seconds', group)?.value).to.be.greaterThan(lastSuccess);
      expect(sample(samples, 'exitosx_cron_items_total', { ...group, outcome: 'error' })?.value).to.equal(3);
      // items_total is replaced as a whole: the success's outcome is gone.
      expect(sample(samples, 'exitosx_cron_items_total', { ...group, outcome: 'checked' })).to.equal(undefined);
    });

    it('a run stopped by SIGTERM (exit 143) pushes run_success 0 and exit code 143', async () => {
      const controller = new AbortController();
      const result = await runInProcess(inactivity('companies', () => controller.abort(new Error('received SIGTERM'))), {}, {
        database: db().database, env: env(), publishers: publishers(), signal: controller.signal,
      });
      expect(result.exitCode).to.equal(143);
      const samples = await ours();
      expect(sample(samples, 'exitosx_cron_run_success', { cron_job: 'detect-inactivity' })?.value).to.equal(0);
      expect(sample(samples, 'exitosx_cron_run_exit_code', { cron_job: 'detect-inactivity' })?.value).to.equal(143);
      expect(sample(samples, 'exitosx_cron_last_success_timestamp_seconds')).to.equal(undefined);
    });

    it('a dry run pushes nothing', async () => {
      const result = await runInProcess(inactivity(), { dryRun: true }, { database: db().database, env: env(), publishers: publishers() });
      expect(result.exitCode).to.equal(0);
      expect(result.summary.dryRun).to.equal(true);
      expect(await ours()).to.deep.equal([]);
      expect(result.logs.map((l) => l.message)).not.to.include('metrics:pushed');
    });

    it('each shard pushes to its own group', async () => {
      await runInProcess(inactivity(), {}, { database: db().database, env: env({ SHARD_COUNT: '2', SHARD_INDEX: '1' }), publishers: publishers({ SHARD_COUNT: '2', SHARD_INDEX: '1' }) });
      const samples = await ours();
      expect(sample(samples, 'exitosx_cron_run_success', { cron_job: 'detect-inactivity', shard: '1' })?.value).to.equal(1);
      expect(sample(samples, 'exitosx_cron_run_success', { shard: '0' })).to.equal(undefined);
    });

    it('a push to an unreachable Pushgateway is logged and leaves the exit code alone', async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const ok = await runInProcess(inactivity(), {}, { database: db().database, env: env(), publishers: [createMetricsPublisher(loadConfig({ PUSHGATEWAY_URL: closed }))] });
      expect(ok.exitCode).to.equal(0);
      expect(ok.summary.success).to.equal(true);
      const failure = ok.logs.find((l) => l.message === 'metrics:push-failed');
      expect(failure, 'metrics:push-failed logged').to.exist;
      expect(failure!.level).to.equal('warn');
      expect(JSON.stringify(failure!.error)).to.include('ECONNREFUSED');

      const failed = await runInProcess(inactivity('no_such_table'), {}, { database: db().database, env: env(), publishers: [createMetricsPublisher(loadConfig({ PUSHGATEWAY_URL: closed }))] });
      expect(failed.exitCode).to.equal(1);
    });
  });

  it('through the command line: a real detect-inactivity run pushes its summary counts; a --dry-run pushes nothing', async function () {
    this.timeout(90_000);
    if (!backends().includes('postgres')) this.skip();
    const db = await createTestDb('postgres');
    const outbox = tempDir('outbox');
    try {
      await anOwnedCompany(db.knex, { daysInactive: 30 });
      const env = { DATABASE_URL: db.url, PUSHGATEWAY_URL: gateway!.url, EMAIL_OUTBOX_DIR: outbox };
      const dry = await runCli(['detect-inactivity', '--dry-run', '--now', NOW.toISOString()], { env });
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.summary?.dryRun).to.equal(true);
      expect(await ours()).to.deep.equal([]);

      const real = await runCli(['detect-inactivity', '--now', NOW.toISOString()], { env });
      expect(real.code, real.stderr).to.equal(0);
      const samples = await ours();
      const group = { cron_job: 'detect-inactivity', shard: '0' };
      expect(sample(samples, 'exitosx_cron_run_success', group)?.value).to.equal(1);
      expect(sample(samples, 'exitosx_cron_signals_created', group)?.value).to.equal(real.summary?.signalsCreated).and.to.equal(1);
      expect(sample(samples, 'exitosx_cron_users_checked', group)?.value).to.equal(1);
      expect(sample(samples, 'exitosx_cron_emails_sent', group)?.value).to.equal(real.summary?.emailsSent);
    } finally {
      await db.close();
      fs.rmSync(outbox, { recursive: true, force: true });
    }
  });

  it('a run that finds another run holding the lock pushes nothing (the holder will)', async function () {
    if (!backends().includes('postgres')) this.skip();
    const db = await createTestDb('postgres');
    const lock = await tryLock(db.database, 'detect-inactivity', 0);
    try {
      expect(lock).to.not.equal(null);
      const result = await runInProcess(inactivity(), {}, { database: db.database, env: env(), publishers: publishers() });
      expect(result.exitCode).to.equal(0);
      expect(result.summary.alreadyRunning).to.equal(true);
      expect(await ours()).to.deep.equal([]);
      expect(result.logs.find((l) => l.message === 'metrics:skipped')).to.exist;
    } finally {
      await lock?.release();
      await db.close();
    }
  });

  it('a Pushgateway that never answers is given up on after PUSHGATEWAY_TIMEOUT_MS, and the run still succeeds', async function () {
    // Accepts connections and reads requests, never responds.
    const sockets = new Set<net.Socket>();
    const silent = http.createServer(() => undefined);
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const log = createLogger({ level: 'debug', pretty: false, stream: new (await import('node:stream')).PassThrough() });
    const lines: Array<Record<string, unknown>> = [];
    log.on('data', (info: Record<string, unknown>) => lines.push(info));
    try {
      const publish = createMetricsPublisher(loadConfig({ PUSHGATEWAY_URL: url, PUSHGATEWAY_TIMEOUT_MS: '300' }));
      const { Tally } = await import('../../lib/runtime/items.ts');
      const started = performance.now();
      await publish(
        { job: 'detect-inactivity', runId: 'r1', shard: { count: 1, index: 0 }, dryRun: false, exitCode: 0, status: 'succeeded', startedAt: new Date(), durationSeconds: 1, summary: { success: true }, tally: new Tally() },
        log,
      );
      const elapsed = performance.now() - started;
      expect(elapsed).to.be.within(250, 2000);
      const failure = lines.find((l) => l.message === 'metrics:push-failed');
      expect(JSON.stringify(failure?.error)).to.match(/timed out after 300 ms/);
    } finally {
      log.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('a run whose database is unreachable (exit 3) still pushes its failure', async function () {
    const stream = new (await import('node:stream')).PassThrough();
    stream.resume();
    const log = createLogger({ level: 'error', pretty: false, stream });
    const config = loadConfig({ DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`, PUSHGATEWAY_URL: gateway!.url });
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write; // the one-line error the runtime prints
    let result;
    try {
      result = await runJob(inactivity(), { dryRun: false }, { config, log, signal: new AbortController().signal, stdout: () => undefined, publishers: [createMetricsPublisher(config)] });
    } finally {
      process.stderr.write = stderr;
      log.close();
    }
    expect(result.exitCode).to.equal(3);
    const samples = await ours();
    expect(sample(samples, 'exitosx_cron_run_success', { cron_job: 'detect-inactivity' })?.value).to.equal(0);
    expect(sample(samples, 'exitosx_cron_run_exit_code', { cron_job: 'detect-inactivity' })?.value).to.equal(3);
  });
});
