/**
 * Exact decimal arithmetic and display for the drift report, in integers of
 * hundredths. Every figure of a report has two decimals (scores are numeric(5,2),
 * money numeric(16,2)), so a figure is a `bigint` count of hundredths: "61.50" is
 * 6150n. Exact like a decimal library (0.3 - 0.1 is 0.2, a 14-digit valuation
 * keeps its cents: bigint, because 16 digits do not fit a double exactly), and a
 * fraction of its cost: decimal.js allocated a digits array per value and per
 * operation, ~6% of the drift job's CPU and much of its garbage (bench/FINDINGS.md).
 *
 * A value with more than two decimals (a category score stored as 61.755 in jsonb)
 * is rounded half away from zero to hundredths once, when it is read: a delta is
 * then always the difference of the two figures the reader sees.
 */
import { memoized } from './memo.ts';

/** A decimal as a whole number of hundredths: "61.50" → 6150n. */
export type Hundredths = bigint;

/** Plain decimal text, or scientific notation (JSON numbers such as 1e+21). */
const DECIMAL = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;
/** Beyond this exponent a "number" is garbage, not a score or an amount. */
const MAX_EXPONENT = 1000;

/**
 * Parses decimal text (or a JSON number) into hundredths, rounding half away from
 * zero past the second decimal; null for missing or non-numeric values.
 */
export function parseDecimal(value: unknown): Hundredths | null {
  let text: string;
  if (typeof value === 'string') {
    const quick = plainHundredths(value);
    if (quick !== null) return quick;
    text = value.trim();
  }
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value);
  else return null;
  const m = DECIMAL.exec(text);
  if (!m) return null;
  const [, sign, int = '', frac = '', exp] = m;
  if (!int && !frac) return null;
  const e = exp === undefined ? 0 : Number(exp);
  if (Math.abs(e) > MAX_EXPONENT) return null;
  // The digits, and where the point falls once multiplied by 100.
  const digits = int + frac;
  const point = int.length + e + 2;
  let whole: bigint;
  let next: string;
  if (point >= digits.length) {
    whole = BigInt(digits + '0'.repeat(point - digits.length));
    next = '0';
  } else if (point <= 0) {
    whole = 0n;
    next = point === 0 ? digits[0]! : '0';
  } else {
    whole = BigInt(digits.slice(0, point));
    next = digits[point]!;
  }
  if (next >= '5') whole += 1n;
  return sign === '-' ? -whole : whole;
}

/**
 * The common case without a regular expression or digit strings: plain text such
 * as "61.20", "-1200.00" or "62" (at most two decimals, no sign but "-", no
 * spaces), whose hundredths fit a double exactly (≤ 15 digits). Anything else is
 * null here and goes the general way. Rendering a report parses ~60 figures.
 */
function plainHundredths(text: string): Hundredths | null {
  const n = text.length;
  let i = n > 0 && text.charCodeAt(0) === 45 ? 1 : 0; // '-'
  let v = 0;
  let digits = 0;
  let decimals = -1;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) { // '.'
      if (decimals >= 0) return null;
      decimals = 0;
    } else if (c >= 48 && c <= 57) {
      if (decimals >= 0 && ++decimals > 2) return null;
      v = v * 10 + (c - 48);
      digits++;
    } else return null;
  }
  if (digits === 0) return null;
  const scale = 2 - Math.max(decimals, 0);
  if (digits + scale > 15) return null;
  const hundredths = scale === 2 ? v * 100 : scale === 1 ? v * 10 : v;
  return BigInt(text.charCodeAt(0) === 45 ? -hundredths : hundredths);
}

/** |x|. */
export function abs(x: Hundredths): Hundredths {
  return x < 0n ? -x : x;
}

/** Two-decimal text ("61.50", "-3.25"), or null. */
export function fixed2(value: Hundredths | null): string | null {
  if (value === null) return null;
  const a = abs(value);
  const cents = a % 100n;
  return `${value < 0n ? '-' : ''}${a / 100n}.${cents < 10n ? '0' : ''}${cents}`;
}

/** n / d rounded half away from zero (d > 0). */
function divRound(n: bigint, d: bigint): bigint {
  const q = n / d;
  const r = n % d;
  return 2n * abs(r) >= d ? q + (n < 0n ? -1n : 1n) : q;
}

/** (b - a) / |a| × 100 with two decimals; null when a is zero or either is missing. */
export function percentChange(from: Hundredths | null, to: Hundredths | null): string | null {
  if (from === null || to === null || from === 0n) return null;
  // Hundredths of a percent: (to - from) / |from| × 100 × 100.
  return fixed2(divRound((to - from) * 10_000n, abs(from)));
}

/** Parses report text that must be a number (the report's own figures). */
function must(text: string): Hundredths {
  const v = parseDecimal(text);
  if (v === null) throw new Error(`not a decimal: ${JSON.stringify(text)}`);
  return v;
}

/** Groups the integer digits of plain decimal text: "1234567.50" → "1,234,567.50". */
function group(text: string): string {
  const dot = text.indexOf('.');
  const int = dot < 0 ? text : text.slice(0, dot);
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return dot < 0 ? grouped : grouped + text.slice(dot);
}

const CURRENCY_SYMBOLS: Record<string, string> = { USD: '$', CAD: 'CA$', AUD: 'A$', EUR: '€', GBP: '£' };

/**
 * Money as people read it: "$1,250,000" (whole units from 1,000 up, or when the
 * amount is whole), "$980.50", "-$12,400"; other currencies get their symbol or code.
 */
export function formatMoney(amount: string, currency = 'USD'): string {
  const d = must(amount);
  const a = abs(d);
  const digits = a >= 100_000n || a % 100n === 0n ? String(divRound(a, 100n)) : fixed2(a)!;
  const code = currency.toUpperCase();
  const symbol = CURRENCY_SYMBOLS[code];
  const body = symbol ? `${symbol}${group(digits)}` : `${group(digits)} ${code}`;
  return d < 0n ? `-${body}` : body;
}

/** Signed money change: "+$12,000", "-$4,500". */
export function formatMoneyChange(amount: string, currency = 'USD'): string {
  return must(amount) < 0n ? formatMoney(amount, currency) : `+${formatMoney(amount, currency)}`;
}

/** Hundredths as a score without trailing zeros: 6150n → "61.5". */
function scoreText(value: Hundredths): string {
  const a = abs(value);
  const cents = a % 100n;
  const frac = cents === 0n ? '' : cents % 10n === 0n ? `.${cents / 10n}` : `.${cents < 10n ? '0' : ''}${cents}`;
  return `${value < 0n ? '-' : ''}${a / 100n}${frac}`;
}

/**
 * Scores and their changes are a few thousand texts repeated over every report (a
 * drift email formats ~30), and each bigint step allocates: formatted once each.
 */
const FORMATTED_MAX = 32_768;

/** A score, exact, without trailing zeros: "61.5", "60", "61.75". */
export const formatScore = memoized((value) => scoreText(must(value)), FORMATTED_MAX);

/** A signed score change: "+3.5", "-1.25", "0". */
export const formatDelta = memoized((value) => {
  const d = must(value);
  const text = scoreText(abs(d));
  if (d === 0n) return text;
  return d < 0n ? `-${text}` : `+${text}`;
}, FORMATTED_MAX);

/** A signed percentage with one decimal: "+5.0%", "-12.3%". */
export function formatPercent(value: string): string {
  const d = must(value);
  const tenths = divRound(abs(d), 10n);
  const text = `${tenths / 10n}.${tenths % 10n}`;
  if (tenths === 0n) return `${text}%`;
  return d < 0n ? `-${text}%` : `+${text}%`;
}
