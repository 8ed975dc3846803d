/**
 * Soak: each job 50 times in a row on the same PostgreSQL database (in-process,
 * a small data set), the clock a day further each time (a month for the drift
 * job). After every run the row counts are exactly what the rules say, and nothing
 * else grows (run history excepted). Then memory: one long CLI run over many users,
 * its resident set sampled from /proc/<pid>/status, must not creep.
 */
import fs from 'node:fs';
import { expect } from 'chai';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob, { HIGH_DAYS, INACTIVE_DAYS, NUDGE_CAP_DAYS } from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { type TestDb } from '../support/db.ts';
import { anOwnedCompany, aSession, daysBefore } from '../support/factories.ts';
import { NOW, runCli, runInProcess } from '../support/run.ts';
import { type SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { counts, DAY, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

const RUNS = 50;

describe('faults: soak, 50 runs of each job on one database (PostgreSQL)', function () {
  this.timeout(120_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));

  it('detect-inactivity, a day apart: signals opened at 21 days, escalated at 45, resolved on return; nudges as the cap allows', async () => {
    // Days inactive at the first run; one owner (returnsAt) comes back at run 30.
    const owners = [0, 10, 20, 30, 40, 50, 60].map((d) => ({ d, returnsAt: undefined as number | undefined }));
    owners.push({ d: 30, returnsAt: 30 });
    const users = [];
    for (const o of owners) users.push((await anOwnedCompany(t.knex, { daysInactive: o.d })).user.id);

    // The rules, as a model: what should exist after run k.
    const expected = (k: number) => {
      const e = { signals: 0, open: 0, created: 0, escalated: 0, resolved: 0, sent: 0, suppressed: 0 };
      for (const o of owners) {
        const days = (j: number) => (o.returnsAt !== undefined && j >= o.returnsAt ? j - o.returnsAt : o.d + j);
        let open: 'MEDIUM' | 'HIGH' | null = null;
        let lastSent = -Infinity;
        const nudge = (j: number) => {
          if (j - lastSent < NUDGE_CAP_DAYS) e.suppressed++;
          else {
            e.sent++;
            lastSent = j;
          }
        };
        for (let j = 0; j <= k; j++) {
          const n = days(j);
          if (open && n < INACTIVE_DAYS) {
            open = null;
            e.resolved++;
          } else if (!open && n >= INACTIVE_DAYS) {
            open = n >= HIGH_DAYS ? 'HIGH' : 'MEDIUM';
            e.signals++;
            e.created++;
            nudge(j);
          } else if (open === 'MEDIUM' && n >= HIGH_DAYS) {
            open = 'HIGH';
            e.escalated++;
            nudge(j);
          }
        }
        if (open) e.open++;
      }
      return e;
    };

    for (let k = 0; k < RUNS; k++) {
      const now = new Date(NOW.getTime() + k * DAY);
      for (const [i, o] of owners.entries()) if (o.returnsAt === k) await aSession(t.knex, users[i]!, new Date(now.getTime() - 3600_000));
      const r = await runInProcess(inactivityJob, { now }, { database: t.database, env: sendgridEnv(sendgrid) });
      expect(r.exitCode, `run ${k}: ${JSON.stringify(r.summary)}`).to.equal(0);
      const e = expected(k);
      const c = await counts(t.knex);
      const ledger = { SIGNAL_CREATED: e.created, SIGNAL_ESCALATED: e.escalated, SIGNAL_RESOLVED: e.resolved };
      const emails = { SENT: e.sent, SUPPRESSED: e.suppressed };
      expect({ signals: c.signals, open: c.openSignals, ledger: c.ledger, emails: c.emails, reports: c.reports, periods: c.periods }, `after run ${k}`).to.deep.equal({
        signals: e.signals,
        open: e.open,
        ledger: Object.fromEntries(Object.entries(ledger).filter(([, v]) => v)),
        emails: Object.fromEntries(Object.entries(emails).filter(([, v]) => v)),
        reports: 0,
        periods: 0,
      });
    }
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect((await counts(t.knex)).runs).to.deep.equal({ succeeded: RUNS });
    // Sanity of the model itself: the interesting cases happened.
    const end = expected(RUNS - 1);
    expect(end.escalated).to.be.above(2);
    expect(end.suppressed).to.be.above(0);
    expect(end.resolved).to.equal(1);
  });

  it('generate-drift-reports, a month apart: one report, one ledger entry and one email per company and month', async () => {
    const COMPANIES = 4;
    for (let i = 0; i < COMPANIES; i++) await anOwnedCompany(t.knex, { companyOver: { created_at: daysBefore(900) } });
    for (let k = 0; k < RUNS; k++) {
      const now = new Date(Date.UTC(2026, 2 + k, 1, 6));
      const r = await runInProcess(driftJob, { now }, { database: t.database, env: sendgridEnv(sendgrid) });
      expect(r.exitCode, `run ${k}: ${JSON.stringify(r.summary)}`).to.equal(0);
      expect(r.summary).to.include({ generated: COMPANIES });
      const c = await counts(t.knex);
      const n = (k + 1) * COMPANIES;
      expect({ reports: c.reports, ledger: c.ledger, emails: c.emails, signals: c.signals, periods: c.periods }, `after run ${k}`).to.deep.equal({
        reports: n, ledger: { DRIFT_REPORT_GENERATED: n }, emails: { SENT: n }, signals: 0, periods: 0,
      });
    }
    expect(maxPerKey(sendgrid)).to.equal(1);
    expect(await t.knex('drift_reports').whereNull('emailed_at').count({ n: '*' }).first()).to.deep.equal({ n: 0 });
  });

  describe('sync-quickbooks', () => {
    let server: LoopbackQuickBooks;
    beforeEach(async () => {
      server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    });
    afterEach(() => server.close());

    it('a day apart: a new period per integration when the month turns, one ledger entry per sync, nothing else', async () => {
      const N = 3;
      for (let i = 0; i < N; i++) await anIntegration(t.knex, server);
      const monthsUpTo = (d: Date) => 24 + 1 + (d.getUTCFullYear() - NOW.getUTCFullYear()) * 12 + d.getUTCMonth() - NOW.getUTCMonth();
      for (let k = 0; k < RUNS; k++) {
        const now = new Date(NOW.getTime() + k * DAY);
        const r = await runInProcess(syncJob, { now }, { database: t.database, env: qbEnv(server) });
        expect(r.exitCode, `run ${k}: ${JSON.stringify(r.summary)}`).to.equal(0);
        expect(r.summary).to.include({ synced: N, failed: 0 });
        const c = await counts(t.knex);
        expect({ periods: c.periods, ledger: c.ledger, signals: c.signals, reports: c.reports, emails: c.emails }, `after run ${k}`).to.deep.equal({
          periods: N * monthsUpTo(now), ledger: { FINANCIALS_SYNCED: N * (k + 1) }, signals: 0, reports: 0, emails: {},
        });
      }
    });
  });

  it('memory: one long run over 3000 owners keeps its resident set flat', async function () {
    const USERS = 3000;
    // Set-based seed: 3000 owners of one active company each, inactive 30 days.
    await t.knex.raw(`insert into users (id, email, name, created_at) select 'soak_u' || lpad(i::text, 5, '0'), 'soak' || i || '@example.com', 'Soak ' || i, ? from generate_series(1, ?) i`, [daysBefore(400), USERS]);
    await t.knex.raw(`insert into companies (id, name, created_at) select 'soak_c' || lpad(i::text, 5, '0'), 'Soak Co ' || i, ? from generate_series(1, ?) i`, [daysBefore(500), USERS]);
    await t.knex.raw(`insert into company_members (company_id, user_id, role) select 'soak_c' || lpad(i::text, 5, '0'), 'soak_u' || lpad(i::text, 5, '0'), 'OWNER' from generate_series(1, ?) i`, [USERS]);
    await t.knex.raw(`insert into assessments (id, company_id, status, bri_score, completed_at, created_at) select 'soak_a' || i, 'soak_c' || lpad(i::text, 5, '0'), 'COMPLETED', 60, ?, ? from generate_series(1, ?) i`, [daysBefore(30), daysBefore(31), USERS]);
    await t.knex.raw(`insert into user_sessions (id, user_id, created_at, last_active_at) select 'soak_s' || i, 'soak_u' || lpad(i::text, 5, '0'), ?, ? from generate_series(1, ?) i`, [daysBefore(30), daysBefore(30), USERS]);

    const samples: Array<{ at: number; rssKb: number; done: number }> = [];
    let done = 0;
    let timer: NodeJS.Timeout | undefined;
    // A chunk's nudges go as one request (SendGrid personalizations): answered after
    // 50 ms, so that the run lasts long enough to be sampled in each quarter.
    sendgrid.delay(50);
    const r = await runCli(['detect-inactivity', '--now', NOW.toISOString()], {
      // The old space capped at 64 MB (the job's live set after a GC is ~32 MB, flat
      // over 4000 users when measured in-process with --expose-gc): a leak of more than
      // ~10 kB per user would kill the run (out of memory) instead of hiding in a lazily
      // collected heap. Without the cap V8 grows the heap ahead of the allocation rate
      // (bench/FINDINGS.md §6: 290 → 340 MB here), which looks like creep but is not a
      // leak. A 16 MB semi-space keeps the capped run as fast as an uncapped one.
      env: {
        DATABASE_URL: t.url!,
        ...sendgridEnv(sendgrid, { EMAIL_CONCURRENCY: '8' }),
        NODE_OPTIONS: process.env.SOAK_NODE_OPTIONS ?? '--disable-warning=ExperimentalWarning --max-old-space-size=64 --max-semi-space-size=16',
      },
      onSpawn: (child) => {
        const started = Date.now();
        timer = setInterval(() => {
          try {
            const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
            if (m) samples.push({ at: Date.now() - started, rssKb: Number(m[1]), done });
          } catch {
            // exited
          }
        }, 50);
      },
      onStderr: (text) => {
        done += text.split('"email:sent"').length - 1;
      },
      timeoutMs: 90_000,
    });
    clearInterval(timer);
    sendgrid.delay(0);
    expect(r.code, r.stderr.slice(-2000)).to.equal(0);
    expect(r.summary).to.include({ signalsCreated: USERS, emailsSent: USERS });
    // Compare the peak while the second quarter of the users was done with the peak of the last quarter.
    const during = (from: number, to: number) => samples.filter((s) => s.done >= from * USERS && s.done < to * USERS).map((s) => s.rssKb);
    const early = during(0.25, 0.5);
    const late = during(0.75, 1);
    expect(early.length, 'samples early').to.be.above(2);
    expect(late.length, 'samples late').to.be.above(2);
    const peakEarlyMb = Math.max(...early) / 1024;
    const peakLateMb = Math.max(...late) / 1024;
    if (process.env.FAULTS_DEBUG) console.log(samples.filter((_, i) => i % 5 === 0).map((s) => `${s.at}ms ${s.done} ${(s.rssKb / 1024).toFixed(0)}MB`).join('\n'));
    if (process.env.FAULTS_DEBUG) console.log({ samples: samples.length, early: early.length, late: late.length, peakEarlyMb, peakLateMb, overallMb: Math.max(...samples.map((s) => s.rssKb)) / 1024 });
    expect(peakLateMb, `RSS crept from ${peakEarlyMb.toFixed(0)} MB to ${peakLateMb.toFixed(0)} MB`).to.be.below(peakEarlyMb * 1.25);
    expect(Math.max(...samples.map((s) => s.rssKb)) / 1024).to.be.below(300);
  });
});
