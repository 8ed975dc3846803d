/**
 * Signals are handled here and nowhere else. The first SIGTERM/SIGINT aborts the
 * run's AbortSignal: the job starts no new item, finishes or rolls back the one in
 * hand, and the runtime flushes telemetry and exits 143. A second signal forces
 * exit at once (the database stays consistent: an open transaction is rolled back
 * by the server when the connection drops).
 */
import type { Logger } from '../telemetry/log.ts';

export const EXIT_SIGTERM = 143;

export interface ShutdownHandle {
  signal: AbortSignal;
  /** Removes the handlers (end of the run). */
  dispose(): void;
}

/** Installs the handlers; `log` is told which signal arrived. */
export function installShutdown(log: () => Logger | undefined, exit: (code: number) => void = (c) => process.exit(c)): ShutdownHandle {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log()?.error('signal:forced', { signal: name });
      exit(EXIT_SIGTERM);
      return;
    }
    log()?.warn('signal:received', { signal: name, action: 'finishing the item in hand, then exiting 143' });
    controller.abort(new Error(`received ${name}`));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

/** A last-in-first-out stack of cleanups, each run in its own try/catch. */
export class Cleanups {
  private readonly stack: Array<{ name: string; fn: () => Promise<void> | void }> = [];

  push(name: string, fn: () => Promise<void> | void): void {
    this.stack.push({ name, fn });
  }

  async runAll(log: Logger | undefined): Promise<void> {
    while (this.stack.length) {
      const { name, fn } = this.stack.pop()!;
      try {
        await fn();
      } catch (err) {
        log?.warn('cleanup:failed', { cleanup: name, error: err });
      }
    }
  }
}
