/**
 * A fixed number of slots, taken first come, first served: a counting semaphore.
 *
 * Why not p-queue for a plain limit on the hot path: per task it makes a promise
 * chain, an abort listener and an event per state change, all alive while the task
 * runs. The QuickBooks client takes a slot for each of the ~40k report calls of a
 * run at 1M users, each in flight for tens of milliseconds, so that state survived
 * young collections and was copied each time (bench/FINDINGS.md, round four). Here
 * a free slot is taken synchronously with no allocation; only a wait costs a promise.
 */
export class Slots {
  readonly #count: number;
  #free: number;
  /** Waiting takers, oldest first; each is handed a slot directly by `release`. */
  readonly #waiting: Array<() => void> = [];
  /** Callers of `idle`, woken when the last slot comes back. */
  #whenIdle: Array<() => void> = [];

  constructor(count: number) {
    this.#count = count;
    this.#free = count;
  }

  /** Slots free now (tests). */
  get free(): number {
    return this.#free;
  }

  /** Takes a free slot now if there is one and nobody waits for it. */
  tryTake(): boolean {
    if (this.#free === 0 || this.#waiting.length) return false;
    this.#free--;
    return true;
  }

  /** Waits for a slot, in arrival order. Rejects with the signal's reason when aborted first (the slot is not taken). */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.tryTake()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(handOver);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal!.reason as Error);
      };
      const handOver = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(handOver);
    });
  }

  /** Gives a slot back: to the oldest waiter if any, else to the pool. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) return next();
    if (++this.#free < this.#count) return;
    const idle = this.#whenIdle;
    this.#whenIdle = [];
    for (const wake of idle) wake();
  }

  /** Resolves once every slot is free and nobody waits (at once if so now). */
  idle(): Promise<void> {
    return this.#free === this.#count ? Promise.resolve() : new Promise((resolve) => this.#whenIdle.push(resolve));
  }
}
