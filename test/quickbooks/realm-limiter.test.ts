/**
 * The per-realm limits (realm-limiter.ts): at most N in flight and M started in any
 * window per realm, a realm forgotten once idle past its window, and the limits
 * still held across that. The limiter alone, then the client against the loopback
 * QuickBooks server (which records, per realm, what was in flight and when each
 * request arrived).
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough } from 'node:stream';
import { QuickBooksClient } from '../../lib/quickbooks/client.ts';
import type { LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { useTwoRealmLoopback } from './support.ts';
import { RealmLimiter, type RealmSlot } from '../../lib/quickbooks/realm-limiter.ts';
import { createLogger } from '../../lib/telemetry/log.ts';

/**
 * The order of what happened: the test's own steps (`mark`) and the moments the
 * watched promises settled. Admission is checked by its place in this order (after
 * the release that allows it, never before), not by how long anything took.
 */
function journal() {
  const events: string[] = [];
  return {
    events,
    mark: (event: string) => void events.push(event),
    watch: <T>(name: string, p: Promise<T>): Promise<T> => {
      void p.then(() => events.push(name), () => events.push(`${name} (rejected)`));
      return p;
    },
  };
}

/** Lets every callback that is ready run (promise jobs, I/O, immediates) before the next step. */
const turn = () => new Promise((r) => setImmediate(r));

describe('the per-realm limiter', () => {
  const WINDOW = 200;

  it('admits at most maxInFlight at once; a release lets the next one in, first come first served', async () => {
    const limiter = new RealmLimiter({ maxInFlight: 2, maxPerWindow: 100, windowMs: WINDOW });
    const j = journal();
    const a = await limiter.acquire('r');
    const b = await limiter.acquire('r');
    const third = j.watch('third admitted', limiter.acquire('r'));
    const fourth = j.watch('fourth admitted', limiter.acquire('r'));
    await limiter.acquire('other'); // other realms are not held up
    await turn();
    j.mark('a released');
    a.start();
    a.release();
    a.release(); // twice is once
    await third;
    await turn();
    j.mark('b released');
    b.release();
    await fourth;
    expect(j.events).to.deep.equal(['a released', 'third admitted', 'b released', 'fourth admitted']);
  });

  it('admits at once with tryAcquire while the limits allow and nobody waits; otherwise says no and acquire waits', async () => {
    const limiter = new RealmLimiter({ maxInFlight: 2, maxPerWindow: 3, windowMs: WINDOW });
    const a = limiter.tryAcquire('r')!;
    const b = limiter.tryAcquire('r')!;
    expect(a).to.not.equal(undefined);
    expect(b).to.not.equal(undefined);
    expect(limiter.tryAcquire('r')).to.equal(undefined); // two in flight
    const j = journal();
    const third = j.watch('third admitted', limiter.acquire('r'));
    a.start();
    a.release();
    await third; // the waiter gets the freed place
    // A waiter is ahead: no jumping the line, even with a place free in flight.
    const fourth = j.watch('fourth admitted', limiter.acquire('r'));
    b.start();
    b.release();
    expect(limiter.tryAcquire('r')).to.equal(undefined);
    await turn();
    // Three starts reserved or made in the window (maxPerWindow 3): the fourth waits for the window.
    expect(j.events).to.deep.equal(['third admitted']);
    await fourth;
    expect(j.events).to.deep.equal(['third admitted', 'fourth admitted']);
  });

  it('starts at most maxPerWindow in any window, counting a slot not yet started whatever its age', async () => {
    const limiter = new RealmLimiter({ maxInFlight: 10, maxPerWindow: 2, windowMs: WINDOW });
    const j = journal();
    const slots = [await limiter.acquire('r'), await limiter.acquire('r')];
    const third = j.watch('third admitted', limiter.acquire('r'));
    await sleep(WINDOW * 1.5);
    // Both admitted long ago but not started: they still fill the window.
    j.mark('both started');
    const started = performance.now();
    for (const s of slots) (s.start(), s.release());
    await third;
    expect(j.events).to.deep.equal(['both started', 'third admitted']);
    expect(performance.now() - started).to.be.greaterThanOrEqual(WINDOW - 2);
  });

  it('forgets a realm once it is idle and its last start is older than the window, and a forgotten realm starts afresh', async () => {
    const limiter = new RealmLimiter({ maxInFlight: 2, maxPerWindow: 2, windowMs: WINDOW });
    const use = async (realm: string) => {
      const s = await limiter.acquire(realm);
      s.start();
      s.release();
    };
    await use('a');
    await use('b');
    await use('b');
    expect(limiter.size).to.equal(2);
    await sleep(WINDOW + 20);
    const slow = await limiter.acquire('c'); // the sweep (at most once a window) runs here: a and b go
    expect(limiter.size).to.equal(1);
    // c is in flight: kept, however long that takes.
    await sleep(WINDOW + 20);
    await use('d');
    expect(limiter.size).to.equal(2);
    slow.start();
    slow.release();
    // b again, after it was forgotten: two at once, as a fresh realm (admitted at once,
    // not after a window), and a third waits for a release (in flight), not for time.
    const j = journal();
    const b1 = j.watch('b1 admitted', limiter.acquire('b'));
    const b2 = j.watch('b2 admitted', limiter.acquire('b'));
    const b3 = j.watch('b3 admitted', limiter.acquire('b'));
    await turn();
    j.mark('b1 released');
    (await b1).release(); // never started: gives its start back too
    await b3;
    expect(j.events).to.deep.equal(['b1 admitted', 'b2 admitted', 'b1 released', 'b3 admitted']);
    await b2;
  });

  it('keeps an idle realm while its recent starts still fill the window', async () => {
    const limiter = new RealmLimiter({ maxInFlight: 5, maxPerWindow: 2, windowMs: WINDOW });
    await sleep(WINDOW * 0.6);
    const slots: RealmSlot[] = [await limiter.acquire('r'), await limiter.acquire('r')];
    for (const s of slots) (s.start(), s.release());
    const first = performance.now();
    await sleep(WINDOW / 2);
    await limiter.acquire('x'); // a window since the last sweep: one runs now, and r is idle but its starts are recent
    expect(limiter.size).to.equal(2);
    await (await limiter.acquire('r')).release();
    expect(performance.now() - first).to.be.greaterThanOrEqual(WINDOW - 2);
  });

  it('rejects a waiting acquire when its signal aborts, with the signal\'s reason, and lets the others through', async () => {
    const limiter = new RealmLimiter({ maxInFlight: 1, maxPerWindow: 100, windowMs: WINDOW });
    const j = journal();
    const held = await limiter.acquire('r');
    const stop = new AbortController();
    const waiting = j.watch('waiting', limiter.acquire('r', stop.signal));
    const next = j.watch('next admitted', limiter.acquire('r'));
    stop.abort(new Error('stopped'));
    await waiting.then(() => expect.fail('admitted'), (err: Error) => expect(err.message).to.equal('stopped'));
    await turn();
    j.mark('held released');
    held.release();
    await next;
    expect(j.events).to.deep.equal(['waiting (rejected)', 'held released', 'next admitted']);
    await limiter.acquire('r', stop.signal).then(() => expect.fail('admitted'), (err: Error) => expect(err.message).to.equal('stopped'));
  });
});

describe('QuickBooks client: per-realm limits across forgotten realms', () => {
  let server!: LoopbackQuickBooks;
  useTwoRealmLoopback((s) => (server = s));

  it('drops an idle realm after its window and still holds max in flight and max per window, before and after', async function () {
    this.timeout(20_000);
    const WINDOW = 500;
    const RANGE = { startDate: '2025-01-01', endDate: '2025-12-31' };
    const c = new QuickBooksClient({
      apiUrl: server.apiUrl, accountingMethod: 'Accrual', maxInFlightPerRealm: 2, maxPerMinutePerRealm: 4, maxInFlight: 100, timeoutMs: 2000, backoffMs: 10,
      rateWindowMs: WINDOW, log: createLogger({ level: 'debug', pretty: false, stream: new PassThrough().resume() }),
    });
    server.behave('*', { latencyMs: 30 });
    const burst = (realm: string, token: string, n: number) => Promise.all(Array.from({ length: n }, () => c.report(realm, token, 'BalanceSheet', RANGE)));

    await burst('111', 'good-access-1', 6);
    expect(c.realmsTracked).to.equal(1);
    // A burst that straddles the end of 111's idle time: its last starts are recent.
    await sleep(WINDOW / 2);
    const second = burst('111', 'good-access-1', 6);
    await sleep(WINDOW * 2.5);
    await second;
    await sleep(WINDOW + 50);
    await burst('222', 'good-access-2', 1); // the sweep: 111 is idle past its window
    expect(c.realmsTracked).to.equal(1);
    await burst('111', 'good-access-1', 6);

    const times = server.stats('111').startedAt;
    expect(times).to.have.length(18);
    // Arrival times at the server: the first call of a burst may spend longer on the way (a new connection).
    for (let i = 4; i < times.length; i++) expect(times[i]! - times[i - 4]!, `requests ${i - 4} and ${i}`).to.be.greaterThanOrEqual(WINDOW * 0.9);
    expect(server.stats('111').maxInFlight).to.equal(2);
  });
});
