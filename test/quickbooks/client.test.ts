import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { QuickBooksClient, parseFault, retryAfterMs } from '../../lib/quickbooks/client.ts';
import { QuickBooksApiError, QuickBooksAuthError, QuickBooksTransientError } from '../../lib/quickbooks/errors.ts';
import type { LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { useTwoRealmLoopback } from './support.ts';
import { parseProfitAndLoss } from '../../lib/quickbooks/report-parser.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../support/run.ts';

function capture() {
  const stream = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  stream.on('data', (c: Buffer) => c.toString().split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l) as Record<string, unknown>)));
  return { log: createLogger({ level: 'debug', pretty: false, stream }), lines };
}

const RANGE = { startDate: '2025-01-01', endDate: '2025-12-31' };

describe('QuickBooks client against the loopback server', () => {
  let server!: LoopbackQuickBooks;
  useTwoRealmLoopback((s) => (server = s));

  const client = (over: Partial<ConstructorParameters<typeof QuickBooksClient>[0]> = {}) =>
    new QuickBooksClient({ apiUrl: server.apiUrl, accountingMethod: 'Accrual', maxInFlightPerRealm: 10, maxPerMinutePerRealm: 500, maxInFlight: 100, timeoutMs: 2000, backoffMs: 10, log: capture().log, ...over });

  it('fetches a monthly report with minorversion=75 and Accept: application/json', async () => {
    const report = await client().report('111', 'good-access-1', 'ProfitAndLoss', RANGE);
    const cols = parseProfitAndLoss(report);
    expect(cols).to.have.length(12);
    expect(cols[0]).to.include({ start: '2025-01-01', end: '2025-01-31' });
  });

  it('keeps at most maxInFlightPerRealm requests in flight per realm, and the global limit across realms', async () => {
    server.behave('*', { latencyMs: 40 });
    const c = client({ maxInFlightPerRealm: 3, maxInFlight: 4 });
    await Promise.all([
      ...Array.from({ length: 12 }, () => c.report('111', 'good-access-1', 'BalanceSheet', RANGE)),
      ...Array.from({ length: 12 }, () => c.report('222', 'good-access-2', 'BalanceSheet', RANGE)),
    ]);
    expect(server.stats('111').maxInFlight).to.equal(3);
    expect(server.stats('222').maxInFlight).to.equal(3);
    expect(server.stats('111').reportRequests).to.equal(12);
    expect(server.stats('*').maxInFlight).to.equal(4);
  });

  it('starts at most maxPerMinutePerRealm requests in any window', async function () {
    this.timeout(10_000);
    const c = client({ maxPerMinutePerRealm: 5, rateWindowMs: 500 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 12 }, () => c.report('111', 'good-access-1', 'BalanceSheet', RANGE)));
    const times = server.stats('111').startedAt;
    expect(times).to.have.length(12);
    expect(Date.now() - started).to.be.greaterThanOrEqual(900); // 12 requests at 5 per 500 ms: three windows
    for (let i = 5; i < times.length; i++) expect(times[i]! - times[i - 5]!).to.be.greaterThanOrEqual(450);
  });

  it('retries a 429 after the Retry-After it was given, and logs intuit_tid', async function () {
    this.timeout(10_000);
    server.behave('111', { failNext: { status: 429, count: 1, retryAfterSeconds: 1 } });
    const { log, lines } = capture();
    const started = Date.now();
    await client({ log }).report('111', 'good-access-1', 'ProfitAndLoss', RANGE);
    expect(Date.now() - started).to.be.greaterThanOrEqual(950);
    expect(server.stats('111').statuses).to.deep.equal([429, 200]);
    const retry = lines.find((l) => l.message === 'qbo:request:retry');
    expect(retry).to.include({ status: 429, retryAfterMs: 1000 });
    expect(String(retry!.intuitTid)).to.match(/^loopback-/);
  });

  it('retries 5xx with backoff, then gives up with a transient error naming the realm', async () => {
    server.behave('111', { failNext: { status: 503, count: 100 } });
    const err = await client({ retries: 2 }).report('111', 'good-access-1', 'ProfitAndLoss', RANGE).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(QuickBooksTransientError);
    expect((err as Error).message).to.match(/realm 111 failed with HTTP 503/);
    expect((err as QuickBooksTransientError).intuitTid).to.match(/^loopback-/);
    expect(server.stats('111').reportRequests).to.equal(3);
  });

  it('turns a 401 into "QuickBooks access token rejected for realm …" without retrying', async () => {
    const err = await client().report('111', 'wrong-token', 'ProfitAndLoss', RANGE).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(QuickBooksAuthError);
    expect((err as Error).message).to.equal('QuickBooks access token rejected for realm 111');
    expect(server.stats('111').reportRequests).to.equal(1);
  });

  it('times out a call that does not answer', async () => {
    server.behave('111', { latencyMs: 500 });
    const err = await client({ timeoutMs: 100, retries: 1 }).report('111', 'good-access-1', 'ProfitAndLoss', RANGE).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(QuickBooksTransientError);
    expect((err as Error).message).to.match(/timed out after 100 ms/);
  });

  it('does not retry other 4xx', async () => {
    const err = await client().report('111', 'good-access-1', 'ProfitAndLoss', { startDate: '2025-12-31', endDate: '2025-01-01' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(QuickBooksApiError);
    expect((err as Error).message).to.match(/HTTP 400, code 2020/);
  });

  it('reads Fault and lower-case fault bodies, and Retry-After in both forms', () => {
    const real = fs.readFileSync(path.join(ROOT, 'test/fixtures/quickbooks/fault_throttle_exceeded_429.json'), 'utf8');
    expect(parseFault(real)).to.deep.equal({ code: '3001', message: 'message=ThrottleExceeded; errorCode=003001; statusCode=429 - The request limit was reached.  Try again later' });
    expect(parseFault('{"fault":{"error":[{"message":"message=AuthenticationFailed","detail":"Token expired","code":"3200"}],"type":"AUTHENTICATION"}}')).to.deep.equal({ code: '3200', message: 'message=AuthenticationFailed - Token expired' });
    expect(parseFault('<html>')).to.equal(undefined);
    expect(retryAfterMs('2')).to.equal(2000);
    expect(retryAfterMs(new Date(Date.now() + 3000).toUTCString())).to.be.within(1000, 3000);
  });
});
