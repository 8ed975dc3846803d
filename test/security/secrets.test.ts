/**
 * No secret leaves the process. Every job runs through the real command line with
 * recognisable values in every secret variable (SendGrid key, Intuit client id and
 * secret, both token keys, a database password in DATABASE_URL) and real tokens in
 * the database, doing real work and hitting failures and retries on the way
 * (SendGrid answering 500, 429 and a 400 that echoes the key back; Intuit answering
 * 401, 429, 500 and invalid_grant; a token under an unknown key). Then every place
 * text goes is scanned for every secret: stdout and stderr (debug logs), stored
 * errors and every other product row, the run history, the metrics a real
 * Pushgateway serves, and the spans an OTLP collector received. Only the loopback
 * SendGrid and Intuit, which are owed the credentials, may see them.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { productColumns } from '../../lib/db/migrate.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { adminQuery, backends, createTestDb, type TestDb } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, type CliResult } from '../support/run.ts';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, type TestIntegration } from '../quickbooks/support.ts';
import { PUSHGATEWAY_BIN, scan, startPushgateway, startRawCollector, type Finding, type Pushgateway, type RawCollector } from './support.ts';

const tag = crypto.randomBytes(4).toString('hex');
const SENDGRID_API_KEY = `SG.secretsTest${tag}.SENDGRIDKEYsecretsTestValue${tag}`;
const QUICKBOOKS_CLIENT_ID = `qbClientIdSecret${tag}`;
const QUICKBOOKS_CLIENT_SECRET = `qbClientSecretValue${tag}`;
const KEY = crypto.randomBytes(32);
const PREVIOUS_KEY = crypto.randomBytes(32);
const UNKNOWN_KEY = crypto.randomBytes(32);
/** A password with a character that must be percent-encoded in the URL: both forms are secrets. */
const DB_PASSWORD = `pgPass/word-${tag}`;
const ROLE = `exitosx_secret_test_${process.pid}`;
/** Basic-auth credentials in the Pushgateway and collector URLs (a Pushgateway behind a proxy): secrets too. */
const PUSH_PASSWORD = `pushPassword${tag}`;
const OTLP_PASSWORD = `otlpPassword${tag}`;
const withCredentials = (url: string, user: string, password: string) => {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString().replace(/\/$/, '');
};

describe('secrets never leave the process', function () {
  this.timeout(180_000);

  let t: TestDb;
  let sendgrid: SendGridServer;
  let qbo: LoopbackQuickBooks;
  let pushgateway: Pushgateway | undefined;
  let collector: RawCollector;
  let outbox: string;
  const runs: Array<{ name: string; result: CliResult; ms?: number }> = [];
  const integrations: Record<string, TestIntegration> = {};
  const storedTokens: string[] = [];
  let databaseUrl: string;

  /** Every secret, by name, in every form it could be written. */
  const secrets = (): Map<string, string[]> => {
    const m = new Map<string, string[]>([
      ['SENDGRID_API_KEY', [SENDGRID_API_KEY]],
      ['QUICKBOOKS_CLIENT_ID', [QUICKBOOKS_CLIENT_ID]],
      ['QUICKBOOKS_CLIENT_SECRET', [QUICKBOOKS_CLIENT_SECRET]],
      ['Basic client credentials', [Buffer.from(`${QUICKBOOKS_CLIENT_ID}:${QUICKBOOKS_CLIENT_SECRET}`).toString('base64')]],
      ['TOKEN_ENCRYPTION_KEY', [KEY.toString('base64'), KEY.toString('base64url'), KEY.toString('hex')]],
      ['TOKEN_ENCRYPTION_KEY_PREVIOUS', [PREVIOUS_KEY.toString('base64'), PREVIOUS_KEY.toString('base64url'), PREVIOUS_KEY.toString('hex')]],
      ['database password', [DB_PASSWORD, encodeURIComponent(DB_PASSWORD)]],
      ['Pushgateway password', [PUSH_PASSWORD, Buffer.from(`pusher:${PUSH_PASSWORD}`).toString('base64')]],
      ['OTLP collector password', [OTLP_PASSWORD, Buffer.from(`tracer:${OTLP_PASSWORD}`).toString('base64')]],
      ['encrypted token (enc:v1)', storedTokens],
      ['tokens Intuit issued during the runs', [...qbo.issuedRefreshTokens, 'loopback_id_token']],
    ]);
    for (const [name, i] of Object.entries(integrations)) m.set(`tokens of the ${name} integration`, [i.accessToken, i.refreshToken]);
    return m;
  };
  /** Access tokens the loopback issued (not listed by the server): at_ + 24 hex. */
  const issuedAccessToken = /\bat_[0-9a-f]{24}\b/;

  const findings: Finding[] = [];
  const expectClean = (found: Finding[]) => {
    expect(found.map((f) => `${f.secret} in ${f.where}: …${f.context}…`)).to.deep.equal([]);
  };

  before(async function () {
    // The command line runs against PostgreSQL (TEST_BACKENDS=pglite leaves it out).
    if (!backends().includes('postgres')) return this.skip();
    t = await createTestDb('postgres');
    // A login role with a password, granted on this database only; connected over 127.0.0.1.
    await adminQuery(`drop role if exists ${ROLE}`);
    await adminQuery(`create role ${ROLE} login password '${DB_PASSWORD}'`);
    await t.knex.raw(`grant usage on schema public, exitosx_cron to ${ROLE}`);
    await t.knex.raw(`grant all on all tables in schema public, exitosx_cron to ${ROLE}`);
    await t.knex.raw(`grant all on all sequences in schema public, exitosx_cron to ${ROLE}`);
    const u = new URL(t.url!);
    u.username = ROLE;
    u.password = encodeURIComponent(DB_PASSWORD);
    u.hostname = '127.0.0.1';
    databaseUrl = u.toString();
    expect(databaseUrl).to.contain(encodeURIComponent(DB_PASSWORD));

    sendgrid = await startSendGridServer({ apiKey: SENDGRID_API_KEY });
    qbo = await startLoopbackQuickBooks({ clientId: QUICKBOOKS_CLIENT_ID, clientSecret: QUICKBOOKS_CLIENT_SECRET });
    collector = await startRawCollector();
    if (PUSHGATEWAY_BIN) pushgateway = await startPushgateway(PUSHGATEWAY_BIN);
    else if (process.env.CI) throw new Error('prometheus-pushgateway not found: apt-get install -y prometheus-pushgateway');
    outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-secrets-'));

    // Owners inactive 30 and 50 days, each with a company assessed last month: nudges and drift reports.
    for (const days of [30, 30, 50, 50, 60, 25]) await anOwnedCompany(t.knex, { daysInactive: days });

    // QuickBooks: one of each path through the sync.
    const add = async (name: string, o: Parameters<typeof anIntegration>[2] = {}) => {
      integrations[name] = await anIntegration(t.knex, qbo, { key: KEY, ...o });
    };
    await add('healthy');
    await add('expiring (refresh and rotation)', { accessExpiresInMs: 2 * 60_000 });
    await add('revoked (invalid_grant)', { accessExpiresInMs: -60_000 });
    qbo.revokeRefreshToken(integrations['revoked (invalid_grant)']!.refreshToken);
    await add('throttled (429)');
    qbo.behave(integrations['throttled (429)']!.realmId, { failNext: { status: 429, count: 1, retryAfterSeconds: 1 } });
    await add('rejected access token (401)');
    qbo.revokeAccessToken(integrations['rejected access token (401)']!.accessToken);
    await add('under the previous key', { key: PREVIOUS_KEY });
    await add('under an unknown key', { key: UNKNOWN_KEY });
    await add('failing (500)');
    qbo.behave(integrations['failing (500)']!.realmId, { failNext: { status: 500, count: 50 } });
    for (const row of await t.knex('quickbooks_integrations').select('access_token', 'refresh_token')) storedTokens.push(row.access_token, row.refresh_token);

    const env = {
      DATABASE_URL: databaseUrl,
      SENDGRID_API_KEY,
      SENDGRID_API_URL: sendgrid.url,
      EMAIL_MAX_RETRIES: '1',
      EMAIL_TIMEOUT_MS: '5000',
      EMAIL_OUTBOX_DIR: path.join(outbox, 'outbox'),
      EMBEDDED_DB_DIR: path.join(outbox, 'db'),
      QUICKBOOKS_CLIENT_ID,
      QUICKBOOKS_CLIENT_SECRET,
      QUICKBOOKS_API_URL: qbo.apiUrl,
      QUICKBOOKS_TOKEN_URL: qbo.tokenUrl,
      QUICKBOOKS_TIMEOUT_MS: '5000',
      TOKEN_ENCRYPTION_KEY: KEY.toString('base64'),
      TOKEN_ENCRYPTION_KEY_PREVIOUS: PREVIOUS_KEY.toString('base64url'),
      OTEL_EXPORTER_OTLP_ENDPOINT: withCredentials(collector.endpoint, 'tracer', OTLP_PASSWORD),
      ...(pushgateway ? { PUSHGATEWAY_URL: withCredentials(pushgateway.url, 'pusher', PUSH_PASSWORD) } : {}),
      LOG_LEVEL: 'debug',
    };
    const now = ['--now', NOW.toISOString()];
    const cli = async (name: string, args: string[], options: Parameters<typeof runCli>[1]) => {
      const started = Date.now();
      runs.push({ name, result: await runCli(args, options), ms: Date.now() - started });
    };
    // SendGrid fails some sends. The run's emails go as one request (SendGrid
    // personalizations): a 429, then a 400 whose body echoes the key, so that each is
    // sent alone; two of those get the same 400 (stored as their errors), two a 500
    // (retried).
    const echo = { status: 400, body: { errors: [{ message: `The API key ${SENDGRID_API_KEY} is not allowed to send from this address`, field: 'from' }] } };
    const sendgridFailures = () => sendgrid.failNext({ status: 429, headers: { 'Retry-After': '1' } }, echo, echo, echo, { status: 500 }, { status: 500 });
    sendgridFailures();
    await cli('detect-inactivity', ['detect-inactivity', ...now], { env, timeoutMs: 90_000 });
    sendgrid.recover();
    sendgridFailures();
    await cli('generate-drift-reports', ['generate-drift-reports', ...now], { env, timeoutMs: 90_000 });
    sendgrid.recover();
    await cli('sync-quickbooks', ['sync-quickbooks', ...now], { env, timeoutMs: 90_000 });
    await cli('runs', ['runs', '--limit', '20'], { env });
    // The database unreachable (exit 3): the password is in the URL the error is about.
    const down = new URL(databaseUrl);
    down.port = '1';
    await cli('detect-inactivity, database down', ['detect-inactivity', ...now], { env: { ...env, DATABASE_URL: down.toString() } });
    // A bad setting next to the secrets (exit 2).
    await cli('sync-quickbooks, bad setting', ['sync-quickbooks', ...now], { env: { ...env, QUICKBOOKS_TIMEOUT_MS: 'soon' } });
  });

  after(async () => {
    await sendgrid?.close();
    await qbo?.close();
    await collector?.close();
    await pushgateway?.stop();
    await t?.close();
    await adminQuery(`drop role if exists ${ROLE}`).catch(() => undefined);
    if (outbox) fs.rmSync(outbox, { recursive: true, force: true });
  });

  it('ran every job for real, through failures and retries', async () => {
    if (process.env.SECRETS_TEST_TIMINGS) {
      console.log(runs.map((r) => `${r.name}: ${r.ms} ms, exit ${r.result.code}`).join('\n'));
      fs.writeFileSync('/tmp/secrets-runs.json', JSON.stringify(runs, null, 1));
    }
    const byName = Object.fromEntries(runs.map((r) => [r.name, r.result]));
    const di = byName['detect-inactivity']!;
    expect(di.code, di.stderr.slice(-3000)).to.be.oneOf([0, 1]);
    expect(di.summary).to.include({ job: 'detect-inactivity', signalsCreated: 6 });
    const drift = byName['generate-drift-reports']!;
    expect(drift.code, drift.stderr.slice(-3000)).to.be.oneOf([0, 1]);
    expect(drift.summary).to.include({ job: 'generate-drift-reports', generated: 6 });
    const failedEmails = await t.knex('email_log').where({ status: 'FAILED' }).whereNotNull('error');
    expect(failedEmails.length, 'emails failed and their errors were stored').to.be.greaterThan(1);
    expect(sendgrid.requests.some((r) => r.status === 429) && sendgrid.requests.some((r) => r.status === 400)).to.equal(true);

    const sync = byName['sync-quickbooks']!;
    expect(sync.code, sync.stderr.slice(-3000)).to.be.oneOf([0, 1]);
    expect(sync.summary).to.include({ job: 'sync-quickbooks', integrationsChecked: 8, synced: 5, failed: 3 });
    const stored = await t.knex('quickbooks_integrations').select('id', 'last_sync_status', 'last_sync_error', 'needs_reauth');
    expect(stored.filter((r) => r.last_sync_error).length).to.equal(3);
    expect(stored.filter((r) => r.needs_reauth).length).to.equal(1);
    expect(qbo.tokenStats.refreshed, 'tokens were refreshed and rotated').to.be.greaterThan(1);
    expect(qbo.tokenStats.invalidGrant).to.be.greaterThan(0);
    expect(qbo.stats(integrations['throttled (429)']!.realmId).statuses).to.include(429);

    expect(byName['detect-inactivity, database down']!.code).to.equal(3);
    expect(byName['sync-quickbooks, bad setting']!.code).to.equal(2);
    // The loopback services did get the credentials (the scan would otherwise prove nothing).
    expect(sendgrid.requests[0]?.headers.authorization).to.equal(`Bearer ${SENDGRID_API_KEY}`);
  });

  it('prints no secret on stdout or stderr (debug logs included)', () => {
    for (const { name, result } of runs) {
      findings.push(...scan(`stdout of ${name}`, result.stdout, secrets()), ...scan(`stderr of ${name}`, result.stderr, secrets()));
      for (const [stream, text] of [['stdout', result.stdout], ['stderr', result.stderr]] as const) {
        const m = issuedAccessToken.exec(text);
        if (m) findings.push({ where: `${stream} of ${name}`, secret: 'an access token Intuit issued', context: text.slice(Math.max(0, m.index - 30), m.index + 40) });
      }
    }
    expect(runs.find((r) => r.name === 'sync-quickbooks')!.result.stderr.length, 'debug logs were written').to.be.greaterThan(1000);
    expectClean(findings.splice(0));
  });

  it('stores no secret in errors or any other product row (tokens only in their encrypted columns)', async () => {
    const found: Finding[] = [];
    for (const table of Object.keys(productColumns())) {
      const rows = await t.knex.raw(`select (to_jsonb(t) - 'access_token' - 'refresh_token')::text as row from ${table} t`);
      const text = (rows.rows as Array<{ row: string }>).map((r) => r.row).join('\n');
      found.push(...scan(`table ${table}`, text, secrets()));
      if (issuedAccessToken.test(text)) found.push({ where: `table ${table}`, secret: 'an access token Intuit issued', context: '' });
    }
    const errors = await t.knex('quickbooks_integrations').whereNotNull('last_sync_error').pluck('last_sync_error');
    const emailErrors = await t.knex('email_log').whereNotNull('error').pluck('error');
    expect(errors.length + emailErrors.length).to.be.greaterThan(3);
    expectClean(found);
  });

  it('keeps no secret in the run history (options and summaries)', async () => {
    const rows = await t.knex.raw(`select to_jsonb(r)::text as row from exitosx_cron.runs r`);
    expect(rows.rows.length).to.be.greaterThanOrEqual(3);
    expectClean(scan('exitosx_cron.runs', (rows.rows as Array<{ row: string }>).map((r) => r.row).join('\n'), secrets()));
  });

  it('pushes no secret to the Pushgateway', async function () {
    if (!pushgateway) return this.skip();
    const text = await pushgateway.scrape();
    expect(text).to.contain('exitosx_cron_run_success');
    expect(text).to.contain('cron_job="sync-quickbooks"');
    expectClean(scan('Pushgateway /metrics', text, secrets()));
  });

  it('exports no secret in span names, attributes, events or statuses', () => {
    const bodies = collector.requests.filter((r) => r.path === '/v1/traces');
    expect(bodies.length, 'spans were exported').to.be.greaterThan(0);
    // JSON is scanned as text; protobuf strings are UTF-8 bytes inside the body, found the same way.
    const text = bodies.map((b) => b.body.toString('utf8')).join('\n');
    for (const job of ['detect-inactivity', 'generate-drift-reports', 'sync-quickbooks']) expect(text).to.contain(`exitosx-cron ${job}`);
    const found = scan('OTLP spans', text, secrets());
    const m = issuedAccessToken.exec(text);
    if (m) found.push({ where: 'OTLP spans', secret: 'an access token Intuit issued', context: text.slice(Math.max(0, m.index - 30), m.index + 40) });
    expectClean(found);
  });
});
