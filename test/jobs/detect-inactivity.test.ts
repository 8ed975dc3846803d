/**
 * detect-inactivity against real databases (PostgreSQL and PGlite) and a loopback
 * SendGrid: each case of JOBS.md "detect-inactivity" as a named test.
 */
import { expect } from 'chai';
import job from '../../jobs/detect-inactivity.ts';
import type { RunOptions } from '../../lib/runtime/job.ts';
import { shardOf } from '../../lib/runtime/shard.ts';
import { eachBackend } from '../support/db.ts';
import { aCompany, aMember, anAssessment, anOwnedCompany, aSession, aTask, aUser, daysBefore, preferences } from '../support/factories.ts';
import { NOW, runInProcess } from '../support/run.ts';
import { useSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';

type Row = Record<string, unknown>;

describe('detect-inactivity', function () {
  let sendgrid!: SendGridServer;
  useSendGridServer((server) => (sendgrid = server));

  eachBackend((db) => {
    beforeEach(async () => {
      await db().truncate();
      sendgrid.requests.length = 0;
      sendgrid.recover();
    });

    const env = () => ({ SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url, APP_BASE_URL: 'https://app.example.test' });
    const run = (options: Partial<RunOptions> = {}, extraEnv: Record<string, string> = {}) =>
      runInProcess(job, options, { database: db().database, env: { ...env(), ...extraEnv } });
    const signals = (): Promise<Row[]> => db().knex('signals').where({ event_type: 'user_inactivity' }).orderBy('created_at');
    const ledger = (): Promise<Row[]> => db().knex('value_ledger_entries').orderBy('created_at');
    const emailLog = (): Promise<Row[]> => db().knex('email_log').orderBy('created_at');
    const anOpenSignal = (companyId: string, userId: string, over: Row = {}) =>
      db().knex('signals').insert({
        company_id: companyId, user_id: userId, channel: 'TIME_DECAY', event_type: 'user_inactivity', category: 'PERSONAL', severity: 'MEDIUM',
        confidence: 'CONFIDENT', title: 'Owner inactive for 30 days', metadata: JSON.stringify({ daysInactive: 30 }), created_at: daysBefore(15), updated_at: daysBefore(15), ...over,
      }).returning('id').then((r: Array<{ id: string }>) => r[0]!.id);

    it('leaves an owner inactive for 20 days alone', async () => {
      await anOwnedCompany(db().knex, { daysInactive: 20 });
      const { exitCode, summary } = await run();
      expect(exitCode).to.equal(0);
      expect(summary).to.include({ usersChecked: 0, signalsCreated: 0, emailsSent: 0 });
      expect(await signals()).to.have.length(0);
      expect(sendgrid.requests).to.have.length(0);
    });

    it('opens a MEDIUM signal at 21 days with its ledger entry, and sends one nudge', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 21 });
      const { exitCode, summary } = await run();
      expect(exitCode).to.equal(0);
      expect(summary).to.include({ success: true, job: 'detect-inactivity', dryRun: false, usersChecked: 1, signalsCreated: 1, signalsEscalated: 0, signalsResolved: 0, emailsSent: 1, emailsSuppressed: 0, skipped: 0, errors: 0 });
      const [s] = await signals();
      expect(s).to.include({ company_id: company.id, user_id: user.id, channel: 'TIME_DECAY', category: 'PERSONAL', severity: 'MEDIUM', confidence: 'CONFIDENT', title: 'Owner inactive for 21 days' });
      expect(s!.resolved_at).to.equal(null);
      expect(s!.metadata).to.deep.equal({ daysInactive: 21, lastActiveAt: daysBefore(21).toISOString() });
      const entries = await ledger();
      expect(entries.map((e) => [e.entry_type, e.signal_id, e.company_id])).to.deep.equal([['SIGNAL_CREATED', s!.id, company.id]]);
      const [log] = await emailLog();
      expect(log).to.include({ user_id: user.id, to_email: user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: `inactivity:${user.id}:${String(s!.id)}:MEDIUM`, status: 'SENT', provider_message_id: sendgrid.accepted()[0]!.messageId });
      const [mail] = sendgrid.accepted();
      expect(mail!.body.subject).to.equal("We haven't seen you in 3 weeks");
      expect(mail!.body.categories).to.deep.equal(['inactivity-nudge']);
      expect(mail!.body.custom_args).to.include({ idempotency_key: log!.idempotency_key, email_type: 'INACTIVITY_NUDGE' });
      expect((mail!.body.headers as Record<string, string>)['List-Unsubscribe-Post']).to.equal('List-Unsubscribe=One-Click');
      expect((mail!.body.headers as Record<string, string>)['List-Unsubscribe']).to.match(/^<https:\/\/app\.example\.test\/email\/unsubscribe\?token=/);
    });

    it('opens a MEDIUM signal at 44 days', async () => {
      await anOwnedCompany(db().knex, { daysInactive: 44 });
      await run();
      expect((await signals()).map((s) => s.severity)).to.deep.equal(['MEDIUM']);
    });

    it('opens a HIGH signal at 45 days', async () => {
      const { user } = await anOwnedCompany(db().knex, { daysInactive: 45 });
      const { summary } = await run();
      expect(summary).to.include({ signalsCreated: 1, emailsSent: 1 });
      const [s] = await signals();
      expect(s).to.include({ severity: 'HIGH', title: 'Owner inactive for 45 days' });
      expect((await emailLog())[0]!.idempotency_key).to.equal(`inactivity:${user.id}:${String(s!.id)}:HIGH`);
      expect(sendgrid.accepted()[0]!.body.subject).to.equal("We haven't seen you in 6 weeks");
    });

    it('measures an owner with no session from the account creation', async () => {
      await anOwnedCompany(db().knex, { userOver: { created_at: daysBefore(30) } });
      await anOwnedCompany(db().knex, { userOver: { created_at: daysBefore(10) } });
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 1, signalsCreated: 1 });
      expect((await signals())[0]!.title).to.equal('Owner inactive for 30 days');
    });

    it('measures from the latest session, not the first', async () => {
      const { user } = await anOwnedCompany(db().knex, { daysInactive: 60 });
      await aSession(db().knex, user.id, daysBefore(3));
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 0, signalsCreated: 0 });
    });

    it('never processes a deleted user', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 50, userOver: { deleted_at: daysBefore(1) } });
      await anOpenSignal(company.id, user.id, { severity: 'MEDIUM' });
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 0, signalsCreated: 0, signalsEscalated: 0, signalsResolved: 0, emailsSent: 0 });
      expect(sendgrid.requests).to.have.length(0);
    });

    it('ignores a deleted company and a company with no assessment and no financial period', async () => {
      await anOwnedCompany(db().knex, { daysInactive: 30, companyOver: { deleted_at: daysBefore(2) } });
      const bare = await aCompany(db().knex);
      const owner = await aUser(db().knex);
      await aMember(db().knex, bare.id, owner.id, 'OWNER');
      await aSession(db().knex, owner.id, daysBefore(30));
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 0, signalsCreated: 0, emailsSent: 0 });
      expect(await signals()).to.have.length(0);
    });

    it('counts a company with only a financial period as active', async () => {
      const company = await aCompany(db().knex);
      const owner = await aUser(db().knex);
      await aMember(db().knex, company.id, owner.id, 'OWNER');
      await aSession(db().knex, owner.id, daysBefore(30));
      await db().knex('financial_periods').insert({ company_id: company.id, period_start: '2026-01-01', period_end: '2026-01-31', source: 'MANUAL' });
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 1, signalsCreated: 1 });
    });

    it('ignores a MEMBER or ADVISOR who owns nothing', async () => {
      const { company } = await anOwnedCompany(db().knex, { daysInactive: 1 });
      for (const role of ['MEMBER', 'ADVISOR'] as const) {
        const u = await aUser(db().knex);
        await aMember(db().knex, company.id, u.id, role);
        await aSession(db().knex, u.id, daysBefore(60));
      }
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 0, signalsCreated: 0 });
    });

    it('skips a pair that already has an unresolved signal: no second signal, no email', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      await anOpenSignal(company.id, user.id);
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 1, signalsCreated: 0, signalsEscalated: 0, skipped: 1, emailsSent: 0 });
      expect(await signals()).to.have.length(1);
      expect(await ledger()).to.have.length(0);
      expect(sendgrid.requests).to.have.length(0);
    });

    it('skips an open HIGH signal at 60 days (nothing to escalate)', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 60 });
      await anOpenSignal(company.id, user.id, { severity: 'HIGH' });
      const { summary } = await run();
      expect(summary).to.include({ signalsEscalated: 0, skipped: 1, emailsSent: 0 });
    });

    it('escalates a MEDIUM signal to HIGH at 45 days, with a SIGNAL_ESCALATED entry and a new nudge', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 45 });
      const id = await anOpenSignal(company.id, user.id);
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 1, signalsCreated: 0, signalsEscalated: 1, skipped: 0, emailsSent: 1 });
      const [s] = await signals();
      expect(s).to.include({ id, severity: 'HIGH', title: 'Owner inactive for 45 days' });
      expect(new Date(s!.updated_at as Date).toISOString()).to.equal(NOW.toISOString());
      expect(s!.metadata).to.deep.equal({ daysInactive: 45, lastActiveAt: daysBefore(45).toISOString() });
      expect((await ledger()).map((e) => [e.entry_type, e.signal_id])).to.deep.equal([['SIGNAL_ESCALATED', id]]);
      expect((await emailLog())[0]!.idempotency_key).to.equal(`inactivity:${user.id}:${id}:HIGH`);
    });

    it('resolves the signal of a user who came back (USER_RETURNED, SIGNAL_RESOLVED)', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 2 });
      const id = await anOpenSignal(company.id, user.id);
      const { summary } = await run();
      expect(summary).to.include({ signalsResolved: 1, usersChecked: 0, emailsSent: 0 });
      const [s] = await signals();
      expect(s).to.include({ id, resolution: 'USER_RETURNED' });
      expect(new Date(s!.resolved_at as Date).toISOString()).to.equal(NOW.toISOString());
      expect((await ledger()).map((e) => [e.entry_type, e.signal_id])).to.deep.equal([['SIGNAL_RESOLVED', id]]);
    });

    it('leaves alone the open signal of a user still inactive at 21 days', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 21 });
      await anOpenSignal(company.id, user.id);
      const { summary } = await run();
      expect(summary).to.include({ signalsResolved: 0, skipped: 1 });
    });

    it('opens a new signal when the earlier one was resolved', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 25 });
      await anOpenSignal(company.id, user.id, { resolved_at: daysBefore(40), resolution: 'USER_RETURNED', created_at: daysBefore(80) });
      const { summary } = await run();
      expect(summary).to.include({ signalsCreated: 1, emailsSent: 1 });
      const all = await signals();
      expect(all).to.have.length(2);
      expect(all.filter((s) => s.resolved_at === null)).to.have.length(1);
    });

    it('records the nudge of a user who opted out of nudges as suppressed, and sends nothing', async () => {
      const { user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      await preferences(db().knex, user.id, { inactivity_nudges: false });
      const { summary, logs } = await run();
      expect(summary).to.include({ signalsCreated: 1, emailsSent: 0, emailsSuppressed: 1 });
      expect((await emailLog()).map((e) => [e.status, e.error])).to.deep.equal([['SUPPRESSED', 'suppressed: preferences']]);
      expect(sendgrid.requests).to.have.length(0);
      expect(logs.find((l) => l.message === 'email:suppressed')).to.include({ level: 'debug', reason: 'preferences' });
    });

    it('suppresses the nudge of a user unsubscribed from everything', async () => {
      const { user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      await preferences(db().knex, user.id, { inactivity_nudges: true, unsubscribed_all: true });
      const { summary } = await run();
      expect(summary).to.include({ signalsCreated: 1, emailsSent: 0, emailsSuppressed: 1 });
      expect(sendgrid.requests).to.have.length(0);
    });

    it('sends a nudge to a user whose preferences only turn drift reports off', async () => {
      const { user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      await preferences(db().knex, user.id, { drift_reports: false });
      const { summary } = await run();
      expect(summary).to.include({ emailsSent: 1, emailsSuppressed: 0 });
    });

    it('sends at most one nudge per user in 7 days (the cap), and sends again after 7 days', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 45 });
      await anOpenSignal(company.id, user.id);
      await db().knex('email_log').insert({ user_id: user.id, to_email: user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: 'inactivity:earlier', status: 'SENT', created_at: daysBefore(6), sent_at: daysBefore(6) });
      const capped = await run();
      expect(capped.summary).to.include({ signalsEscalated: 1, emailsSent: 0, emailsSuppressed: 1 });
      expect((await emailLog()).find((e) => e.status === 'SUPPRESSED')!.error).to.equal('suppressed: cap');

      await db().truncate();
      const second = await anOwnedCompany(db().knex, { daysInactive: 45 });
      await anOpenSignal(second.company.id, second.user.id);
      await db().knex('email_log').insert({ user_id: second.user.id, to_email: second.user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: 'inactivity:older', status: 'SENT', created_at: daysBefore(7), sent_at: daysBefore(7) });
      const { summary } = await run();
      expect(summary).to.include({ signalsEscalated: 1, emailsSent: 1, emailsSuppressed: 0 });
    });

    it('opens two signals for an owner of two companies and sends one email naming both, with BRI and pending tasks', async () => {
      const { company: first, user } = await anOwnedCompany(db().knex, { daysInactive: 30, companyOver: { name: 'Alpha Plumbing LLC' } });
      const second = await aCompany(db().knex, { name: 'Beta Bakery Inc.' });
      await aMember(db().knex, second.id, user.id, 'OWNER');
      await anAssessment(db().knex, second.id, { bri_score: '71.50', completed_at: daysBefore(10) });
      await anAssessment(db().knex, second.id, { bri_score: '50.00', completed_at: daysBefore(100) });
      for (const [i, title] of ['Reconcile the books', 'Train a deputy', 'Renew the lease', 'Register trademarks'].entries()) {
        await aTask(db().knex, second.id, { title, due_at: daysBefore(-i - 1) });
      }
      await aTask(db().knex, second.id, { title: 'Done already', status: 'COMPLETED' });
      const { summary } = await run();
      expect(summary).to.include({ usersChecked: 1, signalsCreated: 2, emailsSent: 1 });
      expect(new Set((await signals()).map((s) => s.company_id))).to.deep.equal(new Set([first.id, second.id]));
      expect(sendgrid.accepted()).to.have.length(1);
      const content = sendgrid.accepted()[0]!.body.content as Array<{ type: string; value: string }>;
      const text = content.find((c) => c.type === 'text/plain')!.value;
      const html = content.find((c) => c.type === 'text/html')!.value;
      for (const body of [text, html]) {
        expect(body).to.contain('Alpha Plumbing LLC').and.contain('Beta Bakery Inc.');
        expect(body).to.contain('71.5 / 100').and.contain('60 / 100');
        expect(body).to.contain('4 pending tasks').and.contain('Reconcile the books').and.contain('Renew the lease').and.contain('and 1 more');
        expect(body).not.to.contain('Register trademarks');
        expect(body).not.to.contain('Done already');
        expect(body).to.contain('Get Back on Track');
      }
      expect(html).to.contain(`href='https://app.example.test' style='display:inline-block`);
    });

    it('changes nothing and sends nothing when run again with the same --now', async () => {
      await anOwnedCompany(db().knex, { daysInactive: 45 });
      const other = await anOwnedCompany(db().knex, { daysInactive: 25 });
      await preferences(db().knex, other.user.id, { unsubscribed_all: true });
      const first = await run();
      expect(first.summary).to.include({ signalsCreated: 2, emailsSent: 1, emailsSuppressed: 1 });
      const before = { signals: await signals(), ledger: await ledger(), emails: await emailLog() };
      const second = await run();
      expect(second.summary).to.include({ usersChecked: 2, signalsCreated: 0, signalsEscalated: 0, signalsResolved: 0, emailsSent: 0, emailsSuppressed: 0, skipped: 2 });
      expect(await signals()).to.deep.equal(before.signals);
      expect(await ledger()).to.deep.equal(before.ledger);
      expect(await emailLog()).to.deep.equal(before.emails);
      expect(sendgrid.requests).to.have.length(1);
    });

    it('writes nothing and sends nothing in a dry run, with the counts of a real run', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 50 });
      await anOpenSignal(company.id, user.id);
      await anOwnedCompany(db().knex, { daysInactive: 22 });
      const returned = await anOwnedCompany(db().knex, { daysInactive: 1 });
      await anOpenSignal(returned.company.id, returned.user.id);
      const before = { signals: await signals(), ledger: await ledger(), emails: await emailLog() };
      const dry = await run({ dryRun: true });
      expect(dry.exitCode).to.equal(0);
      expect(dry.summary).to.include({ dryRun: true, usersChecked: 2, signalsCreated: 1, signalsEscalated: 1, signalsResolved: 1, emailsSent: 2 });
      expect(await signals()).to.deep.equal(before.signals);
      expect(await ledger()).to.deep.equal(before.ledger);
      expect(await emailLog()).to.deep.equal(before.emails);
      expect(await db().knex('exitosx_cron.runs').count({ n: '*' }).first()).to.deep.equal({ n: 0 });
      expect(sendgrid.requests).to.have.length(0);
      const real = await run();
      expect(real.summary).to.include({ dryRun: false, usersChecked: 2, signalsCreated: 1, signalsEscalated: 1, signalsResolved: 1, emailsSent: 2 });
    });

    it('retries a 429 honouring Retry-After and sends one email, not two', async function () {
      this.timeout(20_000);
      await anOwnedCompany(db().knex, { daysInactive: 30 });
      sendgrid.failNext({ status: 429, headers: { 'Retry-After': '1' } });
      const started = Date.now();
      const { summary } = await run();
      expect(summary).to.include({ emailsSent: 1, emailsFailed: 0, errors: 0 });
      expect(Date.now() - started).to.be.greaterThanOrEqual(1000);
      expect(sendgrid.requests.map((r) => r.status)).to.deep.equal([429, 202]);
      expect((await emailLog()).map((e) => e.status)).to.deep.equal(['SENT']);
      await run();
      expect(sendgrid.accepted()).to.have.length(1);
    });

    it('counts a rejected nudge as failed without undoing the signal, and the next run sends it', async () => {
      await anOwnedCompany(db().knex, { daysInactive: 30 });
      sendgrid.failNext({ status: 400, body: { errors: [{ message: 'The from address does not match a verified Sender Identity', field: 'from' }] } });
      const failed = await run();
      expect(failed.exitCode).to.equal(0);
      expect(failed.summary).to.include({ signalsCreated: 1, emailsSent: 0, emailsFailed: 1 });
      expect(sendgrid.requests).to.have.length(1);
      const [row] = await emailLog();
      expect(row).to.include({ status: 'FAILED' });
      expect(row!.error).to.contain('400').and.contain('verified Sender Identity');
      const next = await run({ now: new Date(NOW.getTime() + 86_400_000) });
      expect(next.summary).to.include({ signalsCreated: 0, emailsSent: 1 });
      expect((await emailLog()).map((e) => e.status)).to.deep.equal(['SENT']);
    });

    it('sends a nudge owed by a run that stopped after committing its signal', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const id = await anOpenSignal(company.id, user.id, { created_at: NOW, updated_at: NOW });
      const { summary } = await run();
      expect(summary).to.include({ signalsCreated: 0, skipped: 1, emailsSent: 1 });
      expect((await emailLog())[0]!.idempotency_key).to.equal(`inactivity:${user.id}:${id}:MEDIUM`);
    });

    it('never resends a nudge left PENDING by a stopped run: marks it outcome unknown', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const id = await anOpenSignal(company.id, user.id, { created_at: daysBefore(1), updated_at: daysBefore(1) });
      await db().knex('email_log').insert({ user_id: user.id, to_email: user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: `inactivity:${user.id}:${id}:MEDIUM`, status: 'PENDING', created_at: daysBefore(1) });
      const { summary } = await run();
      expect(summary).to.include({ emailsOutcomeUnknown: 1, emailsSent: 0 });
      const [row] = await emailLog();
      expect(row!.status).to.equal('FAILED');
      expect(row!.error).to.match(/^outcome unknown/);
      await run();
      expect(sendgrid.requests).to.have.length(0);
    });

    it('splits users between shards: two shards together handle everyone once', async () => {
      const owners = [];
      for (let i = 0; i < 12; i++) owners.push((await anOwnedCompany(db().knex, { daysInactive: 30 })).user.id);
      const a = await run({}, { SHARD_COUNT: '2', SHARD_INDEX: '0' });
      const b = await run({}, { SHARD_COUNT: '2', SHARD_INDEX: '1' });
      const expected0 = owners.filter((id) => shardOf(id, 2) === 0).length;
      expect(a.summary.usersChecked).to.equal(expected0);
      expect(b.summary.usersChecked).to.equal(12 - expected0);
      expect(expected0).to.be.within(1, 11);
      const all = await signals();
      expect(all).to.have.length(12);
      expect(new Set(all.map((s) => s.user_id))).to.deep.equal(new Set(owners));
      expect(sendgrid.accepted()).to.have.length(12);
      expect(new Set(sendgrid.accepted().map((r) => r.body.custom_args && (r.body.custom_args as Record<string, string>).idempotency_key)).size).to.equal(12);
    });

    it('handles only the given company with --company', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const other = await aCompany(db().knex);
      await aMember(db().knex, other.id, user.id, 'OWNER');
      await anAssessment(db().knex, other.id);
      await anOwnedCompany(db().knex, { daysInactive: 30 });
      const { summary } = await run({ companyId: company.id });
      expect(summary).to.include({ usersChecked: 1, signalsCreated: 1, emailsSent: 1 });
      expect((await signals()).map((s) => s.company_id)).to.deep.equal([company.id]);
    });

    it('isolates a user whose writes fail: logged, counted, listed; the others are done (exit 1)', async () => {
      const broken = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const fine = await anOwnedCompany(db().knex, { daysInactive: 30 });
      await db().knex.raw(`create function fail_for_company() returns trigger language plpgsql as $$
        begin if new.company_id = '${broken.company.id}' then raise exception 'simulated failure for %', new.company_id; end if; return new; end $$`);
      await db().knex.raw('create trigger fail_for_company before insert on signals for each row execute function fail_for_company()');
      try {
        const { exitCode, summary, logs } = await run();
        expect(exitCode).to.equal(1);
        expect(summary).to.include({ success: false, usersChecked: 2, signalsCreated: 1, emailsSent: 1, errors: 1 });
        expect(summary.errorDetails).to.have.length(1);
        expect((summary.errorDetails as Array<Record<string, string>>)[0]).to.include({ kind: 'user', id: broken.user.id });
        expect(logs.find((l) => l.message === 'item:failed')).to.include({ id: broken.user.id });
        expect((await signals()).map((s) => s.user_id)).to.deep.equal([fine.user.id]);
        expect(await ledger()).to.have.length(1);
      } finally {
        await db().knex.raw('drop trigger fail_for_company on signals');
        await db().knex.raw('drop function fail_for_company()');
      }
    });

    it('stops on SIGTERM after the page and emails in hand; the next run sends the nudges still owed, without duplicates', async function () {
      this.timeout(30_000);
      for (let i = 0; i < 12; i++) await anOwnedCompany(db().knex, { daysInactive: 30 });
      sendgrid.delay(300);
      const stop = new AbortController();
      const watch = setInterval(() => {
        if (sendgrid.maxConcurrent() > 0) stop.abort();
      }, 5);
      // The email service claims 8 per chunk (8 × EMAIL_CONCURRENCY) and sends a
      // chunk's nudges in one request, so the stop lands with the page's signals
      // committed, one request of 8 nudges in flight (finished: all 8 sent) and 4 not
      // yet claimed (no row, owed to the next run).
      const first = await runInProcess(job, {}, { database: db().database, env: { ...env(), EMAIL_CONCURRENCY: '1' }, signal: stop.signal }).finally(() => clearInterval(watch));
      expect(first.exitCode).to.equal(143);
      expect(first.summary).to.include({ interrupted: true, signalsCreated: 12, emailsSent: 8 });
      expect((await emailLog()).map((e) => e.status)).to.deep.equal(Array(8).fill('SENT'));
      expect(sendgrid.requests).to.have.length(1);
      expect((sendgrid.requests[0]!.body.personalizations as unknown[]).length).to.equal(8);
      const second = await run();
      expect(second.summary).to.include({ signalsCreated: 0, emailsSent: 4, errors: 0 });
      expect(await signals()).to.have.length(12);
      expect(sendgrid.accepted()).to.have.length(12);
      expect((await emailLog()).map((e) => e.status)).to.deep.equal(Array(12).fill('SENT'));
    });

    it('writes its emails to the outbox when no SendGrid key is set', async () => {
      const { user } = await anOwnedCompany(db().knex, { daysInactive: 30 });
      const fs = await import('node:fs');
      const os = await import('node:os');
      const path = await import('node:path');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-outbox-'));
      try {
        const { summary } = await runInProcess(job, {}, { database: db().database, env: { EMAIL_OUTBOX_DIR: dir } });
        expect(summary).to.include({ emailsSent: 1 });
        const files = fs.readdirSync(dir).sort();
        expect(files.map((f) => path.extname(f))).to.deep.equal(['.eml', '.html']);
        expect(files[0]).to.contain(user.id);
        expect(fs.readFileSync(path.join(dir, files[1]!), 'utf8')).to.contain('Get Back on Track');
        expect((await emailLog())[0]!.provider_message_id).to.match(/^outbox:/);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
