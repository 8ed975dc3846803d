/**
 * The Accounting API client's HTTP path (lib/quickbooks/http-get.ts, undici): the
 * whole answer read as text over pooled connections; one deadline covering the body (a
 * server that stalls mid-body times out, and the client calls that a transient
 * timeout); the caller's signal; a connection dropped mid-body is a network error.
 * A real HTTP server on 127.0.0.1.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { QuickBooksClient } from '../../lib/quickbooks/client.ts';
import { QuickBooksTransientError } from '../../lib/quickbooks/errors.ts';
import { HttpGetter } from '../../lib/quickbooks/http-get.ts';
import { createLogger } from '../../lib/telemetry/log.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

describe('QuickBooks HTTP path', function () {
  this.timeout(10_000);
  let server: http.Server;
  let handler: Handler;
  let base: string;
  let sockets = 0;
  before(async () => {
    server = http.createServer((req, res) => handler(req, res));
    server.on('connection', () => sockets++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const getter = () => new HttpGetter({ maxSockets: 4 });
  const stall = (ms: number): Handler => (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '40' });
    res.write('{"Header":');
    setTimeout(() => res.end('{}, "Rows": {}}                 '), ms).unref();
  };

  it('reads the whole answer with its status and headers, reusing connections', async () => {
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', intuit_tid: 'tid-1' });
      res.end(JSON.stringify({ auth: req.headers.authorization, text: 'é'.repeat(50_000) }));
    };
    const g = getter();
    const before = sockets;
    const a = await g.get(new URL(`${base}/a`), { Authorization: 'Bearer t' }, 2000);
    expect(a.status).to.equal(200);
    expect(a.headers.intuit_tid).to.equal('tid-1');
    expect(JSON.parse(a.text)).to.deep.equal({ auth: 'Bearer t', text: 'é'.repeat(50_000) });
    for (let i = 0; i < 5; i++) expect((await g.get(new URL(`${base}/b${i}`), { Authorization: 'Bearer t' }, 2000)).text).to.equal(a.text);
    expect(sockets - before, 'keep-alive connections, not one per call').to.be.at.most(2);
  });

  it('times out a body that stalls, with the same deadline as the headers', async () => {
    handler = stall(1500);
    const started = performance.now();
    const err = (await getter().get(new URL(`${base}/slow`), {}, 200).catch((e: unknown) => e)) as Error;
    expect(err).to.be.an('error');
    expect(err.name).to.equal('TimeoutError');
    expect(performance.now() - started).to.be.below(1000);
  });

  it('stops when the caller aborts, with the caller\'s reason', async () => {
    handler = stall(1500);
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('received SIGTERM')), 100);
    const err = (await getter().get(new URL(`${base}/slow`), {}, 5000, stop.signal).catch((e: unknown) => e)) as Error;
    expect(err.message).to.equal('received SIGTERM');
  });

  it('fails with the network error as cause when the connection drops mid-body or is refused', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('{"partial":');
      setTimeout(() => res.socket?.destroy(), 50);
    };
    const dropped = (await getter().get(new URL(`${base}/drop`), {}, 2000).catch((e: unknown) => e)) as Error & { cause?: { code?: string } };
    expect(dropped.name).to.not.equal('TimeoutError');
    expect(dropped.cause?.code).to.be.oneOf(['UND_ERR_SOCKET', 'ECONNRESET']);
    const refused = (await getter().get(new URL('http://127.0.0.1:1/x'), {}, 2000).catch((e: unknown) => e)) as Error & { cause?: { code?: string } };
    expect(refused.name).to.not.equal('TimeoutError');
    expect(refused.cause?.code).to.equal('ECONNREFUSED');
  });

  it('the client: a report whose body stalls past the timeout is a transient timeout, retried', async () => {
    let calls = 0;
    handler = (req, res) => {
      calls++;
      stall(1500)(req, res);
    };
    const log = createLogger({ level: 'info', pretty: false, stream: new PassThrough().resume() });
    const client = new QuickBooksClient({ apiUrl: base, accountingMethod: 'Accrual', maxInFlightPerRealm: 10, maxPerMinutePerRealm: 500, maxInFlight: 10, timeoutMs: 150, retries: 1, backoffMs: 10, log });
    const err = await client.report('111', 'tok', 'ProfitAndLoss', { startDate: '2026-01-01', endDate: '2026-01-31' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(QuickBooksTransientError);
    expect((err as Error).message).to.equal('QuickBooks ProfitAndLoss for realm 111 timed out after 150 ms');
    expect(calls).to.equal(2);
  });
});
