/**
 * Per-item work with error isolation: one item that fails never stops the others.
 * Its error is logged with the item's id, counted and listed (bounded) in the
 * summary's errorDetails. Items run with bounded concurrency; when the run is asked
 * to stop, no new item starts, the ones in hand finish, and it returns early. A lost database
 * connection (or a read-only one) is not an item's fault: it stops the run (exit 3). A row
 * the product application holds locked longer than lock_timeout is the item's fault only:
 * it fails with "row locked by another transaction", counted in `lockTimeouts`.
 */
import type { Logger } from '../telemetry/log.ts';
import { databaseFailure, isLockTimeout, messageOf, translateDbError } from '../errors.ts';
import { redact } from '../telemetry/redact.ts';
import { Progress } from './progress.ts';
import { withSpan } from '../telemetry/trace.ts';

/** errorDetails holds at most this many entries, then errorDetailsTruncated. */
export const MAX_ERROR_DETAILS = 100;

export interface ErrorDetail {
  kind: string;
  id: string;
  error: string;
}

/** What the items of a run came to; the runtime folds it into the summary. */
export class Tally {
  readonly outcomes: Record<string, number> = {};
  errors = 0;
  readonly errorDetails: ErrorDetail[] = [];
  errorDetailsTruncated = false;
  /** Errors that were lock timeouts (55P03): rows held by another transaction (`exitosx_cron_lock_timeouts`). */
  lockTimeouts = 0;
  /** Seconds each item took, for the metrics histogram. */
  readonly durations: number[] = [];

  count(outcome: string, n = 1): void {
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + n;
  }

  /** Records an unexpected error of one item (a PostgreSQL timeout error in the suite's words). */
  fail(kind: string, id: string, err: unknown): void {
    this.errors++;
    this.count('error');
    if (isLockTimeout(err)) this.lockTimeouts++;
    if (this.errorDetails.length < MAX_ERROR_DETAILS) this.errorDetails.push({ kind, id, error: redact(messageOf(translateDbError(err))).slice(0, 500) });
    else this.errorDetailsTruncated = true;
  }
}

export interface ForEachOptions<T> {
  /** Name of the phase, for progress and spans (`companies`, `users`, ...). */
  phase: string;
  /** What an item is (`company`, `user`, `integration`), for logs and spans. */
  kind: string;
  /** Batches of items (an array, or an async generator paging through ids). */
  source: AsyncIterable<T[]> | Iterable<T[]>;
  /** Total items, when known, for progress and ETA. */
  total?: number;
  id(item: T): string;
  /** Items in flight at once (with `handleBatch`: batches). @defaultValue 1 */
  concurrency?: number;
  /** Does one item; returns its outcome (`generated`, `skipped`, ...). Without it, `handleBatch` of one item. */
  handle?(item: T): Promise<string>;
  /**
   * Does a whole batch of the source at once and returns each item's outcome, in
   * the batch's order (an Error for an item that failed on its own: logged,
   * counted and listed like a failed `handle`). Used instead of `handle` when given: writing a page of
   * items in one transaction and one statement per kind of row costs a fraction
   * of one transaction and several round trips per item (bench/FINDINGS.md, 1).
   * When it throws (an error that is not a lost connection), the same items are
   * done again one by one with `handle`, so one bad item still fails alone. It
   * must therefore be safe to repeat: the jobs' writes are idempotent by their
   * unique keys.
   */
  handleBatch?(items: T[]): Promise<Array<string | Error>>;
}

export interface ItemRunnerDeps {
  log: Logger;
  signal: AbortSignal;
  tally: Tally;
  /** Dry runs share one transaction: one item at a time. */
  dryRun: boolean;
}

/** Runs `handle` for every item of `source`, isolating failures. */
export async function forEachItem<T>(deps: ItemRunnerDeps, options: ForEachOptions<T>): Promise<void> {
  const { log, signal, tally } = deps;
  if (!options.handle && !options.handleBatch) throw new Error(`forEach(${options.phase}): give handle or handleBatch`);
  const concurrency = deps.dryRun ? 1 : Math.max(1, options.concurrency ?? 1);
  const progress = new Progress({ log, phase: options.phase, total: options.total });
  let fatal: unknown;
  const inFlight = new Set<Promise<void>>();
  // Waiting for a free slot: woken by the next item (or batch) to finish. Why not
  // `await Promise.race(inFlight)` after each start: every call attached a reaction
  // to every promise in flight, `concurrency` reactions per item, each kept until its
  // promise settled; at 50 in flight they outlived scavenges and were promoted, most
  // of sync-quickbooks' young-generation work at 1M (bench/FINDINGS.md, round three).
  let freed: (() => void) | undefined;
  const track = (work: Promise<void>): void => {
    const p = work.finally(() => {
      inFlight.delete(p);
      const wake = freed;
      freed = undefined;
      wake?.();
    });
    inFlight.add(p);
  };
  const slot = async (): Promise<void> => {
    while (inFlight.size >= concurrency) await new Promise<void>((resolve) => (freed = resolve));
  };

  // One item: `handle`, or a batch of one.
  const handle =
    options.handle ??
    (async (x: T) => {
      const [outcome] = await options.handleBatch!([x]);
      if (outcome instanceof Error) throw outcome;
      return outcome!;
    });

  const one = async (item: T): Promise<void> => {
    const id = options.id(item);
    const started = performance.now();
    try {
      const outcome = await withSpan(`${options.kind}`, { 'exitosx.item.kind': options.kind, 'exitosx.item.id': id }, async (span) => {
        try {
          const result = await handle(item);
          span.setAttribute('exitosx.item.outcome', result);
          return result;
        } catch (err) {
          // Logged inside the item's span, so the line carries the item's span_id.
          if (!databaseFailure(err, 'item')) log.error('item:failed', { kind: options.kind, id, error: translateDbError(err) });
          throw err;
        }
      });
      tally.count(outcome);
    } catch (err) {
      const failure = databaseFailure(err, 'item');
      if (failure) {
        fatal ??= failure;
        return;
      }
      tally.fail(options.kind, id, err);
    } finally {
      tally.durations.push((performance.now() - started) / 1000);
      progress.tick();
    }
  };

  /** A whole batch, in one span; on failure, its items one by one. */
  const whole = async (batch: T[], handleBatch: (items: T[]) => Promise<Array<string | Error>>): Promise<void> => {
    const started = performance.now();
    try {
      const outcomes = await withSpan(`${options.kind} batch`, { 'exitosx.item.kind': options.kind, 'exitosx.batch.size': batch.length }, async (span) => {
        const result = await handleBatch(batch);
        if (result.length !== batch.length) throw new Error(`forEach(${options.phase}): ${result.length} outcomes for ${batch.length} items`);
        span.setAttribute('exitosx.item.outcome', summarise(result));
        return result;
      });
      outcomes.forEach((outcome, i) => {
        if (!(outcome instanceof Error)) return tally.count(outcome);
        const id = options.id(batch[i]!);
        log.error('item:failed', { kind: options.kind, id, error: translateDbError(outcome) });
        tally.fail(options.kind, id, outcome);
      });
      // The histogram is per item: each item of the batch took its share of it.
      const share = (performance.now() - started) / 1000 / batch.length;
      for (let i = 0; i < batch.length; i++) tally.durations.push(share);
      progress.tick(batch.length);
    } catch (err) {
      const failure = databaseFailure(err, 'item');
      if (failure) {
        fatal ??= failure;
        return;
      }
      // A row locked by the product application fails the whole page's transaction:
      // redone one by one, only the item that needs the row fails.
      log.warn('batch:failed', { kind: options.kind, size: batch.length, first: options.id(batch[0]!), error: translateDbError(err), detail: 'doing its items one by one' });
      for (const item of batch) {
        if (signal.aborted || fatal) break;
        await one(item);
      }
    }
  };

  // With handleBatch, the next batch is read while one is handled (not in a dry run:
  // it has one connection).
  const source = options.handleBatch && !deps.dryRun ? readAhead(options.source) : options.source;
  try {
    for await (const batch of source) {
      if (options.handleBatch && batch.length) {
        if (signal.aborted || fatal) break;
        // Batches in flight (at most `concurrency`): the next page is read while
        // this one is written and its emails sent.
        track(whole(batch, options.handleBatch));
        await slot();
        continue;
      }
      for (const item of batch) {
        if (signal.aborted || fatal) break;
        track(one(item));
        await slot();
      }
      if (signal.aborted || fatal) break;
    }
    await Promise.all(inFlight);
  } finally {
    progress.stop();
  }
  if (fatal) throw fatal;
  // A stop request is not an error here: the job returns what it did so far and
  // the runtime turns the aborted signal into exit 143.
}

/** A batch's outcomes for its span: `changed:3 error:1 unchanged:2`. */
function summarise(outcomes: Array<string | Error>): string {
  const n = new Map<string, number>();
  for (const o of outcomes.map((x) => (x instanceof Error ? 'error' : x))) n.set(o, (n.get(o) ?? 0) + 1);
  return [...n].sort(([a], [b]) => a.localeCompare(b)).map(([o, k]) => `${o}:${k}`).join(' ');
}

/**
 * Yields the batches of `source`, asking for the next one as soon as one is handed
 * out: a page's reads (a few statements, tens of ms at 1M users) overlap the work on
 * the page before, with one page in hand and one being read. At 1M users this was
 * the difference between the drift job waiting on its reads or not (bench/FINDINGS.md).
 */
export async function* readAhead<T>(source: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
  const it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : toAsync(source[Symbol.iterator]());
  let next = it.next();
  try {
    for (;;) {
      const r = await next;
      if (r.done) return;
      next = it.next();
      // Not awaited when the consumer stops early: its failure is not this run's news.
      next.catch(() => undefined);
      yield r.value;
    }
  } finally {
    await next.catch(() => undefined);
    await it.return?.();
  }
}

function toAsync<T>(it: Iterator<T>): AsyncIterator<T> {
  return { next: async () => it.next(), return: async () => it.return?.() ?? { done: true, value: undefined } };
}
