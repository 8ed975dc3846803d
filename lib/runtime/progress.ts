/**
 * Progress of long work: a `progress` log line at least every 10 seconds with
 * done/total, rate and ETA, and a bar on stderr when it is a terminal.
 */
import cliProgress from 'cli-progress';
import type { Logger } from '../telemetry/log.ts';

export interface ProgressOptions {
  log: Logger;
  phase: string;
  total: number | undefined;
  /** Milliseconds between log lines. @defaultValue 10000 */
  intervalMs?: number;
  /** Draw a bar (stderr is a terminal). @defaultValue process.stderr.isTTY */
  bar?: boolean;
}

/** Tracks done items; `stop()` logs the final line and clears the timer. */
export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private readonly timer: NodeJS.Timeout;
  private readonly bar: cliProgress.SingleBar | undefined;
  private readonly options: ProgressOptions;

  constructor(options: ProgressOptions) {
    this.options = options;
    this.timer = setInterval(() => this.report(), options.intervalMs ?? 10_000);
    this.timer.unref();
    if ((options.bar ?? process.stderr.isTTY) && options.total) {
      this.bar = new cliProgress.SingleBar({ stream: process.stderr, format: `${options.phase} [{bar}] {value}/{total} {percentage}% eta {eta}s` }, cliProgress.Presets.shades_classic);
      this.bar.start(options.total, 0);
    }
  }

  /** Records `n` more items done. */
  tick(n = 1): void {
    this.done += n;
    this.bar?.update(this.done);
  }

  /** Raises the expected total (sources that learn their size as they go). */
  setTotal(total: number): void {
    this.options.total = total;
    this.bar?.setTotal(total);
  }

  /** The current figures. */
  snapshot(): { done: number; total: number | undefined; ratePerSecond: number; etaSeconds: number | undefined } {
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = this.done / seconds;
    const total = this.options.total;
    const eta = total !== undefined && rate > 0 ? Math.max(0, Math.round((total - this.done) / rate)) : undefined;
    return { done: this.done, total, ratePerSecond: Math.round(rate * 10) / 10, etaSeconds: eta };
  }

  private report(): void {
    this.options.log.info('progress', { phase: this.options.phase, ...this.snapshot() });
  }

  stop(): void {
    clearInterval(this.timer);
    this.bar?.stop();
  }
}
