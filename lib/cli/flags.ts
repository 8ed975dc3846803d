/**
 * Validation of the command line's values. Each failure is one line naming the
 * flag and what it expects (exit 2).
 */
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import type { RunOptions } from '../runtime/job.ts';

/** The text as a JSON string, with U+2028/U+2029 escaped too: a message stays one line whatever it echoes. */
const quote = (text: string): string => JSON.stringify(text).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** Parses --now: an ISO-8601 date or date-time; without an offset it is UTC. */
export function parseNow(text: string): Date {
  const bad = () => new ConfigError(`--now must be an ISO-8601 date-time such as 2026-03-01T06:00:00Z (got ${quote(text)})`);
  if (!ISO_8601.test(text)) throw bad();
  const [y, m, d] = [Number(text.slice(0, 4)), Number(text.slice(5, 7)), Number(text.slice(8, 10))];
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  const day = new Date(0);
  day.setUTCFullYear(y, m - 1, d);
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) throw bad();
  const iso = text.replace(' ', 'T');
  const date = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : /(Z|[+-]\d{2}:?\d{2})$/i.test(iso) ? iso : `${iso}Z`);
  if (Number.isNaN(date.getTime())) throw bad();
  return date;
}

/** Parses --period: YYYY-MM with a month from 01 to 12. */
export function parsePeriod(text: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(text)) throw new ConfigError(`--period must be a month as YYYY-MM, 01 to 12 (got ${quote(text)})`);
  return text;
}

const companySchema = z.string().trim().min(1).max(200);

/** Parses --company: a non-empty company id. */
export function parseCompany(text: string): string {
  const r = companySchema.safeParse(text);
  if (!r.success) throw new ConfigError(`--company must be a company id (got ${quote(text)})`);
  return r.data;
}

/** Parses --limit: a whole number from 1 to 1000. */
export function parseLimit(text: string): number {
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN; // digits only: Number() also takes " 5", "0x10", "1e2"
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ConfigError(`--limit must be a whole number from 1 to 1000 (got ${quote(text)})`);
  return n;
}

/** Commander's parsed options for a job command, as RunOptions. */
export function toRunOptions(raw: { dryRun?: boolean; now?: Date; company?: string; period?: string; force?: boolean }): RunOptions {
  return {
    dryRun: Boolean(raw.dryRun),
    ...(raw.now ? { now: raw.now } : {}),
    ...(raw.company ? { companyId: raw.company } : {}),
    ...(raw.period ? { period: raw.period } : {}),
    ...(raw.force ? { force: true } : {}),
  };
}
