/**
 * The counting semaphore of the QuickBooks client's global limit (lib/runtime/slots.ts):
 * never more takers than slots, waiters served in arrival order, an aborted waiter
 * leaves the queue without taking a slot.
 */
import { expect } from 'chai';
import { Slots } from '../../lib/runtime/slots.ts';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('slots (a counting semaphore)', () => {
  it('takes free slots at once, then queues takers and hands each released slot to the oldest', async () => {
    const slots = new Slots(2);
    expect(slots.tryTake()).to.equal(true);
    await slots.take();
    expect(slots.tryTake()).to.equal(false);
    const order: string[] = [];
    const third = slots.take().then(() => order.push('third'));
    const fourth = slots.take().then(() => order.push('fourth'));
    await turn();
    expect(order).to.deep.equal([]);
    slots.release();
    await third;
    await turn();
    expect(order).to.deep.equal(['third']);
    // A waiter is first in line: a free slot is not taken past it.
    slots.release();
    await fourth;
    expect(order).to.deep.equal(['third', 'fourth']);
    slots.release();
    slots.release();
    expect(slots.free).to.equal(2);
  });

  it('does not take past a waiter, even when a slot is free at that moment', async () => {
    const slots = new Slots(1);
    expect(slots.tryTake()).to.equal(true);
    const waiting = slots.take();
    slots.release(); // handed to the waiter, not freed
    expect(slots.free).to.equal(0);
    expect(slots.tryTake()).to.equal(false);
    await waiting;
  });

  it('rejects an aborted waiter with the signal\'s reason; it takes no slot and the next waiter is served', async () => {
    const slots = new Slots(1);
    await slots.take();
    const stop = new AbortController();
    const aborted = slots.take(stop.signal);
    const next = slots.take();
    stop.abort(new Error('stopping'));
    let reason: unknown;
    await aborted.catch((err: unknown) => (reason = err));
    expect((reason as Error).message).to.equal('stopping');
    slots.release();
    await next;
    slots.release();
    expect(slots.free).to.equal(1);
    // Already aborted: rejected at once, even with a slot free.
    const gone = await slots.take(stop.signal).then(() => 'taken', (err: Error) => err.message);
    expect(gone).to.equal('stopping');
    expect(slots.free).to.equal(1);
  });

  it('is idle only once every slot is back and nobody waits', async () => {
    const slots = new Slots(2);
    let idle = false;
    await slots.idle(); // nothing taken: at once
    expect(slots.tryTake()).to.equal(true);
    expect(slots.tryTake()).to.equal(true);
    const third = slots.take();
    void slots.idle().then(() => (idle = true));
    slots.release(); // handed to the waiter
    await third;
    slots.release();
    await turn();
    expect(idle, 'one slot still taken').to.equal(false);
    slots.release();
    await turn();
    expect(idle).to.equal(true);
  });
});
