/**
 * The arithmetic the report mapping (report-parser.ts) runs on, in two kinds that
 * give the same figures:
 *
 * - DECIMALS: decimal.js, exact for any decimal text Intuit may send. The
 *   reference, and the public parse functions' type.
 * - HUNDREDTHS: a money amount as a whole number of hundredths held in a double
 *   ("1300.10" → 130010), exact while it stays a safe integer (|x| < 2^53, i.e.
 *   below ~90 trillion). Intuit's amounts have at most two decimals, so this is
 *   the sync's path: decimal.js allocated a digits array per value and per
 *   operation (~325 amounts per integration), a few percent of the job's CPU and
 *   much of its garbage (bench/FINDINGS.md, round three). Anything it cannot hold
 *   exactly (a third decimal, 16+ digits, a sum past 2^53) or anything unusual
 *   (not a plain decimal string) throws NOT_HUNDREDTHS; the caller then maps the
 *   report again with DECIMALS, which gives the exact figure or the proper error.
 *   So the stored text is always what decimal.js's `toFixed(2)` gives.
 */
import { Decimal } from 'decimal.js';

export interface Arithmetic<N> {
  /** An amount's text (`text.slice(start, end)`) → its value; undefined when it is no decimal number (`^-?\d+(\.\d+)?$` once trimmed). */
  parse(text: string, start: number, end: number): N | undefined;
  plus(a: N, b: N): N;
  minus(a: N, b: N): N;
  readonly zero: N;
  /** The amount as stored: two decimals, rounded half up (decimal.js's default). */
  text(value: N): string;
}

const AMOUNT = /^-?\d+(\.\d+)?$/;

export const DECIMALS: Arithmetic<Decimal> = {
  parse: (text, start, end) => {
    const v = (start === 0 && end === text.length ? text : text.slice(start, end)).trim();
    return AMOUNT.test(v) ? new Decimal(v) : undefined;
  },
  plus: (a, b) => a.plus(b),
  minus: (a, b) => a.minus(b),
  zero: new Decimal(0),
  text: (value) => value.toFixed(2),
};

/** Thrown by HUNDREDTHS for what it does not hold exactly: map again with DECIMALS. */
export const NOT_HUNDREDTHS = new Error('amount not representable as exact hundredths');

/** At most 15 digits: 10^15 - 1 hundredths is a safe integer, and so is a sum of two. */
const MAX_DIGITS = 15;

export const HUNDREDTHS: Arithmetic<number> = {
  parse: parseHundredths,
  plus: (a, b) => safe(a + b),
  minus: (a, b) => safe(a - b),
  zero: 0,
  text: hundredthsText,
};

/**
 * "-1300.1" → -130010, read in place (a charCode loop over `value` from `start`
 * to `stop`, no regex match or substring: the scanned report's amounts are never
 * made into strings, report-scan.ts). Accepts what the reference accepts with at most two decimals and 15
 * digits: optional surrounding whitespace, an optional "-", digits, and optionally
 * a "." followed by one or two digits. Anything else throws NOT_HUNDREDTHS.
 */
function parseHundredths(value: string, start: number, stop: number): number {
  let i = start;
  let end = stop;
  // String#trim's whitespace is wider than this; a string with other blanks falls back.
  while (i < end && isBlank(value.charCodeAt(i))) i++;
  while (end > i && isBlank(value.charCodeAt(end - 1))) end--;
  const negative = value.charCodeAt(i) === 45; // '-'
  if (negative) i++;
  let n = 0;
  let digits = 0;
  let decimals = -1; // -1: no point seen
  for (; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      digits++;
      if (decimals >= 0) decimals++;
    } else if (c === 46 && decimals < 0 && digits > 0) {
      decimals = 0;
    } else {
      throw NOT_HUNDREDTHS;
    }
  }
  if (digits === 0 || decimals === 0 || decimals > 2 || digits > MAX_DIGITS) throw NOT_HUNDREDTHS;
  if (decimals <= 0) n *= 100;
  else if (decimals === 1) n *= 10;
  return negative ? -n : n;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

function safe(x: number): number {
  if (!Number.isSafeInteger(x)) throw NOT_HUNDREDTHS;
  return x;
}

/** 130010 → "1300.10"; zero (and -0) → "0.00", as decimal.js writes it. */
function hundredthsText(value: number): string {
  const a = Math.abs(value);
  const cents = a % 100; // exact on integers; (a - cents) / 100 too
  const units = (a - cents) / 100;
  return `${value < 0 ? '-' : ''}${units}.${cents < 10 ? '0' : ''}${cents}`;
}
