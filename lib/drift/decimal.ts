/**
 * Exact decimal arithmetic and display for the drift report. Values arrive from
 * PostgreSQL `numeric` as text and stay decimal (decimal.js) all the way to the
 * stored JSON and the email: never a JavaScript number, so 0.1 + 0.2 is 0.3 and a
 * 14-digit valuation keeps its cents.
 */
import { Decimal } from 'decimal.js';

/** Our own Decimal constructor: 40 significant digits, halves rounded away from zero. */
export const Dec = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP });
export type Dec = InstanceType<typeof Dec>;

/** Parses decimal text (or a JSON number); null for missing or non-numeric values. */
export function parseDecimal(value: unknown): Dec | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string' && typeof value !== 'number') return null;
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  const text = String(value).trim();
  if (!/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(text)) return null;
  return new Dec(text);
}

/** Two-decimal text ("61.50", "-3.25"), or null. */
export function fixed2(value: Dec | null): string | null {
  if (!value) return null;
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

/** (b - a) / a × 100 with two decimals; null when a is zero or either is missing. */
export function percentChange(from: Dec | null, to: Dec | null): string | null {
  if (!from || !to || from.isZero()) return null;
  return fixed2(to.minus(from).div(from.abs()).times(100));
}

/** Groups the integer digits of plain decimal text: "1234567.50" → "1,234,567.50". */
function group(text: string): string {
  const [int, frac] = text.split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

const CURRENCY_SYMBOLS: Record<string, string> = { USD: '$', CAD: 'CA$', AUD: 'A$', EUR: '€', GBP: '£' };

/**
 * Money as people read it: "$1,250,000" (whole units from 1,000 up, or when the
 * amount is whole), "$980.50", "-$12,400"; other currencies get their symbol or code.
 */
export function formatMoney(amount: string, currency = 'USD'): string {
  const d = new Dec(amount);
  const abs = d.abs();
  const digits = abs.gte(1000) || abs.isInteger() ? abs.toFixed(0) : abs.toFixed(2);
  const symbol = CURRENCY_SYMBOLS[currency.toUpperCase()];
  const body = symbol ? `${symbol}${group(digits)}` : `${group(digits)} ${currency.toUpperCase()}`;
  return d.isNegative() && !d.isZero() ? `-${body}` : body;
}

/** Signed money change: "+$12,000", "-$4,500". */
export function formatMoneyChange(amount: string, currency = 'USD'): string {
  const d = new Dec(amount);
  return d.isNegative() && !d.isZero() ? formatMoney(amount, currency) : `+${formatMoney(amount, currency)}`;
}

/** A score, exact, without trailing zeros: "61.5", "60", "61.75". */
export function formatScore(value: string): string {
  return new Dec(new Dec(value).toFixed(2)).toString();
}

/** A signed score change: "+3.5", "-1.25", "0.0". */
export function formatDelta(value: string): string {
  const d = new Dec(value);
  const text = formatScore(d.abs().toString());
  if (d.isZero()) return text;
  return d.isNegative() ? `-${text}` : `+${text}`;
}

/** A signed percentage with one decimal: "+5.0%", "-12.3%". */
export function formatPercent(value: string): string {
  const d = new Dec(value);
  const text = d.abs().toFixed(1);
  if (d.toDecimalPlaces(1).isZero()) return `${text}%`;
  return d.isNegative() ? `-${text}%` : `+${text}%`;
}
