/**
 * Per-item work with error isolation: one item that fails never stops the others.
 * Its error is logged with the item's id, counted and listed (bounded) in the
 * summary's errorDetails. Items run with bounded concurrency; when the run is asked
 * to stop, no new item starts, the ones in hand finish, and it returns early. A lost database
 * connection is not an item's fault: it stops the run (exit 3).
 */
import type { Logger } from '../telemetry/log.ts';
import { DependencyError, isConnectionError, messageOf } from '../errors.ts';
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
  /** Seconds each item took, for the metrics histogram. */
  readonly durations: number[] = [];

  count(outcome: string, n = 1): void {
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + n;
  }

  /** Records an unexpected error of one item. */
  fail(kind: string, id: string, err: unknown): void {
    this.errors++;
    this.count('error');
    if (this.errorDetails.length < MAX_ERROR_DETAILS) this.errorDetails.push({ kind, id, error: redact(messageOf(err)).slice(0, 500) });
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
  /** Items in flight at once. @defaultValue 1 */
  concurrency?: number;
  /** Does one item; returns its outcome (`generated`, `skipped`, ...). */
  handle(item: T): Promise<string>;
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
  const concurrency = deps.dryRun ? 1 : Math.max(1, options.concurrency ?? 1);
  const progress = new Progress({ log, phase: options.phase, total: options.total });
  let fatal: unknown;
  const inFlight = new Set<Promise<void>>();

  const one = async (item: T): Promise<void> => {
    const id = options.id(item);
    const started = performance.now();
    try {
      const outcome = await withSpan(`${options.kind}`, { 'exitosx.item.kind': options.kind, 'exitosx.item.id': id }, async (span) => {
        try {
          const result = await options.handle(item);
          span.setAttribute('exitosx.item.outcome', result);
          return result;
        } catch (err) {
          // Logged inside the item's span, so the line carries the item's span_id.
          if (!isConnectionError(err)) log.error('item:failed', { kind: options.kind, id, error: err });
          throw err;
        }
      });
      tally.count(outcome);
    } catch (err) {
      if (isConnectionError(err)) {
        fatal ??= new DependencyError(`database connection lost: ${redact(messageOf(err))}`, { cause: err });
        return;
      }
      tally.fail(options.kind, id, err);
    } finally {
      tally.durations.push((performance.now() - started) / 1000);
      progress.tick();
    }
  };

  try {
    for await (const batch of options.source) {
      for (const item of batch) {
        if (signal.aborted || fatal) break;
        const p = one(item).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= concurrency) await Promise.race(inFlight);
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
