/**
 * The email service against real databases and the loopback SendGrid: idempotency
 * through email_log, suppression, retries (429 with Retry-After, 5xx, network),
 * no retry on other 4xx, stale PENDING rows, dry runs, the outbox transport.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { loadConfig } from '../../lib/config.ts';
import { createEmailService, type BatchEmail, type EmailService, type OutgoingEmail } from '../../lib/email/service.ts';
import { renderInactivityNudge } from '../../lib/email/templates/inactivity-nudge.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import { eachBackend } from '../support/db.ts';
import { aUser, daysBefore } from '../support/factories.ts';
import { NOW } from '../support/run.ts';
import { useSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';

type Row = Record<string, unknown>;

describe('email service', function () {
  let sendgrid!: SendGridServer;
  useSendGridServer((server) => (sendgrid = server));

  eachBackend((db) => {
    const services: EmailService[] = [];
    /** This test's log lines (emptied before each test: one test's lines never satisfy another's check). */
    const logLines: Array<Record<string, unknown>> = [];
    let user: Row & { id: string };
    beforeEach(async () => {
      await db().truncate();
      sendgrid.requests.length = 0;
      sendgrid.recover();
      logLines.length = 0;
      user = await aUser(db().knex);
    });
    afterEach(async () => {
      for (const s of services.splice(0)) await s.close();
    });

    const service = (over: { env?: Record<string, string>; dryRun?: boolean; now?: Date; signal?: AbortSignal } = {}) => {
      const stream = new PassThrough();
      stream.on('data', (c: Buffer) => {
        for (const l of c.toString().split('\n')) if (l.trim()) logLines.push(JSON.parse(l) as Record<string, unknown>);
      });
      const config = loadConfig({ SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url, EMAIL_MAX_RETRIES: '2', APP_BASE_URL: 'https://app.example.test', ...over.env });
      const s = createEmailService({ config, db: db().knex, log: createLogger({ level: 'debug', pretty: false, stream }), dryRun: over.dryRun ?? false, now: over.now ?? NOW, retryMinDelayMs: 10, retryMaxDelayMs: 2000, ...(over.signal ? { signal: over.signal } : {}) });
      services.push(s);
      return s;
    };
    const email = (key = 'test:1'): OutgoingEmail => ({ type: 'INACTIVITY_NUDGE', idempotencyKey: key, userId: user.id, to: String(user.email), subject: 'Hello <there>', html: '<p>Hi</p>', text: 'Hi' });
    const rows = (): Promise<Row[]> => db().knex('email_log').orderBy('idempotency_key');

    it('sends through SendGrid a request valid against the official schema, and records SENT', async () => {
      const result = await service().send(email());
      expect(result).to.deep.equal({ outcome: 'sent', status: 'SENT' });
      const [req] = sendgrid.requests;
      expect(req!.status).to.equal(202);
      expect(req!.headers.authorization).to.equal(`Bearer ${sendgrid.apiKey}`);
      expect(req!.body).to.deep.include({ subject: 'Hello <there>', from: { email: 'no-reply@exitosx.com', name: 'Exit OSx' }, categories: ['inactivity-nudge'] });
      expect(req!.body.personalizations).to.deep.equal([{ to: [{ email: user.email }] }]);
      const [row] = await rows();
      expect(row).to.include({ status: 'SENT', provider_message_id: req!.messageId, email_type: 'INACTIVITY_NUDGE', to_email: user.email, user_id: user.id, error: null });
      expect(new Date(row!.sent_at as Date).toISOString()).to.equal(NOW.toISOString());
      expect(req!.body.custom_args).to.deep.equal({ idempotency_key: 'test:1', email_type: 'INACTIVITY_NUDGE', email_log_id: row!.id });
      expect(req!.body.headers).to.deep.equal({ 'List-Unsubscribe': `<https://app.example.test/email/unsubscribe?token=${String(row!.id)}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' });
    });

    for (const type of ['DRIFT_REPORT', 'INACTIVITY_NUDGE'] as const) {
      it(`${type} emails carry the product app's one-click unsubscribe (RFC 8058): POST /email/unsubscribe?token=<its email_log id>`, async () => {
        expect(await service().send({ ...email(`${type}:1`), type })).to.deep.equal({ outcome: 'sent', status: 'SENT' });
        const [row] = await rows();
        // The literal URL the app serves, written out here (not built by the code under test).
        expect(sendgrid.requests[0]!.body.headers).to.deep.equal({
          'List-Unsubscribe': `<https://app.example.test/email/unsubscribe?token=${encodeURIComponent(String(row!.id))}>`,
          'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
        });
        expect(sendgrid.requests[0]!.body.categories).to.deep.equal([type === 'DRIFT_REPORT' ? 'drift-report' : 'inactivity-nudge']);
      });
    }

    it('answers already for a key sent before, and sends nothing', async () => {
      await service().send(email());
      const again = await service().send(email());
      expect(again).to.deep.equal({ outcome: 'already', status: 'SENT' });
      expect(sendgrid.requests).to.have.length(1);
    });

    it('sends one email when two services race for the same key', async () => {
      const [a, b] = await Promise.all([service().send(email()), service().send(email())]);
      expect([a.outcome, b.outcome].sort()).to.deep.equal(['already', 'sent']);
      expect(sendgrid.requests).to.have.length(1);
    });

    it('records a suppressed email without sending it, and never sends that key later', async () => {
      const s = service();
      expect(await s.send(email(), { suppress: 'preferences' })).to.deep.equal({ outcome: 'suppressed', status: 'SUPPRESSED' });
      expect(await s.send(email())).to.deep.include({ outcome: 'already', status: 'SUPPRESSED' });
      expect(sendgrid.requests).to.have.length(0);
      expect((await rows()).map((r) => [r.status, r.error])).to.deep.equal([['SUPPRESSED', 'suppressed: preferences']]);
    });

    it('does not overwrite a SENT email with a later suppression', async () => {
      await service().send(email());
      expect(await service().send(email(), { suppress: 'cap' })).to.deep.equal({ outcome: 'already', status: 'SENT' });
    });

    it('turns a failed attempt into SUPPRESSED when the caller now suppresses it', async () => {
      sendgrid.failNext({ status: 400 });
      expect((await service().send(email())).outcome).to.equal('failed');
      expect(await service().send(email(), { suppress: 'preferences' })).to.deep.equal({ outcome: 'suppressed', status: 'SUPPRESSED' });
      expect((await rows()).map((r) => [r.status, r.error])).to.deep.equal([['SUPPRESSED', 'suppressed: preferences']]);
      expect(sendgrid.requests).to.have.length(1);
    });

    it('retries a 429 after the Retry-After it was given', async function () {
      this.timeout(10_000);
      sendgrid.failNext({ status: 429, headers: { 'Retry-After': '1' } });
      const started = Date.now();
      expect((await service().send(email())).outcome).to.equal('sent');
      expect(Date.now() - started).to.be.greaterThanOrEqual(1000);
      expect(sendgrid.requests.map((r) => r.status)).to.deep.equal([429, 202]);
    });

    it('honours X-RateLimit-Reset when there is no Retry-After', async function () {
      this.timeout(10_000);
      sendgrid.failNext({ status: 429, headers: { 'X-RateLimit-Reset': String(Math.ceil(Date.now() / 1000) + 1) } });
      const started = Date.now();
      expect((await service().send(email())).outcome).to.equal('sent');
      expect(Date.now() - started).to.be.greaterThanOrEqual(500);
    });

    it('retries 5xx with backoff and records FAILED when retries run out; a later run sends it', async () => {
      sendgrid.failAlways({ status: 500 });
      const failed = await service().send(email());
      expect(failed.outcome).to.equal('failed');
      expect(failed.status).to.equal('FAILED');
      expect(failed.error).to.contain('SendGrid answered 500');
      expect(sendgrid.requests).to.have.length(3); // 1 + EMAIL_MAX_RETRIES (2)
      expect((await rows())[0]).to.include({ status: 'FAILED' });
      sendgrid.recover();
      const later = await service({ now: new Date(NOW.getTime() + 86_400_000) }).send(email());
      expect(later).to.deep.equal({ outcome: 'sent', status: 'SENT' });
      expect((await rows()).map((r) => r.status)).to.deep.equal(['SENT']);
    });

    it('never retries a 400 and keeps the reason, redacted', async () => {
      sendgrid.failNext({ status: 400, body: { errors: [{ message: `bad request with api_key=${sendgrid.apiKey}`, field: 'from' }] } });
      const failed = await service().send(email());
      expect(failed.outcome).to.equal('failed');
      expect(sendgrid.requests).to.have.length(1);
      const [row] = await rows();
      expect(row!.error).to.contain('SendGrid answered 400').and.not.contain(sendgrid.apiKey);
    });

    it('fails with 401 (never retried) when the API key is wrong', async () => {
      const result = await service({ env: { SENDGRID_API_KEY: 'SG.wrong-key.0123456789abcdef' } }).send(email());
      expect(result.outcome).to.equal('failed');
      expect(result.error).to.contain('401');
      expect(sendgrid.requests).to.have.length(1);
      expect(JSON.stringify(logLines)).not.to.contain('SG.wrong-key.0123456789abcdef');
    });

    it('retries network errors and records FAILED when the API cannot be reached', async function () {
      this.timeout(10_000);
      const result = await service({ env: { SENDGRID_API_URL: 'http://127.0.0.1:9' } }).send(email());
      expect(result.outcome).to.equal('failed');
      expect(result.error).to.match(/SendGrid unreachable/);
      expect(logLines.filter((l) => l.message === 'email:retry' && String(l.error).includes('unreachable')).length).to.be.greaterThanOrEqual(2);
    });

    it('times out a request that hangs, and does not retry it once it was sent (it may have been delivered)', async function () {
      this.timeout(10_000);
      const sockets = new Set<Socket>();
      let received = 0;
      const hanging = http.createServer(() => void received++);
      hanging.on('connection', (s) => sockets.add(s));
      await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
      try {
        const port = (hanging.address() as AddressInfo).port;
        const started = Date.now();
        const result = await service({ env: { SENDGRID_API_URL: `http://127.0.0.1:${port}`, EMAIL_TIMEOUT_MS: '200', EMAIL_MAX_RETRIES: '1' } }).send(email());
        expect(result.outcome).to.equal('failed');
        expect(result.error).to.match(/^outcome unknown: /);
        expect(Date.now() - started).to.be.lessThan(5000);
        // The request went out in full, then no answer: one request, no retry (EMAIL_MAX_RETRIES=1 is not used).
        expect(received).to.equal(1);
        expect(logLines.filter((l) => l.message === 'email:retry')).to.deep.equal([]);
        expect((await rows()).map((r) => [r.status, r.error])).to.deep.equal([['FAILED', result.error]]);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((r) => hanging.close(r));
      }
    });

    it('ends a 202 whose body never ends at the timeout (it covers the whole request): SendGrid accepted it, so it is sent, once', async function () {
      this.timeout(10_000);
      const sockets = new Set<Socket>();
      let requests = 0;
      // Headers at once, then a trickle of body that never completes.
      const trickling = http.createServer((req, res) => {
        requests++;
        req.resume();
        res.writeHead(202, { 'content-type': 'application/json', 'x-message-id': 'never-complete' });
        const tick = setInterval(() => res.write(' '), 50);
        res.on('close', () => clearInterval(tick));
      });
      trickling.on('connection', (s) => sockets.add(s));
      await new Promise<void>((r) => trickling.listen(0, '127.0.0.1', r));
      try {
        const port = (trickling.address() as AddressInfo).port;
        const started = Date.now();
        const result = await service({ env: { SENDGRID_API_URL: `http://127.0.0.1:${port}`, EMAIL_TIMEOUT_MS: '300', EMAIL_MAX_RETRIES: '1' } }).send(email());
        expect(result).to.deep.equal({ outcome: 'sent', status: 'SENT' });
        expect(requests).to.equal(1);
        expect(Date.now() - started).to.be.within(250, 5000);
        expect((await rows()).map((r) => [r.status, r.provider_message_id])).to.deep.equal([['SENT', 'never-complete']]);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((r) => trickling.close(r));
      }
    });

    it('marks a stale PENDING row outcome unknown, counts it, and never resends it', async () => {
      await db().knex('email_log').insert({ user_id: user.id, to_email: user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: 'test:1', status: 'PENDING', created_at: daysBefore(1) });
      await db().knex('email_log').insert({ user_id: user.id, to_email: user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: 'test:fresh', status: 'PENDING', created_at: NOW });
      const s = service();
      expect(await s.recoverStale()).to.equal(1);
      const result = await s.send(email());
      expect(result.outcome).to.equal('already');
      expect(result.status).to.equal('FAILED');
      expect(result.error).to.match(/^outcome unknown/);
      expect(await service({ now: new Date(NOW.getTime() + 86_400_000 * 2) }).send(email('test:1'))).to.include({ outcome: 'already', status: 'FAILED' });
      expect(sendgrid.requests).to.have.length(0);
    });

    it('answers already (PENDING) for a key another run is sending right now', async () => {
      await db().knex('email_log').insert({ user_id: user.id, to_email: user.email, email_type: 'INACTIVITY_NUDGE', idempotency_key: 'test:1', status: 'PENDING', created_at: NOW });
      expect(await service().send(email())).to.deep.equal({ outcome: 'already', status: 'PENDING' });
      expect(sendgrid.requests).to.have.length(0);
    });

    it('sends nothing in a dry run and reports the email as would-send', async () => {
      const trx = await db().knex.transaction();
      try {
        const config = loadConfig({ SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url });
        const s = createEmailService({ config, db: trx, log: createLogger({ level: 'error', pretty: false, stream: new PassThrough() }), dryRun: true, now: NOW });
        expect(await s.send(email())).to.deep.equal({ outcome: 'sent', status: 'SENT' });
        await s.close();
      } finally {
        await trx.rollback();
      }
      expect(sendgrid.requests).to.have.length(0);
      expect(await rows()).to.have.length(0);
    });

    it('keeps at most EMAIL_CONCURRENCY requests in flight', async () => {
      sendgrid.delay(50);
      const s = service({ env: { EMAIL_CONCURRENCY: '2' } });
      await Promise.all(Array.from({ length: 6 }, (_, i) => s.send(email(`test:c${i}`))));
      expect(sendgrid.accepted()).to.have.length(6);
      expect(sendgrid.maxConcurrent()).to.equal(2);
    });

    describe('sendMany', () => {
      /** Statements the service sends while `fn` runs, by leading verb. */
      const statements = async (fn: () => Promise<unknown>): Promise<string[]> => {
        const seen: string[] = [];
        const listener = (q: { sql: string }) => seen.push(q.sql.trim().split(/\s+/)[0]!.toLowerCase());
        db().knex.on('query', listener);
        try {
          await fn();
        } finally {
          db().knex.removeListener('query', listener);
        }
        return seen;
      };

      it('answers each email as send would, in order: new, suppressed, sent before, failed before, bad address', async () => {
        await service().send(email('m:sent-before'));
        sendgrid.failNext({ status: 400 });
        await service().send(email('m:failed-before'));
        sendgrid.requests.length = 0;
        const results = await service().sendMany([
          { email: email('m:new') },
          { email: email('m:suppressed'), options: { suppress: 'preferences' } },
          { email: email('m:sent-before') },
          { email: email('m:failed-before') },
          { email: { ...email('m:bad'), to: 'not-an-address' } },
        ]);
        expect(results.map((r) => r.outcome)).to.deep.equal(['sent', 'suppressed', 'already', 'sent', 'failed']);
        expect(results[4]!.error).to.match(/invalid recipient address/);
        expect(sendgrid.accepted().map((r) => (r.body.custom_args as Record<string, string>).idempotency_key).sort()).to.deep.equal(['m:failed-before', 'm:new']);
        expect((await rows()).map((r) => [r.idempotency_key, r.status])).to.deep.equal([
          ['m:bad', 'FAILED'], ['m:failed-before', 'SENT'], ['m:new', 'SENT'], ['m:sent-before', 'SENT'], ['m:suppressed', 'SUPPRESSED'],
        ]);
        const sent = await db().knex('email_log').where({ idempotency_key: 'm:new' }).first();
        expect(sent.provider_message_id).to.equal(sendgrid.accepted().find((r) => (r.body.custom_args as Record<string, string>).idempotency_key === 'm:new')!.messageId);
      });

      it('claims and records a chunk (8 × EMAIL_CONCURRENCY) per statement, with at most EMAIL_CONCURRENCY in flight', async () => {
        sendgrid.delay(5);
        const s = service({ env: { EMAIL_CONCURRENCY: '2' } });
        await s.recoverStale();
        let results: Awaited<ReturnType<EmailService['sendMany']>> = [];
        const verbs = await statements(async () => {
          results = await s.sendMany(Array.from({ length: 40 }, (_, i) => ({ email: email(`m:${String(i).padStart(2, '0')}`) })));
        });
        expect(results.every((r) => r.outcome === 'sent')).to.equal(true);
        // 40 emails in chunks of 16: three claims (insert) and three "mark sent" (update).
        expect(verbs).to.deep.equal(['insert', 'update', 'insert', 'update', 'insert', 'update']);
        expect(sendgrid.accepted()).to.have.length(40);
        expect(sendgrid.maxConcurrent()).to.equal(2);
        expect((await rows()).filter((r) => r.status === 'SENT' && r.provider_message_id)).to.have.length(40);
      });

      it('claims no further chunk once the run is asked to stop: those emails are stopped, with no row, and still owed', async () => {
        const stop = new AbortController();
        const s = service({ env: { EMAIL_CONCURRENCY: '1' }, signal: stop.signal });
        await s.recoverStale();
        // The stop request comes once SendGrid has received the first email (answered
        // 100 ms later), whatever the machine's speed: that email is in flight.
        sendgrid.delay(100);
        const firstReceived = sendgrid.nextRequest();
        const pending = s.sendMany(Array.from({ length: 12 }, (_, i) => ({ email: email(`m:${String(i).padStart(2, '0')}`) })));
        await firstReceived;
        stop.abort();
        const results = await pending;
        // The first chunk (8) was claimed before the stop: the email in flight is
        // finished; the 7 waiting for a slot are not started (each could cost a whole
        // EMAIL_TIMEOUT_MS against a hanging SendGrid, past the pod's grace period) and
        // are recorded FAILED "not sent", owed; the other 4 are not claimed.
        expect(results.map((r) => r.outcome)).to.deep.equal([...Array(1).fill('sent'), ...Array(11).fill('stopped')]);
        expect(results[1]).to.include({ outcome: 'stopped', status: 'FAILED' });
        expect(results.at(-1)).to.deep.equal({ outcome: 'stopped', status: 'UNSENT' });
        expect(await rows()).to.have.length(8);
        expect(sendgrid.requests).to.have.length(1);
        const later = await service().sendMany(Array.from({ length: 12 }, (_, i) => ({ email: email(`m:${String(i).padStart(2, '0')}`) })));
        expect(later.map((r) => r.outcome)).to.deep.equal([...Array(1).fill('already'), ...Array(11).fill('sent')]);
        expect(sendgrid.accepted()).to.have.length(12);
      });

      it('sends nothing in a dry run', async () => {
        const trx = await db().knex.transaction();
        try {
          const config = loadConfig({ SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url });
          const s = createEmailService({ config, db: trx, log: createLogger({ level: 'error', pretty: false, stream: new PassThrough() }), dryRun: true, now: NOW });
          expect((await s.sendMany([{ email: email('m:1') }, { email: email('m:2'), options: { suppress: 'cap' } }])).map((r) => r.outcome)).to.deep.equal(['sent', 'suppressed']);
          await s.close();
        } finally {
          await trx.rollback();
        }
        expect(sendgrid.requests).to.have.length(0);
        expect(await rows()).to.have.length(0);
      });
    });

    describe('sendMany, groupable emails (SendGrid personalizations)', () => {
      const APP = 'https://app.example.test';
      /** A nudge, rendered as the job renders it; `company` makes each one's content its own. */
      const render = (company: string, name = 'Jane Owner', titles: string[] = ['Reconcile the books']) =>
        renderInactivityNudge({ userName: name, daysInactive: 30, companies: [{ name: company, briScore: '61.20', pendingTaskCount: titles.length, pendingTaskTitles: titles }] }, APP);
      const nudge = (key: string, company: string, over: { to?: string; titles?: string[] } = {}): BatchEmail => ({
        email: { type: 'INACTIVITY_NUDGE', idempotencyKey: key, userId: user.id, to: over.to ?? String(user.email) },
        render: () => render(company, undefined, over.titles),
        groupable: true,
      });
      const byKey = () => new Map(sendgrid.accepted().map((r) => [(r.body.custom_args as Record<string, string>).idempotency_key, r]));
      const companies = ['Alpha Plumbing LLC', 'Bäckerei <Beta> & Söhne', 'Gamma 100% Growth', 'Delta "Quotes" Ltd', 'Épsilon Café'];

      it('sends a chunk of them in one request, each delivered exactly as it would be alone, and records each SENT', async () => {
        const results = await service().sendMany(companies.map((c, i) => nudge(`g:${i}`, c)));
        expect(results.map((r) => r.outcome)).to.deep.equal(Array(5).fill('sent'));
        expect(sendgrid.requests).to.have.length(1);
        const [request] = sendgrid.requests;
        expect(request!.status, JSON.stringify(request!.errors)).to.equal(202);
        expect(request!.body.personalizations).to.have.length(5);
        const logRows = await rows();
        const mails = byKey();
        for (const [i, company] of companies.entries()) {
          const row = logRows.find((r) => r.idempotency_key === `g:${i}`)!;
          expect(row).to.include({ status: 'SENT', provider_message_id: request!.messageId });
          const mail = mails.get(`g:${i}`)!;
          const alone = render(company);
          // What SendGrid fills in from the request is what a request of its own would carry.
          expect(mail.body.subject).to.equal(alone.subject);
          expect(mail.body.content).to.deep.equal([{ type: 'text/plain', value: alone.text }, { type: 'text/html', value: alone.html }]);
          expect(alone.html).to.contain(company.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace(/"/g, '&quot;'));
          expect(JSON.stringify(mail.body)).not.to.match(/%%\w+%%/);
          expect(mail.body.personalizations).to.deep.equal([{ to: [{ email: user.email }] }]);
          expect(mail.body.custom_args).to.deep.equal({ idempotency_key: `g:${i}`, email_type: 'INACTIVITY_NUDGE', email_log_id: row.id });
          expect(mail.body.headers).to.deep.equal({ 'List-Unsubscribe': `<${APP}/email/unsubscribe?token=${String(row.id)}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' });
          expect(mail.body.categories).to.deep.equal(['inactivity-nudge']);
        }
      });

      it('sends one alone when SendGrid could not fill it from the template: substitutions over 10,000 bytes, or %% in a value', async () => {
        const long = Array.from({ length: 3 }, (_, i) => `${'Review every supplier contract and renegotiate the terms '.repeat(60)}${i}`);
        const results = await service().sendMany([nudge('g:a', 'Alpha'), nudge('g:long', 'Long Titles Inc.', { titles: long }), nudge('g:pct', 'Save %%body%% Co'), nudge('g:b', 'Beta')]);
        expect(results.map((r) => r.outcome)).to.deep.equal(Array(4).fill('sent'));
        expect(sendgrid.requests.map((r) => (r.body.personalizations as unknown[]).length).sort()).to.deep.equal([1, 1, 2]);
        expect(sendgrid.requests.every((r) => r.status === 202)).to.equal(true);
        const mails = byKey();
        expect((mails.get('g:pct')!.body.content as Array<{ value: string }>)[1]!.value).to.contain('Save %%body%% Co');
        expect((mails.get('g:long')!.body.content as Array<{ value: string }>)[1]!.value).to.contain(long[2]!.slice(-40));
      });

      it('sends each alone when SendGrid refuses the request (400), so that only the bad one fails', async () => {
        // Plausible to the service, refused by SendGrid's schema (format: email).
        const results = await service().sendMany([nudge('g:0', 'Alpha'), nudge('g:bad', 'Beta', { to: 'a..b@example.com' }), nudge('g:2', 'Gamma')]);
        expect(results.map((r) => r.outcome)).to.deep.equal(['sent', 'failed', 'sent']);
        expect(results[1]!.error).to.match(/SendGrid answered 400/);
        expect(sendgrid.requests.map((r) => [r.status, (r.body.personalizations as unknown[]).length])).to.deep.members([[400, 3], [202, 1], [400, 1], [202, 1]]);
        expect(sendgrid.requests[0]).to.include({ status: 400 });
        expect((await rows()).map((r) => [r.idempotency_key, r.status])).to.deep.equal([['g:0', 'SENT'], ['g:2', 'SENT'], ['g:bad', 'FAILED']]);
        expect(logLines.filter((l) => l.message === 'email:group-refused')).to.have.length(1);
      });

      it('retries the whole request on a 5xx, and records every member SENT once', async () => {
        sendgrid.failNext({ status: 503 });
        const results = await service().sendMany(companies.map((c, i) => nudge(`g:${i}`, c)));
        expect(results.map((r) => r.outcome)).to.deep.equal(Array(5).fill('sent'));
        expect(sendgrid.requests.map((r) => [r.status, (r.body.personalizations as unknown[]).length])).to.deep.equal([[503, 5], [202, 5]]);
        expect(sendgrid.accepted()).to.have.length(5);
      });

      it('records every member FAILED "outcome unknown" when the request went out and no answer came; never resent', async function () {
        this.timeout(10_000);
        sendgrid.hangWith('hang');
        const results = await service({ env: { EMAIL_TIMEOUT_MS: '300' } }).sendMany(companies.slice(0, 3).map((c, i) => nudge(`g:${i}`, c)));
        expect(results.map((r) => r.outcome)).to.deep.equal(Array(3).fill('failed'));
        for (const r of results) expect(r.error).to.match(/^outcome unknown: /);
        expect(sendgrid.requests).to.have.length(1);
        expect(sendgrid.delivered()).to.have.length(3);
        sendgrid.recover();
        const later = await service().sendMany(companies.slice(0, 3).map((c, i) => nudge(`g:${i}`, c)));
        expect(later.map((r) => r.outcome)).to.deep.equal(Array(3).fill('already'));
        expect(sendgrid.requests).to.have.length(1);
      });

      it('sends them one by one to the outbox (no group request there)', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-outbox-'));
        try {
          const results = await service({ env: { SENDGRID_API_KEY: '', EMAIL_OUTBOX_DIR: dir } }).sendMany(companies.slice(0, 2).map((c, i) => nudge(`g:${i}`, c)));
          expect(results.map((r) => r.outcome)).to.deep.equal(['sent', 'sent']);
          expect(fs.readFileSync(path.join(dir, 'g_0.html'), 'utf8')).to.equal(render(companies[0]!).html);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
        expect(sendgrid.requests).to.have.length(0);
      });
    });

    it('writes .eml and .html files to the outbox when no API key is set', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-outbox-'));
      try {
        const s = service({ env: { SENDGRID_API_KEY: '', EMAIL_OUTBOX_DIR: dir } });
        expect(s.transport).to.equal('outbox');
        expect(await s.send({ ...email('inactivity:u1:s1:MEDIUM'), subject: 'We haven’t seen you' })).to.deep.equal({ outcome: 'sent', status: 'SENT' });
        expect(fs.readdirSync(dir).sort()).to.deep.equal(['inactivity_u1_s1_MEDIUM.eml', 'inactivity_u1_s1_MEDIUM.html']);
        const eml = fs.readFileSync(path.join(dir, 'inactivity_u1_s1_MEDIUM.eml'), 'utf8');
        expect(eml).to.contain(`To: ${String(user.email)}`).and.contain('List-Unsubscribe-Post: List-Unsubscribe=One-Click').and.contain('multipart/alternative');
        expect(eml).to.contain('Subject: =?UTF-8?B?');
        expect(fs.readFileSync(path.join(dir, 'inactivity_u1_s1_MEDIUM.html'), 'utf8')).to.equal('<p>Hi</p>');
        expect((await rows())[0]!.provider_message_id).to.equal('outbox:inactivity_u1_s1_MEDIUM');
        expect(sendgrid.requests).to.have.length(0);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
