/**
 * Providers that hang (issue 13, part 3): loopback SendGrid and Intuit servers that
 * accept the connection and then never answer (`hang`), answer one byte a second
 * (`trickle`: the status and headers at once, then the body, the case an idle or
 * time-to-first-byte timeout misses), or close the socket half-way through the
 * body (`cut`).
 *
 * - Each call (SendGrid mail/send, Intuit's token refresh, Intuit's reports) ends
 *   within its configured timeout, the body included, and is then retried or failed
 *   as the rules say: a report is a GET, asked again; an email that reached
 *   SendGrid and got no answer may have been delivered, so it is FAILED "outcome
 *   unknown" and never sent again; a refresh is not retried beyond intuit-oauth's
 *   own retries inside the timeout, and nothing of it goes on after the timeout.
 * - Each job, as the real command line, stops within the chart's
 *   terminationGracePeriodSeconds (read from helm/exitosx-cron/values.yaml) when it
 *   gets SIGTERM during such a call, with the default timeouts, and nothing is sent
 *   twice: the loopback SendGrid counts every request it received in full as a
 *   delivery, and a rerun against a healthy SendGrid sends only what is owed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { parse as parseYaml } from 'yaml';
import driftJob from '../../jobs/generate-drift-reports.ts';
import inactivityJob from '../../jobs/detect-inactivity.ts';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { loadConfig } from '../../lib/config.ts';
import { createEmailService, type OutgoingEmail } from '../../lib/email/service.ts';
import { QuickBooksClient } from '../../lib/quickbooks/client.ts';
import { QuickBooksTransientError } from '../../lib/quickbooks/errors.ts';
import { startLoopbackQuickBooks, type HangingFault, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { TokenEndpoint } from '../../lib/quickbooks/oauth.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import type { TestDb } from '../support/db.ts';
import { anOwnedCompany, aUser } from '../support/factories.ts';
import { NOW, ROOT, runCli, runInProcess, type CliResult } from '../support/run.ts';
import type { SendGridServer } from '../support/sendgrid-server.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { counts, maxPerKey, sendgridEnv, usePostgresAndSendGrid } from './support.ts';

const FAULTS: HangingFault[] = ['hang', 'trickle', 'cut'];
/** Room for the work around a call (a database write, a process's own start and exit). */
const MARGIN_MS = 1500;
const quiet = () => createLogger({ level: 'error', pretty: false, stream: new PassThrough().resume() });

/** The chart's terminationGracePeriodSeconds of a job: its own entry, else jobDefaults. */
function chartGraceSeconds(job: string): number {
  const values = parseYaml(fs.readFileSync(path.join(ROOT, 'helm/exitosx-cron/values.yaml'), 'utf8')) as {
    jobDefaults: { terminationGracePeriodSeconds: number };
    jobs: Record<string, { terminationGracePeriodSeconds?: number }>;
  };
  return values.jobs[job]?.terminationGracePeriodSeconds ?? values.jobDefaults.terminationGracePeriodSeconds;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await fn();
  return { value, ms: Date.now() - started };
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A loopback QuickBooks per test with one realm, `realm-1`, and its tokens. */
function useRealmOne(set: (server: LoopbackQuickBooks) => void): void {
  let server: LoopbackQuickBooks;
  beforeEach(async () => {
    server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    server.addTokens('realm-1', { accessToken: 'access-1', refreshToken: 'refresh-1' });
    set(server);
  });
  afterEach(() => server.close());
}

describe('faults: providers that hang', function () {
  this.timeout(120_000);
  let t!: TestDb;
  let sendgrid!: SendGridServer;
  usePostgresAndSendGrid((db, server) => ((t = db), (sendgrid = server)));

  describe('each call ends within its timeout, body included, and is retried or failed as the rules say', () => {
    // Above the trickle's one second between bytes, so that an idle timeout (the
    // socket's, or axios's) would never fire: only a deadline on the whole call can.
    const TIMEOUT_MS = 1500;

    describe('SendGrid mail/send', () => {
      let user: Record<string, unknown> & { id: string };
      beforeEach(async () => {
        user = await aUser(t.knex);
      });
      const service = (db: Knex) =>
        createEmailService({
          config: loadConfig({ ...sendgridEnv(sendgrid, { EMAIL_TIMEOUT_MS: String(TIMEOUT_MS), EMAIL_MAX_RETRIES: '3' }) }),
          db, log: quiet(), dryRun: false, now: NOW, retryMinDelayMs: 10, retryMaxDelayMs: 100,
        });
      const email = (): OutgoingEmail => ({ type: 'INACTIVITY_NUDGE', idempotencyKey: 'hang:1', userId: user.id, to: String(user.email), subject: 'Hello', html: '<p>Hi</p>', text: 'Hi' });

      it(`hang: the email ends at EMAIL_TIMEOUT_MS, is not retried (it reached SendGrid: it may have been delivered), is FAILED "outcome unknown" and never sent again`, async () => {
        sendgrid.hangWith('hang');
        const s = service(t.knex);
        const { value: result, ms } = await timed(() => s.send(email()));
        expect(ms).to.be.within(TIMEOUT_MS - 50, TIMEOUT_MS + MARGIN_MS);
        expect(result.outcome).to.equal('failed');
        expect(result.error).to.match(/^outcome unknown: SendGrid did not answer/);
        expect(sendgrid.requests).to.have.length(1);
        await s.close();

        // A later run, SendGrid healthy again: the key is settled, nothing is sent.
        sendgrid.recover();
        const again = service(t.knex);
        expect(await again.send(email())).to.include({ outcome: 'already', status: 'FAILED' });
        await again.close();
        expect(sendgrid.requests).to.have.length(1);
        expect(maxPerKey(sendgrid)).to.equal(1);
      });

      // SendGrid's verdict is its status line: once a 202 arrived the email is SENT,
      // whether its body then trickles past the deadline or the socket closes mid-body.
      for (const [fault, how, within] of [
        ['trickle', 'then its body a byte a second: the call ends at EMAIL_TIMEOUT_MS', [TIMEOUT_MS - 50, TIMEOUT_MS + MARGIN_MS]],
        ['cut', 'then the socket closed mid-body', [0, MARGIN_MS]],
      ] as const) {
        it(`${fault}: the 202 arrived, ${how}; SendGrid's verdict was given, the email is SENT with its message id, once`, async () => {
          sendgrid.hangWith(fault);
          const s = service(t.knex);
          const { value: result, ms } = await timed(() => s.send(email()));
          expect(ms).to.be.within(within[0], within[1]);
          expect(result).to.deep.equal({ outcome: 'sent', status: 'SENT' });
          await s.close();
          const row = await t.knex('email_log').where({ idempotency_key: 'hang:1' }).first();
          expect(row.provider_message_id).to.equal(sendgrid.requests[0]!.messageId);
          sendgrid.recover();
          const again = service(t.knex);
          expect(await again.send(email())).to.include({ outcome: 'already', status: 'SENT' });
          await again.close();
          expect(sendgrid.requests).to.have.length(1);
        });
      }
    });

    describe('Intuit reports (GET: asked again)', () => {
      let server!: LoopbackQuickBooks;
      useRealmOne((s) => (server = s));

      for (const fault of FAULTS) {
        it(`${fault}: each attempt ends within QUICKBOOKS_TIMEOUT_MS, is retried, and fails as a QuickBooksTransientError`, async () => {
          server.behave('*', { fault });
          const client = new QuickBooksClient({ apiUrl: server.apiUrl, accountingMethod: 'Accrual', maxInFlightPerRealm: 10, maxPerMinutePerRealm: 500, maxInFlight: 10, timeoutMs: TIMEOUT_MS, retries: 1, backoffMs: 10, log: quiet() });
          const { value: error, ms } = await timed(() => client.report('realm-1', 'access-1', 'ProfitAndLoss', { startDate: '2026-01-01', endDate: '2026-03-31' }).then(() => undefined, (e: unknown) => e));
          expect(error).to.be.instanceOf(QuickBooksTransientError);
          expect((error as Error).message).to.match(fault === 'cut' ? /failed: / : /timed out after 1500 ms/);
          expect(server.stats('realm-1').reportRequests).to.equal(2); // the first attempt and one retry
          expect(ms).to.be.below(2 * TIMEOUT_MS + MARGIN_MS);
        });
      }
    });

    describe("Intuit's token endpoint (intuit-oauth)", () => {
      let server!: LoopbackQuickBooks;
      useRealmOne((s) => (server = s));

      for (const fault of FAULTS) {
        it(`${fault}: the refresh ends within QUICKBOOKS_TIMEOUT_MS as a QuickBooksTransientError, and nothing of it goes on afterwards`, async () => {
          server.tokenFault = fault;
          const endpoint = new TokenEndpoint({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, environment: 'production', tokenUrl: server.tokenUrl, timeoutMs: TIMEOUT_MS });
          const { value: error, ms } = await timed(() => endpoint.refresh('refresh-1', 'realm-1', NOW).then(() => undefined, (e: unknown) => e));
          expect(error).to.be.instanceOf(QuickBooksTransientError);
          expect(ms).to.be.below(TIMEOUT_MS + MARGIN_MS);
          // The request in flight was abandoned at the deadline (its connection
          // closed) and no retry of intuit-oauth's reaches Intuit afterwards.
          const requests = server.tokenStats.requests;
          await new Promise((r) => setTimeout(r, 1500)); // past intuit-oauth's first retry (1 s)
          expect(server.tokenStats.requests, 'token requests after the deadline').to.equal(requests);
          expect(server.tokenStats.open, 'token requests still open after the deadline').to.equal(0);
        });
      }
    });

    describe('through the sync: a handled failure with its signal, nothing written', () => {
      let server: LoopbackQuickBooks;
      beforeEach(async () => {
        server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
      });
      afterEach(() => server.close());

      for (const [where, fault] of [['reports', 'trickle'], ['token endpoint', 'hang']] as const) {
        it(`${where} ${fault}: the integration fails (last_sync_error says why), its signal is raised, no period is written; the rerun syncs it`, async () => {
          const i = await anIntegration(t.knex, server, { accessExpiresInMs: where === 'token endpoint' ? 60_000 : 3600_000 });
          if (where === 'reports') server.behave('*', { fault });
          else server.tokenFault = fault;
          const run = await runInProcess(syncJob, {}, { database: t.database, env: qbEnv(server, { QUICKBOOKS_TIMEOUT_MS: '400' }) });
          expect(run.exitCode, JSON.stringify(run.summary)).to.equal(0); // handled, not an unexpected error
          expect(run.summary).to.include({ failed: 1, synced: 0, errors: 0 });
          const row = await t.knex('quickbooks_integrations').where({ id: i.id }).first();
          expect(row.last_sync_status).to.equal('FAILED');
          expect(row.last_sync_error).to.match(where === 'reports' ? /timed out after 400 ms/ : /did not answer within 400 ms/);
          expect(await counts(t.knex)).to.deep.include({ periods: 0, openSignals: 1 });

          server.behave('*', { fault: undefined });
          server.tokenFault = undefined;
          const rerun = await runInProcess(syncJob, { force: true }, { database: t.database, env: qbEnv(server) });
          expect(rerun.summary).to.include({ synced: 1, failed: 0 });
          expect(await counts(t.knex)).to.deep.include({ periods: 25, openSignals: 0 });
        });
      }
    });
  });

  describe('a hanging token endpoint with more refreshes due than database connections', () => {
    let server: LoopbackQuickBooks;
    beforeEach(async () => {
      server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    });
    afterEach(() => server.close());

    it('each refresh waits for a slot, not for a connection (whose 15 s acquire timeout would end the run, exit 3): every integration fails alone, handled', async () => {
      // A daily run refreshes nearly every token (they live an hour). A refresh holds
      // its connection while Intuit answers, here 16 s each (above the acquire timeout).
      const N = 6;
      for (let k = 0; k < N; k++) await anIntegration(t.knex, server, { accessExpiresInMs: 60_000 });
      server.tokenFault = 'hang';
      // The real command line: its pool is DATABASE_POOL_MAX (in-process runs share the test's).
      const run = await runCli(['sync-quickbooks', '--now', NOW.toISOString()], { env: { DATABASE_URL: t.url!, ...qbEnv(server, { QUICKBOOKS_TIMEOUT_MS: '16000', DATABASE_POOL_MAX: '5' }) }, timeoutMs: 110_000 });
      expect(run.code, run.stderr.slice(-2000)).to.equal(0);
      expect(run.summary).to.include({ failed: N, errors: 0 });
      expect((await counts(t.knex)).openSignals).to.equal(N);
    });
  });

  describe('SIGTERM during a hanging call: the job stops within the chart\'s terminationGracePeriodSeconds (default timeouts), nothing sent twice', () => {
    /** Runs the CLI, sends SIGTERM once `ready()` holds, and returns the result and how long the stop took. */
    const terminatedWhen = async (args: string[], env: Record<string, string | undefined>, ready: () => boolean, graceSeconds: number): Promise<{ result: CliResult; stoppedInMs: number }> => {
      let signalledAt = 0;
      const result = await runCli([...args, '--now', NOW.toISOString()], {
        env: { DATABASE_URL: t.url!, ...env },
        timeoutMs: (graceSeconds + 60) * 1000,
        onSpawn: (child) => {
          // A run that ends before its calls hang is caught by the exit-code check below.
          until('the hanging calls', ready, 60_000).then(() => {
            signalledAt = Date.now();
            child.kill('SIGTERM');
          }, () => undefined);
        },
      });
      const stoppedInMs = Date.now() - signalledAt;
      console.log(`        (stopped ${stoppedInMs} ms after SIGTERM; grace ${graceSeconds} s)`);
      return { result, stoppedInMs };
    };

    // hang: nothing must start after SIGTERM (each request would cost a whole
    // timeout); trickle: the request in flight ends at its deadline.
    for (const [job, def, fault] of [['generate-drift-reports', driftJob, 'hang'], ['detect-inactivity', inactivityJob, 'trickle']] as const) {
      it(`${job}, SendGrid ${fault}: exit 143 within the grace period; every email delivered at most once; the rerun sends the rest`, async () => {
        const grace = chartGraceSeconds(job);
        // More emails than one chunk: the service claims 64 (8 × EMAIL_CONCURRENCY) and
        // sends them in one request (SendGrid personalizations; these reports and nudges
        // all have one shape); the other 8 wait for the next chunk.
        const N = 72;
        const CHUNK = 64;
        for (let i = 0; i < N; i++) await anOwnedCompany(t.knex, { daysInactive: 30 });
        sendgrid.hangWith(fault);
        const { result, stoppedInMs } = await terminatedWhen([job], sendgridEnv(sendgrid, { EMAIL_MAX_RETRIES: '4' }), () => sendgrid.requests.length >= 1, grace);
        expect(result.code, result.stderr.slice(-3000)).to.equal(143);
        expect(stoppedInMs, `stopped ${stoppedInMs} ms after SIGTERM; grace ${grace} s`).to.be.below(grace * 1000);
        expect(result.summary).to.include({ interrupted: true });
        expect(sendgrid.requests.length, 'no request started after SIGTERM').to.equal(1);
        expect(sendgrid.delivered(), 'the emails of the request in flight').to.have.length(CHUNK);
        const mid = await counts(t.knex);
        expect(mid.emails.PENDING ?? 0).to.equal(0);
        // The request in flight ended at its timeout: never answered (hang), "outcome
        // unknown" for each of its emails, never resent; a 202 whose body trickles
        // (trickle), SENT. The next chunk was not claimed: owed, with no row.
        const inFlight = await t.knex('email_log').select('status', 'error');
        const settled = fault === 'hang' ? inFlight.filter((r) => String(r.error).startsWith('outcome unknown')) : inFlight.filter((r) => r.status === 'SENT');
        expect(settled).to.have.length(CHUNK);
        expect(inFlight).to.have.length(CHUNK);

        sendgrid.recover();
        const rerun = await runInProcess(def, {}, { database: t.database, env: sendgridEnv(sendgrid) });
        expect(rerun.summary).to.include({ emailsSent: N - CHUNK });
        expect(maxPerKey(sendgrid)).to.equal(1);
        expect(sendgrid.delivered()).to.have.length(N);
      });
    }

    describe('sync-quickbooks', () => {
      let server: LoopbackQuickBooks;
      beforeEach(async () => {
        server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
      });
      afterEach(() => server.close());

      for (const [where, fault] of [['reports', 'hang'], ['token endpoint', 'trickle']] as const) {
        it(`${where} ${fault}: exit 143 within the grace period; each integration synced whole or not at all; the rerun syncs them`, async () => {
          const grace = chartGraceSeconds('sync-quickbooks');
          // Token endpoint: more integrations than refresh slots (DATABASE_POOL_MAX - 2;
          // a refresh runs in a transaction holding a connection and the row lock), so
          // that most wait for one; none may start a refresh after SIGTERM, or each
          // would add a whole timeout. (Waiting for a connection instead would end the
          // run at the pool's 15 s acquire timeout, exit 3.)
          const N = where === 'reports' ? 3 : 6;
          for (let k = 0; k < N; k++) await anIntegration(t.knex, server, { accessExpiresInMs: where === 'token endpoint' ? 60_000 : 3600_000 });
          if (where === 'reports') server.behave('*', { fault });
          else server.tokenFault = fault;
          const env = { ...qbEnv(server), QUICKBOOKS_TIMEOUT_MS: undefined, ...(where === 'token endpoint' ? { DATABASE_POOL_MAX: '3' } : {}) };
          // Reports: every integration's two reports hang. Token endpoint: the
          // credentials probe (answered) and the first refresh (trickling) are in.
          const { result, stoppedInMs } = await terminatedWhen(['sync-quickbooks'], env, () => (where === 'reports' ? server.stats('*').reportRequests >= 2 * N : server.tokenStats.requests >= 2), grace);
          expect(result.code, result.stderr.slice(-3000)).to.equal(143);
          expect(stoppedInMs, `stopped ${stoppedInMs} ms after SIGTERM; grace ${grace} s`).to.be.below(grace * 1000);
          // Nothing half-written: no period. A refresh the stop waited for and that then
          // timed out is Intuit's failure (FAILED, with its signal), not the stop's.
          const mid = await counts(t.knex);
          expect(mid.periods).to.equal(0);
          if (where === 'reports') expect(mid.signals).to.equal(0);

          server.behave('*', { fault: undefined });
          server.tokenFault = undefined;
          const rerun = await runInProcess(syncJob, { force: true }, { database: t.database, env: qbEnv(server) });
          expect(rerun.summary, JSON.stringify(rerun.summary)).to.include({ synced: N, failed: 0 });
          const end = await counts(t.knex);
          expect(end.periods).to.equal(N * 25);
          expect(end.ledger.FINANCIALS_SYNCED).to.equal(N);
          expect(end.openSignals).to.equal(0);
        });
      }
    });
  });
});
