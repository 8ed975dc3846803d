/**
 * Intuit's per-realm limits: at most `maxInFlight` requests in flight and at most
 * `maxPerWindow` started in any `windowMs` (a sliding window) for each realm.
 *
 * Why not one p-queue per realm: the job touches every realm once or twice, and a
 * queue per realm kept for the whole run cost ~5 kB of RSS each (+104 MB at 20k
 * realms). Dropping a queue only once the window has passed since its last start
 * would not help either: a run shorter than the window (60 s) would drop nothing.
 * So each realm keeps only what its limits need — a count in flight, the times of
 * its starts within the window, and its waiters — and is forgotten as soon as that
 * is all empty (idle, last start older than the window): a forgotten realm and a
 * new one are the same thing, so the limits still hold across the drop.
 *
 * A slot is taken in two steps, so the window counts real starts even when the
 * caller waits for something else (the global limit) in between:
 * `acquire` admits a request (in flight, and a reserved start), `start` stamps its
 * start time when the HTTP call really begins, `release` ends it. A reserved start
 * counts against the window until it is stamped, whatever its age.
 */

export interface RealmSlot {
  /** The request really starts now: its start counts from this instant. */
  start(): void;
  /** The request is over (success or failure); idempotent. */
  release(): void;
}

interface Waiter {
  admit: () => void;
}

interface Realm {
  /** Admitted, not yet released. */
  inFlight: number;
  /** Admitted, not yet started: each counts as a start inside the window. */
  reserved: number;
  /** Start times (performance.now()) of the last window, oldest first. */
  starts: number[];
  waiters: Waiter[];
  /** Wakes the waiters when the oldest start leaves the window. */
  timer?: NodeJS.Timeout;
}

/** The waiters of an idle realm: none, shared (replaced by a new list when one arrives). */
const IDLE: Waiter[] = Object.freeze([]) as unknown as Waiter[];

export class RealmLimiter {
  readonly #realms = new Map<string, Realm>();
  readonly #maxInFlight: number;
  readonly #maxPerWindow: number;
  readonly #windowMs: number;
  #lastSweep = performance.now();

  constructor(limits: { maxInFlight: number; maxPerWindow: number; windowMs: number }) {
    this.#maxInFlight = limits.maxInFlight;
    this.#maxPerWindow = limits.maxPerWindow;
    this.#windowMs = limits.windowMs;
  }

  /** Realms currently remembered (tests and diagnostics). */
  get size(): number {
    return this.#realms.size;
  }

  /**
   * Admits a request at once when the realm's limits allow it and nobody waits
   * for the realm, with no promise and no abort listener (the common case: most
   * realms see two requests a run); otherwise undefined, and the caller waits with
   * `acquire`.
   */
  tryAcquire(realmId: string): RealmSlot | undefined {
    this.#sweep();
    let r = this.#realms.get(realmId);
    if (!r) {
      r = { inFlight: 0, reserved: 0, starts: [], waiters: IDLE };
      this.#realms.set(realmId, r);
    } else {
      if (r.waiters.length) return undefined;
      this.#prune(r, performance.now());
    }
    if (r.inFlight >= this.#maxInFlight || r.reserved + r.starts.length >= this.#maxPerWindow) return undefined;
    r.inFlight++;
    r.reserved++;
    return this.#slot(realmId, r);
  }

  /** Waits (first come, first served) until the realm's limits allow one more request. Rejects with the signal's reason when aborted while waiting. */
  acquire(realmId: string, signal?: AbortSignal): Promise<RealmSlot> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    this.#sweep();
    let realm = this.#realms.get(realmId);
    if (!realm) {
      realm = { inFlight: 0, reserved: 0, starts: [], waiters: [] };
      this.#realms.set(realmId, realm);
    } else if (realm.waiters === IDLE) {
      realm.waiters = [];
    }
    const r = realm;
    return new Promise<RealmSlot>((resolve, reject) => {
      const onAbort = () => {
        const i = r.waiters.indexOf(waiter);
        if (i >= 0) r.waiters.splice(i, 1);
        reject(signal!.reason);
        this.#pump(realmId, r);
      };
      const waiter: Waiter = {
        admit: () => {
          signal?.removeEventListener('abort', onAbort);
          r.inFlight++;
          r.reserved++;
          resolve(this.#slot(realmId, r));
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      r.waiters.push(waiter);
      this.#pump(realmId, r);
    });
  }

  #slot(realmId: string, r: Realm): RealmSlot {
    let started = false;
    let released = false;
    return {
      start: () => {
        if (started || released) return;
        started = true;
        r.reserved--;
        r.starts.push(performance.now());
        this.#pump(realmId, r); // the window may now have a start to wait for
      },
      release: () => {
        if (released) return;
        released = true;
        if (!started) r.reserved--; // never started: gives its start back
        r.inFlight--;
        this.#pump(realmId, r);
      },
    };
  }

  /** Admits waiters while both limits allow; otherwise waits for a release or for the oldest start to leave the window. */
  #pump(realmId: string, r: Realm): void {
    const now = performance.now();
    this.#prune(r, now);
    while (r.waiters.length && r.inFlight < this.#maxInFlight && r.reserved + r.starts.length < this.#maxPerWindow) r.waiters.shift()!.admit();
    if (r.inFlight === 0 && r.reserved === 0 && r.waiters.length === 0) {
      this.#compact(r);
      return;
    }
    if (r.waiters.length && r.inFlight < this.#maxInFlight && r.starts.length && !r.timer) {
      // Blocked by the window: wake up when its oldest start leaves it.
      r.timer = setTimeout(() => {
        r.timer = undefined;
        this.#pump(realmId, r);
      }, Math.max(1, Math.ceil(r.starts[0]! + this.#windowMs - now)));
    }
  }

  /**
   * An idle realm is kept until its starts leave the window (a minute), and a run
   * touches every realm: its arrays are trimmed to their contents meanwhile (a
   * start list grown by push holds 16 slots), ~200 bytes less per realm, 3-4 MB of
   * live heap at 19k realms (bench/FINDINGS.md, round three).
   */
  #compact(r: Realm): void {
    if (r.starts.length) r.starts = r.starts.slice();
    r.waiters = IDLE;
  }

  /** Forgets the starts older than the window. */
  #prune(r: Realm, now: number): void {
    let old = 0;
    while (old < r.starts.length && r.starts[old]! <= now - this.#windowMs) old++;
    if (old) r.starts.splice(0, old);
  }

  /** At most once a window: forgets the realms that are idle and whose last start is older than the window. */
  #sweep(): void {
    const now = performance.now();
    if (now - this.#lastSweep < this.#windowMs) return;
    this.#lastSweep = now;
    for (const [id, r] of this.#realms) {
      this.#prune(r, now);
      if (r.inFlight === 0 && r.reserved === 0 && r.waiters.length === 0 && r.starts.length === 0 && !r.timer) this.#realms.delete(id);
    }
  }
}
