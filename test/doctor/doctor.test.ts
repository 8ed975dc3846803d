/**
 * `exitosx-cron doctor` against real PostgreSQL, a real Pushgateway and the loopback
 * SendGrid, Intuit, OTLP collector and Kubernetes API: healthy, then broken one
 * thing at a time, each failure one clear line; it changes nothing, and no secret
 * reaches its output.
 */
import { expect } from 'chai';
import { JOB_NAMES, JOBS } from '../../jobs/index.ts';
import { loadConfig } from '../../lib/config.ts';
import { productStatements } from '../../lib/db/migrate.ts';
import { openPostgresUrl } from '../../lib/db/connect.ts';
import type { CheckResult } from '../../lib/doctor/check.ts';
import { DOCTOR_FAILED, runDoctor, type DoctorReport } from '../../lib/doctor/doctor.ts';
import type { JobDefinition } from '../../lib/runtime/job.ts';
import { freePort, pushgatewaySamples, requireBinary } from '../observability/support.ts';
import { KEY, OLD_KEY } from '../quickbooks/support.ts';
import { adminQuery, createTestDb, urlFor } from '../support/db.ts';
import { NOW } from '../support/run.ts';
import { NAMESPACE, snapshot, startInstallation, type Installation } from './support.ts';

const ORDER = ['configuration', 'database', 'product-columns', 'suite-migrations', 'token-key', 'sendgrid', 'quickbooks', 'pushgateway', 'otlp', 'kubernetes'];

describe('exitosx-cron doctor', function () {
  this.timeout(120_000);
  let inst: Installation;
  let jobs: JobDefinition[];

  before(async function () {
    const bin = requireBinary(this, 'pushgateway');
    inst = await startInstallation(bin);
    jobs = await Promise.all(JOB_NAMES.map((n) => JOBS[n]()));
  });
  after(async () => {
    await inst?.close();
  });

  const doctor = (over: Record<string, string | undefined> = {}): Promise<DoctorReport> => runDoctor(loadConfig(inst.env(over)), { jobs, now: NOW });
  const check = (r: DoctorReport, name: string): CheckResult => r.checks.find((c) => c.check === name)!;
  const statuses = (r: DoctorReport) => Object.fromEntries(r.checks.map((c) => [c.check, c.status]));
  /** Every check ok but `broken`, which failed: the one line that says what is wrong. */
  const onlyFailure = (r: DoctorReport, broken: string): CheckResult => {
    const failed = r.checks.filter((c) => c.status === 'fail').map((c) => c.check);
    expect(failed, JSON.stringify(r.checks, null, 1)).to.deep.equal([broken]);
    expect(r.exitCode).to.equal(DOCTOR_FAILED);
    return check(r, broken);
  };

  it('says ok for every check of a healthy installation, in a fixed order, exit 0', async () => {
    const r = await doctor();
    expect(r.checks.map((c) => c.check)).to.deep.equal(ORDER);
    expect(statuses(r), JSON.stringify(r.checks, null, 1)).to.deep.equal(Object.fromEntries(ORDER.map((n) => [n, 'ok'])));
    expect(r.exitCode).to.equal(0);
    expect(check(r, 'database').detail).to.match(/^reachable at 127\.0\.0\.1:5432\/exitosx_t_\w+ \(PostgreSQL \d+/);
    expect(check(r, 'token-key').detail).to.equal(`TOKEN_ENCRYPTION_KEY decrypts the stored refresh token of integration ${inst.integrationId}`);
    expect(check(r, 'sendgrid').detail).to.include('mail.send');
    expect(check(r, 'kubernetes').detail).to.equal(`the ServiceAccount may get jobs.batch, patch jobs.batch, create events in namespace ${NAMESPACE}`);
    for (const c of r.checks) expect(c.detail, c.check).not.to.include('\n');
  });

  it('changes nothing: no row, no table, no email, no token refresh, no Job patch or Event, no metric, no span', async () => {
    const before = await snapshot(inst.db.knex);
    const tokenCalls = inst.quickbooks.tokenStats.requests;
    const scopeCalls = inst.sendgrid.scopeRequests;
    const reviews = inst.kube.accessReviews.length;
    await doctor();
    expect(await snapshot(inst.db.knex)).to.equal(before);
    expect(inst.sendgrid.requests, 'mail/send requests').to.deep.equal([]);
    expect(inst.sendgrid.scopeRequests - scopeCalls).to.equal(1);
    expect(inst.quickbooks.tokenStats.requests - tokenCalls, 'one token call').to.equal(1);
    expect(inst.quickbooks.tokenStats.refreshed).to.equal(0);
    expect(inst.quickbooks.issuedRefreshTokens).to.deep.equal([]);
    expect(inst.kube.accessReviews.length - reviews).to.equal(3);
    expect(inst.kube.accessReviews.at(-1)).to.include({ namespace: NAMESPACE });
    expect(inst.kube.patches).to.deep.equal([]);
    expect(inst.kube.events).to.deep.equal([]);
    expect((await pushgatewaySamples(inst.pushgateway.url)).filter((s) => s.name.startsWith('exitosx_cron_'))).to.deep.equal([]);
    expect(inst.collector.spans).to.deep.equal([]);
  });

  it('fails sendgrid alone for a wrong key (401) and for a key that may not send (no mail.send)', async () => {
    const wrong = onlyFailure(await doctor({ SENDGRID_API_KEY: 'SG.wrong-key-0123456789.abcdefghijklmnop' }), 'sendgrid');
    expect(wrong.detail).to.match(/^SENDGRID_API_KEY rejected: SendGrid answered 401/);
    inst.sendgrid.setScopes(['alerts.read', 'stats.read']);
    try {
      const cannot = onlyFailure(await doctor(), 'sendgrid');
      expect(cannot.detail).to.equal('SENDGRID_API_KEY is valid but may not send: its 2 scopes lack mail.send (give the key the Mail Send permission)');
    } finally {
      inst.sendgrid.recover();
    }
  });

  it('fails database when it is unreachable, and skips what needs it', async () => {
    const port = await freePort();
    const r = await doctor({ DATABASE_URL: `postgres://cron:pw-db-0123@127.0.0.1:${port}/exitosx` });
    expect(check(r, 'database')).to.include({ status: 'fail' });
    expect(check(r, 'database').detail).to.match(new RegExp(`^database unreachable at 127\\.0\\.0\\.1:${port}/exitosx: .*ECONNREFUSED`));
    expect(statuses(r)).to.include({ 'product-columns': 'skipped', 'suite-migrations': 'skipped', 'token-key': 'skipped', sendgrid: 'ok', quickbooks: 'ok' });
    expect(r.exitCode).to.equal(DOCTOR_FAILED);
  });

  it('fails quickbooks alone when Intuit rejects the app secret (invalid_client)', async () => {
    const r = await doctor({ QUICKBOOKS_CLIENT_SECRET: 'not-the-secret-0123456789' });
    expect(onlyFailure(r, 'quickbooks').detail).to.equal('Intuit rejected the app credentials (invalid_client): check QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET');
  });

  it('fails token-key alone for a key that cannot decrypt the stored token; a rotation in progress is ok', async () => {
    const r = await doctor({ TOKEN_ENCRYPTION_KEY: OLD_KEY.toString('base64') });
    expect(onlyFailure(r, 'token-key').detail).to.match(new RegExp(`^the stored refresh token of integration ${inst.integrationId} cannot be decrypted with TOKEN_ENCRYPTION_KEY`));
    const rotating = await doctor({ TOKEN_ENCRYPTION_KEY: OLD_KEY.toString('base64'), TOKEN_ENCRYPTION_KEY_PREVIOUS: KEY.toString('base64') });
    expect(check(rotating, 'token-key')).to.include({ status: 'ok' });
    expect(check(rotating, 'token-key').detail).to.match(/^only TOKEN_ENCRYPTION_KEY_PREVIOUS decrypts/);
  });

  it('fails pushgateway and otlp when they cannot be reached or do not speak their protocol', async () => {
    const port = await freePort();
    const r = await doctor({ PUSHGATEWAY_URL: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_ENDPOINT: `${inst.collector.endpoint}/otlp` });
    expect(r.checks.filter((c) => c.status === 'fail').map((c) => c.check)).to.deep.equal(['pushgateway', 'otlp']);
    expect(check(r, 'pushgateway').detail).to.equal(`unreachable at http://127.0.0.1:${port}: ECONNREFUSED (check PUSHGATEWAY_URL and the NetworkPolicy's pushgateway egress)`);
    expect(check(r, 'otlp').detail).to.match(/^http:\/\/127\.0\.0\.1:\d+\/otlp\/v1\/traces answered HTTP 415/);
  });

  it('fails kubernetes when the ServiceAccount may not do what a run does, naming what', async () => {
    inst.kube.forbidden.add('patch jobs');
    try {
      const r = await doctor();
      expect(onlyFailure(r, 'kubernetes').detail).to.equal(
        `the ServiceAccount may not patch jobs.batch (annotate its Job with the summary) in namespace ${NAMESPACE}: bind it to the chart's Role (rbac.create, serviceAccount.name)`,
      );
    } finally {
      inst.kube.forbidden.delete('patch jobs');
    }
  });

  it('says "not configured" for what is not set, and exits 0 when all that is configured works', async () => {
    const off = { SENDGRID_API_KEY: undefined, QUICKBOOKS_CLIENT_ID: undefined, QUICKBOOKS_CLIENT_SECRET: undefined, TOKEN_ENCRYPTION_KEY: undefined, PUSHGATEWAY_URL: undefined, OTEL_EXPORTER_OTLP_ENDPOINT: undefined, KUBERNETES_SERVICE_HOST: undefined };
    const r = await doctor(off);
    expect(statuses(r)).to.deep.equal({
      configuration: 'ok', database: 'ok', 'product-columns': 'ok', 'suite-migrations': 'ok',
      'token-key': 'not configured', sendgrid: 'not configured', quickbooks: 'not configured', pushgateway: 'not configured', otlp: 'not configured', kubernetes: 'not configured',
    });
    expect(r.exitCode).to.equal(0);
    expect(check(r, 'configuration').detail).to.include('sync-quickbooks cannot run: QUICKBOOKS_CLIENT_ID is required');
    // Half a configuration is a failure, not "not configured".
    const half = await doctor({ ...off, QUICKBOOKS_CLIENT_ID: 'qb-client' });
    expect(statuses(half)).to.include({ quickbooks: 'fail', 'token-key': 'fail' });
    expect(check(half, 'quickbooks').detail).to.equal('QUICKBOOKS_CLIENT_SECRET is not set (the other one is): set both, the Intuit app\'s credentials');
  });

  describe('on a database the suite cannot use yet', () => {
    let name: string;
    before(async () => {
      // The product's schema, without the suite's migrations.
      const t = await createTestDb('postgres');
      name = new URL(t.url!).pathname.slice(1);
      await t.database.close();
      await adminQuery(`drop database ${name} with (force)`);
      await adminQuery(`create database ${name}`);
      const db = await openPostgresUrl(urlFor(name), 'exitosx-test');
      try {
        for (const stmt of productStatements()) await db.knex.raw(stmt);
        await db.knex.raw('alter table quickbooks_integrations drop column needs_reauth');
      } finally {
        await db.close();
      }
    });
    after(async () => {
      await adminQuery(`drop database if exists ${name} with (force)`);
    });

    it('fails product-columns for a dropped column, naming it and the job that needs it', async () => {
      const r = await doctor({ DATABASE_URL: urlFor(name) });
      expect(check(r, 'product-columns')).to.deep.equal({
        check: 'product-columns',
        status: 'fail',
        detail: 'missing quickbooks_integrations.needs_reauth (sync-quickbooks): DATABASE_URL points at another database, or the product schema is older than this suite expects',
      });
      expect(check(r, 'database').status).to.equal('ok');
    });

    it('fails suite-migrations when the suite was never migrated, without creating knex\'s tables', async () => {
      const r = await doctor({ DATABASE_URL: urlFor(name) });
      expect(check(r, 'suite-migrations')).to.include({ status: 'fail' });
      expect(check(r, 'suite-migrations').detail).to.match(/^the suite's tables are missing \(no exitosx_cron\.knex_migrations\): run `exitosx-cron migrate`/);
      const db = await openPostgresUrl(urlFor(name), 'exitosx-test');
      try {
        const { rows } = await db.knex.raw<{ rows: unknown[] }>(`select 1 from information_schema.tables where table_schema = 'exitosx_cron' or table_name like 'knex_%'`);
        expect(rows).to.deep.equal([]);
      } finally {
        await db.close();
      }
    });
  });

  it('fails database with one line when it connects but may not read (a role without access to the suite schema)', async () => {
    const role = `exitosx_doctor_${process.pid}`;
    await adminQuery(`create role ${role} login`);
    try {
      const u = new URL(inst.db.url!);
      u.username = role;
      const r = await doctor({ DATABASE_URL: u.toString() });
      expect(check(r, 'database')).to.include({ status: 'fail' });
      expect(check(r, 'database').detail).to.match(/^connected to 127\.0\.0\.1:5432\/exitosx_t_\w+, but reading failed: .*permission denied/);
      expect(statuses(r)).to.include({ 'product-columns': 'skipped', 'suite-migrations': 'skipped', 'token-key': 'skipped' });
    } finally {
      await adminQuery(`drop role if exists ${role}`);
    }
  });

  it('fails suite-migrations for a database migrated by a newer version', async () => {
    const t = await createTestDb('postgres');
    try {
      await t.knex.withSchema('exitosx_cron').table('knex_migrations').insert({ name: '999_future', batch: 9, migration_time: new Date() });
      const r = await doctor({ DATABASE_URL: t.url });
      expect(check(r, 'suite-migrations').detail).to.equal('the database has migrations this version does not know (999_future): it was migrated by a newer version of the suite');
    } finally {
      await t.close();
    }
  });
});
