/**
 * Clock edges: detect-inactivity and generate-drift-reports run through the real
 * command line at 23:59:59 and 00:00:00 UTC, on the first of a month, across a year
 * end and across both daylight-saving changes of 2026 in New York, once with the
 * process in UTC (and a UTC database session) and once with the process in
 * America/New_York and the database's session time zone America/New_York. Every
 * step must write the same rows and print the same summary in both, and the rows
 * must be the ones JOBS.md asks for at those instants (whole days, UTC months).
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import pg from 'pg';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { encryptToken } from '../../lib/quickbooks/token-crypto.ts';
import { backends, createTestDb, type TestDb } from '../support/db.ts';
import { aCompany, aFinancialPeriod, aMember, anAssessment, aSession, aTask, aUser } from '../support/factories.ts';
import { runCli } from '../support/run.ts';

const at = (iso: string) => new Date(iso);
const score = (n: number) => JSON.stringify({ FINANCIAL: n, TRANSFERABILITY: n - 1, OPERATIONAL: n + 1, MARKET: n, LEGAL_TAX: n - 2, PERSONAL: n + 2 });

/**
 * The same data in every lane, with fixed ids. Owners last active exactly on, and
 * one second either side of, the 21- and 45-day lines of each step; one company's
 * assessments, tasks and financial months on each side of every month boundary.
 */
async function seed(db: Knex): Promise<void> {
  const owner = async (id: string, lastActive: string | null, created = '2025-01-01T00:00:00Z') => {
    await aUser(db, { id, email: `${id}@example.com`, created_at: at(created) });
    await aCompany(db, { id: `c_${id}`, name: `Company ${id}`, created_at: at('2025-01-01T00:00:00Z') });
    await aMember(db, `c_${id}`, id, 'OWNER');
    await anAssessment(db, `c_${id}`, { id: `a_${id}`, bri_score: '55.00', category_scores: score(55), completed_at: at('2025-06-01T12:00:00Z'), created_at: at('2025-06-01T11:00:00Z') });
    if (lastActive) await aSession(db, id, at(lastActive));
  };
  // 23:59:59 / 00:00:00 on 2026-03-12/13.
  await owner('u_day_edge', '2026-02-20T00:00:00Z'); // 20 d 23:59:59 at 03-12T23:59:59, 21 d at 03-13T00:00
  await owner('u_exact_21', '2026-02-19T23:59:59Z'); // 21 d at 03-12T23:59:59
  await owner('u_to_high', '2026-01-27T00:00:00Z'); // 44 d → MEDIUM at 23:59:59, 45 d → HIGH at 00:00
  await owner('u_no_session', null, '2026-02-20T00:00:00Z'); // measured from created_at
  // Daylight saving starts in New York 2026-03-08 02:00 EST (07:00Z); ends 2026-11-01 02:00 EDT (06:00Z).
  await owner('u_dst_spring', '2026-02-15T07:00:00Z'); // 21 d (504 h) at 2026-03-08T07:00Z
  await owner('u_dst_spring_late', '2026-02-15T07:00:01Z'); // 1 s short
  await owner('u_dst_fall', '2026-10-11T06:00:00Z'); // 21 d at 2026-11-01T06:00Z
  await owner('u_dst_fall_late', '2026-10-11T06:00:01Z');

  // The drift company: an assessment one second before and at each month boundary.
  await aUser(db, { id: 'u_drift', email: 'u_drift@example.com', created_at: at('2025-01-01T00:00:00Z') });
  await aCompany(db, { id: 'c_drift', name: 'Edge Co', created_at: at('2025-01-01T00:00:00Z') });
  await aMember(db, 'c_drift', 'u_drift', 'OWNER');
  const assessments: Array<[string, number]> = [
    ['2025-11-30T23:59:59Z', 50], ['2025-12-01T00:00:00Z', 52], ['2025-12-31T23:59:59Z', 55], ['2026-01-01T00:00:00Z', 57],
    ['2026-01-31T23:59:59Z', 58.5], ['2026-02-01T00:00:00Z', 60], ['2026-02-28T23:59:59Z', 61], ['2026-03-01T00:00:00Z', 70],
    ['2026-10-31T23:59:59Z', 72], ['2026-11-01T00:00:00Z', 80],
  ];
  for (const [i, [when, bri]] of assessments.entries()) {
    await anAssessment(db, 'c_drift', { id: `a_drift_${i}`, bri_score: bri.toFixed(2), category_scores: score(bri), completed_at: at(when), created_at: at(when) });
  }
  for (const [i, when] of ['2026-02-28T23:59:59Z', '2026-03-01T00:00:00Z', '2025-12-31T23:59:59Z', '2026-01-01T00:00:00Z', '2026-10-31T23:59:59Z'].entries()) {
    await aTask(db, 'c_drift', { id: `t_done_${i}`, status: 'COMPLETED', completed_at: at(when), created_at: at('2025-06-01T00:00:00Z') });
  }
  await aTask(db, 'c_drift', { id: 't_open', status: 'PENDING', due_at: at('2026-02-28T23:59:59Z'), created_at: at('2025-06-01T00:00:00Z') });
  for (const month of ['2025-10-01', '2025-11-01', '2025-12-01', '2026-01-01', '2026-02-01', '2026-09-01', '2026-10-01']) {
    await aFinancialPeriod(db, 'c_drift', month, { revenue: `${100000 + Number(month.slice(5, 7)) * 1000}.00`, ebitda: '20000.00', created_at: at('2025-06-01T00:00:00Z'), updated_at: at('2025-06-01T00:00:00Z') });
  }
}

const KEY = crypto.randomBytes(32);
const QBO = { clientId: 'clock-test-client', clientSecret: 'clock-test-client-secret' };
/** One realm for every lane (the loopback's figures depend on the realm), each lane with its own tokens. */
const REALM = '9130555000111';

/** A QuickBooks connection (no company assessment: it takes no part in the other jobs until synced). */
async function seedIntegration(db: Knex, qbo: LoopbackQuickBooks, lane: string): Promise<void> {
  const accessToken = `clock-access-${lane}`;
  const refreshToken = `clock-refresh-${lane}`;
  qbo.addTokens(REALM, { accessToken, refreshToken });
  await aCompany(db, { id: 'c_qbo', name: 'Ledger Co', created_at: at('2025-01-01T00:00:00Z') });
  await db('quickbooks_integrations').insert({
    id: 'qbo_clock', company_id: 'c_qbo', realm_id: REALM,
    access_token: encryptToken(accessToken, KEY), refresh_token: encryptToken(refreshToken, KEY),
    // Far from every step's clock: no refresh, whatever --now says.
    access_token_expires_at: at('2030-01-01T00:00:00Z'), refresh_token_expires_at: at('2030-01-01T00:00:00Z'),
    created_at: at('2025-01-01T00:00:00Z'),
  });
}

interface Step {
  job: 'detect-inactivity' | 'generate-drift-reports' | 'sync-quickbooks';
  now: string;
  /** Changes the data before this step (in every lane). */
  before?: (db: Knex) => Promise<void>;
}

/** In order; each lane runs them all on its own database. */
const STEPS: Step[] = [
  { job: 'detect-inactivity', now: '2026-03-08T07:00:00Z' },
  { job: 'detect-inactivity', now: '2026-03-12T23:59:59Z' },
  { job: 'detect-inactivity', now: '2026-03-13T00:00:00Z' },
  { job: 'generate-drift-reports', now: '2025-12-31T23:59:59Z' },
  { job: 'generate-drift-reports', now: '2026-01-01T00:00:00Z' },
  { job: 'generate-drift-reports', now: '2026-03-01T00:00:00Z' },
  // u_day_edge comes back before the autumn change: resolved then.
  { job: 'detect-inactivity', now: '2026-11-01T06:00:00Z', before: (db) => aSession(db, 'u_day_edge', at('2026-10-30T12:00:00Z')) },
  { job: 'generate-drift-reports', now: '2026-11-01T06:00:00Z' },
  // 00:30 UTC on the first of March is still February in New York: the window must end with March.
  { job: 'sync-quickbooks', now: '2026-03-01T00:30:00Z' },
];

interface StepResult {
  code: number | null;
  summary: Record<string, unknown>;
  rows: Record<string, unknown[]>;
  stderr: string;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * The rows the jobs write, comparable across lanes: generated ids numbered in order
 * of appearance; every timestamp kept. The seed sets every timestamp column itself and
 * the jobs write theirs with the run's clock, so no row holds the real time (a database
 * default): one would differ between the lanes and fail the comparison, whatever the date.
 */
async function snapshot(db: Knex): Promise<Record<string, unknown[]>> {
  const tables: Record<string, string> = {
    signals: 'company_id, user_id, event_type, severity, created_at',
    value_ledger_entries: 'company_id, entry_type, summary',
    drift_reports: 'company_id, period_start',
    email_log: 'idempotency_key',
    financial_periods: 'company_id, period_start',
  };
  const out: Record<string, unknown[]> = {};
  const ids = new Map<string, string>();
  // to_jsonb writes timestamptz in the session's zone: read in UTC, whatever the database's default.
  const read = (table: string, order: string) =>
    db.transaction(async (trx) => {
      await trx.raw(`set local timezone to 'UTC'`);
      return (await trx.raw(`select to_jsonb(t) as row from ${table} t order by ${order}`)).rows as Array<{ row: Record<string, unknown> }>;
    });
  for (const [table, order] of Object.entries(tables)) {
    const rows = await read(table, order);
    out[table] = rows.map(({ row }) => JSON.parse(JSON.stringify(row).replace(UUID, (u) => ids.get(u) ?? (ids.set(u, `<id ${ids.size + 1}>`), ids.get(u)!))) as Record<string, unknown>);
  }
  return out;
}

const comparableSummary = (s: Record<string, unknown> | undefined) => {
  const { runId: _runId, durationMs: _durationMs, ...rest } = s ?? {};
  return JSON.parse(JSON.stringify(rest).replace(UUID, '<uuid>')) as Record<string, unknown>;
};

async function lane(name: string, qbo: LoopbackQuickBooks, timeZone: string, databaseTimeZone: string | undefined): Promise<StepResult[]> {
  const t: TestDb = await createTestDb('postgres');
  const outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-clock-'));
  try {
    if (databaseTimeZone) {
      const name = new URL(t.url!).pathname.slice(1);
      await t.knex.raw(`alter database ${name} set timezone to '${databaseTimeZone}'`);
      const client = new pg.Client({ connectionString: t.url });
      await client.connect();
      const { rows } = await client.query<{ TimeZone: string }>('show timezone');
      await client.end();
      expect(rows[0]!.TimeZone).to.equal(databaseTimeZone);
    }
    await seed(t.knex);
    await seedIntegration(t.knex, qbo, name);
    const env = {
      DATABASE_URL: t.url, TZ: timeZone, EMAIL_OUTBOX_DIR: outbox, EMBEDDED_DB_DIR: path.join(outbox, 'db'),
      QUICKBOOKS_CLIENT_ID: QBO.clientId, QUICKBOOKS_CLIENT_SECRET: QBO.clientSecret, QUICKBOOKS_API_URL: qbo.apiUrl, QUICKBOOKS_TOKEN_URL: qbo.tokenUrl,
      TOKEN_ENCRYPTION_KEY: KEY.toString('base64'),
    };
    const results: StepResult[] = [];
    for (const step of STEPS) {
      await step.before?.(t.knex);
      const r = await runCli([step.job, '--now', step.now], { env });
      results.push({ code: r.code, summary: comparableSummary(r.summary), rows: await snapshot(t.knex), stderr: r.stderr });
    }
    return results;
  } finally {
    await t.close();
    fs.rmSync(outbox, { recursive: true, force: true });
  }
}

describe('clock edges: midnight, month and year ends, daylight saving, any process time zone', function () {
  this.timeout(180_000);
  let utc: StepResult[];
  let newYork: StepResult[];
  let qbo: LoopbackQuickBooks;
  after(() => qbo?.close());

  before(async function () {
    // The command line runs against PostgreSQL (TEST_BACKENDS=pglite leaves it out).
    if (!backends().includes('postgres')) return this.skip();
    // The zone is real for Node here: New York is UTC-5 in January and UTC-4 in July.
    const offsets = execFileSync(process.execPath, ['-e', 'console.log(new Date("2026-01-15").getTimezoneOffset(), new Date("2026-07-15").getTimezoneOffset())'], { env: { TZ: 'America/New_York' } });
    expect(offsets.toString().trim()).to.equal('300 240');
    qbo = await startLoopbackQuickBooks(QBO);
    [utc, newYork] = await Promise.all([lane('utc', qbo, 'UTC', undefined), lane('ny', qbo, 'America/New_York', 'America/New_York')]);
  });

  it('runs every step successfully in both', () => {
    for (const [i, step] of STEPS.entries()) {
      expect(utc[i]!.code, `UTC ${step.job} ${step.now}: ${utc[i]!.stderr.slice(-2000)}`).to.equal(0);
      expect(newYork[i]!.code, `New York ${step.job} ${step.now}: ${newYork[i]!.stderr.slice(-2000)}`).to.equal(0);
    }
  });

  for (const [i, step] of STEPS.entries()) {
    it(`${step.job} --now ${step.now}: the same summary and rows in America/New_York as in UTC`, () => {
      expect(newYork[i]!.summary).to.deep.equal(utc[i]!.summary);
      expect(newYork[i]!.rows).to.deep.equal(utc[i]!.rows);
    });
  }

  /** Open inactivity signals after step i, as user → severity. */
  const open = (i: number) =>
    Object.fromEntries(
      (utc[i]!.rows.signals as Array<{ user_id: string; severity: string; resolved_at: string | null; event_type: string }>)
        .filter((s) => s.event_type === 'user_inactivity' && !s.resolved_at)
        .map((s) => [s.user_id, s.severity]),
    );

  it('counts whole days across the spring change: 21 days at 2026-03-08T07:00Z, not for one second less', () => {
    expect(open(0)).to.include({ u_dst_spring: 'MEDIUM' });
    expect(open(0)).to.not.have.property('u_dst_spring_late');
  });

  it('flags at 00:00:00 UTC, not at 23:59:59, and escalates to HIGH at 45 days', () => {
    expect(open(1)).to.include({ u_exact_21: 'MEDIUM', u_to_high: 'MEDIUM' });
    expect(open(1)).to.not.have.property('u_day_edge');
    expect(open(1)).to.not.have.property('u_no_session');
    expect(open(2)).to.include({ u_day_edge: 'MEDIUM', u_no_session: 'MEDIUM', u_to_high: 'HIGH', u_exact_21: 'MEDIUM' });
    expect(utc[2]!.summary).to.include({ signalsCreated: 2, signalsEscalated: 1 });
  });

  it('counts whole days across the autumn change, and resolves an owner who came back', () => {
    expect(open(6)).to.include({ u_dst_fall: 'MEDIUM' });
    expect(open(6)).to.not.have.property('u_dst_fall_late');
    expect(open(6)).to.not.have.property('u_day_edge');
    expect(utc[6]!.summary).to.include({ signalsResolved: 1 });
  });

  it('reports on the UTC month before the clock: Nov at 2025-12-31T23:59:59Z, Dec at 2026-01-01T00:00Z, Feb at 03-01T00:00Z, Oct on 2026-11-01', () => {
    const periods = [3, 4, 5, 7].map((i) => utc[i]!.summary.periodStart);
    expect(periods).to.deep.equal(['2025-11-01T00:00:00.000Z', '2025-12-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', '2026-10-01T00:00:00.000Z']);
    type Row = { company_id: string; period_start: string; bri_score_start: number | null; bri_score_end: number | null; direction: string; report: { bri: { assessmentsInPeriod: number }; tasks: { completed: number } } };
    const reports = (utc[7]!.rows.drift_reports as Row[]).filter((r) => r.company_id === 'c_drift');
    const by = Object.fromEntries(reports.map((r) => [r.period_start.slice(0, 10), r]));
    expect(Object.keys(by)).to.deep.equal(['2025-11-01', '2025-12-01', '2026-02-01', '2026-10-01']);
    // A score one second before a boundary belongs to the month that ends there.
    expect(by['2025-11-01']).to.include({ bri_score_start: null, bri_score_end: 50, direction: 'IMPROVING' });
    expect(by['2025-12-01']).to.include({ bri_score_start: 50, bri_score_end: 55, direction: 'IMPROVING' });
    expect(by['2026-02-01']).to.include({ bri_score_start: 58.5, bri_score_end: 61 });
    expect(by['2026-10-01']).to.include({ bri_score_start: 70, bri_score_end: 72 });
    expect(by['2025-12-01']!.report.bri.assessmentsInPeriod).to.equal(2);
    expect(by['2026-02-01']!.report.bri.assessmentsInPeriod).to.equal(2);
    expect(by['2025-12-01']!.report.tasks.completed).to.equal(1);
    expect(by['2026-02-01']!.report.tasks.completed).to.equal(1);
    expect(by['2026-10-01']!.report.tasks.completed).to.equal(1);
  });

  it('syncs QuickBooks at 00:30 UTC on the first of a month through the end of that month, 24 months back', () => {
    const i = STEPS.findIndex((s) => s.job === 'sync-quickbooks');
    expect(utc[i]!.summary).to.include({ synced: 1, failed: 0, periodsCreated: 25 });
    const months = (utc[i]!.rows.financial_periods as Array<{ company_id: string; period_start: string }>).filter((r) => r.company_id === 'c_qbo').map((r) => r.period_start);
    expect(months[0]).to.equal('2024-03-01');
    expect(months.at(-1)).to.equal('2026-03-01');
  });
});
