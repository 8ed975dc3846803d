/**
 * The month a drift report covers. By default the calendar month before the run's
 * clock; `--period YYYY-MM` picks an earlier one (a backfill). Everything in UTC.
 */
import { ConfigError } from '../errors.ts';
import { memoized } from './memo.ts';

export interface DriftPeriod {
  /** `YYYY-MM`. */
  month: string;
  /** First instant of the month (inclusive). */
  start: Date;
  /** First instant of the next month (exclusive). */
  end: Date;
}

const monthText = (d: Date) => `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;

/** The period of a given month (`YYYY-MM`). */
export function periodOf(month: string): DriftPeriod {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!m) throw new ConfigError(`--period must be a month as YYYY-MM, 01 to 12 (got ${JSON.stringify(month)})`);
  const start = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
  const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
  return { month, start, end };
}

/**
 * The period of a run: `--period` when given (it must be a month that has ended by
 * `now`, else ConfigError), otherwise the month before `now`.
 */
export function reportingPeriod(now: Date, requested?: string): DriftPeriod {
  if (requested === undefined) {
    const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
    return periodOf(monthText(start));
  }
  const period = periodOf(requested);
  if (period.end.getTime() > now.getTime()) {
    throw new ConfigError(`--period ${requested} has not ended yet at ${now.toISOString()}: pick a finished month (the latest is ${monthText(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)))})`);
  }
  return period;
}

/** Made once: building an Intl formatter per call was 9% of the drift job's CPU (bench/FINDINGS.md). */
const MONTH_NAME = new Intl.DateTimeFormat('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });

/** The month as readers say it: "March 2026". Remembered: a run names the same few months ~10 times per report, and formatting one costs microseconds. */
export const monthName = memoized((month) => MONTH_NAME.format(periodOf(month).start), 1000);

/** The name of the month before `month` ("2026-02" → "January 2026"), remembered likewise. */
export const previousMonthName = memoized((month) => {
  const { start } = periodOf(month);
  return monthName(monthText(new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() - 1, 1))));
}, 1000);
