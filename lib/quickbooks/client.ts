/**
 * The QuickBooks Accounting API client: the two monthly reports, within Intuit's
 * limits. Per realm at most `maxInFlightPerRealm` requests in flight and
 * `maxPerMinutePerRealm` started in any minute (a sliding window, realm-limiter.ts,
 * which forgets idle realms); a global limit across realms; a timeout on every call; retries with
 * backoff on 429 (waiting as Retry-After says) and 5xx. Failures are logged with
 * Intuit's `intuit_tid` and thrown in the domain's words.
 */
import { Slots } from '../runtime/slots.ts';
import type { Logger } from '../telemetry/log.ts';
import { QuickBooksApiError, QuickBooksAuthError, QuickBooksParseError, QuickBooksTransientError, traced } from './errors.ts';
import { HttpGetter, type HttpAnswer } from './http-get.ts';
import { RealmLimiter } from './realm-limiter.ts';
import type { QboReport } from './report-parser.ts';
import { scanReport, type ScannedReport } from './report-scan.ts';

export type ReportName = 'ProfitAndLoss' | 'BalanceSheet';

export interface QuickBooksClientOptions {
  /** Accounting API base URL (QUICKBOOKS_API_URL). */
  apiUrl: string;
  /** Report basis. @defaultValue Accrual */
  accountingMethod: 'Accrual' | 'Cash';
  /** @defaultValue 10 (Intuit's limit) */
  maxInFlightPerRealm: number;
  /** @defaultValue 500 (Intuit's limit) */
  maxPerMinutePerRealm: number;
  /** Requests in flight across all realms. */
  maxInFlight: number;
  /** Timeout of one HTTP call, ms. */
  timeoutMs: number;
  /** Retries of one call on 429, 5xx and network errors. @defaultValue 4 */
  retries?: number;
  /** First backoff, ms (doubles each retry). @defaultValue 250 */
  backoffMs?: number;
  /** Length of the rate window, ms (tests shorten it). @defaultValue 60000 */
  rateWindowMs?: number;
  log: Logger;
  /** Aborted on SIGTERM: pending retries stop. */
  signal?: AbortSignal;
}

/** The minor version of the Accounting API this client speaks. */
export const MINOR_VERSION = '75';

export class QuickBooksClient {
  readonly #options: QuickBooksClientOptions;
  readonly #realms: RealmLimiter;
  readonly #global: Slots;
  readonly #http: HttpGetter;
  /** Per-report signals that follow the run's (see #linked). */
  readonly #following = new Set<AbortController>();
  /** The report path before the realm id, the origin, and the query of each fetch window (see #target). */
  readonly #base: URL;
  readonly #queries = new Map<string, string>();
  /** HTTP calls made (attempts, retries included). */
  calls = 0;

  constructor(options: QuickBooksClientOptions) {
    this.#options = options;
    this.#base = new URL(`${options.apiUrl}/v3/company/`);
    options.signal?.addEventListener('abort', () => {
      for (const c of this.#following) c.abort(options.signal!.reason);
    }, { once: true });
    this.#global = new Slots(options.maxInFlight);
    this.#http = new HttpGetter({ maxSockets: options.maxInFlight });
    this.#realms = new RealmLimiter({ maxInFlight: options.maxInFlightPerRealm, maxPerWindow: options.maxPerMinutePerRealm, windowMs: options.rateWindowMs ?? 60_000 });
  }

  /** Realms whose limiter state is still kept (idle ones are forgotten once their window has passed). */
  get realmsTracked(): number {
    return this.#realms.size;
  }

  /**
   * Fetches one report with monthly columns for start..end (inclusive dates, 'YYYY-MM-DD').
   * With `scan`, the answer is read by report-scan.ts when it can be (the sync's
   * path: its money cells stay in the text), else parsed as without.
   */
  report(realmId: string, accessToken: string, name: ReportName, range: { startDate: string; endDate: string }, options?: { signal?: AbortSignal }): Promise<QboReport>;
  report(realmId: string, accessToken: string, name: ReportName, range: { startDate: string; endDate: string }, options: { signal?: AbortSignal; scan: true }): Promise<QboReport | ScannedReport>;
  async report(realmId: string, accessToken: string, name: ReportName, range: { startDate: string; endDate: string }, options: { signal?: AbortSignal; scan?: boolean } = {}): Promise<QboReport | ScannedReport> {
    const link = this.#linked(options.signal);
    const signal = link?.signal;
    const url = this.#target(realmId, name, range);
    try {
      return await this.#fetch(url, accessToken, realmId, name, signal, options.scan === true);
    } finally {
      link?.unlink?.();
    }
  }

  /**
   * The run's signal and the caller's as one: the caller's own when the client has
   * none (and the reverse), else a controller aborted by either. Why not
   * `AbortSignal.any`: ~40 us per call here (a composite signal registered by weak
   * reference in both sources), two calls per integration. The run's signal keeps one
   * listener for all the calls in flight (#following), not one per call.
   */
  #linked(caller: AbortSignal | undefined): { signal: AbortSignal; unlink?: () => void } | undefined {
    const run = this.#options.signal;
    if (!run || !caller) {
      const only = run ?? caller;
      return only ? { signal: only } : undefined;
    }
    const c = new AbortController();
    if (run.aborted) c.abort(run.reason);
    else if (caller.aborted) c.abort(caller.reason);
    if (c.signal.aborted) return { signal: c.signal };
    const onCaller = () => c.abort(caller.reason);
    caller.addEventListener('abort', onCaller, { once: true });
    this.#following.add(c);
    return {
      signal: c.signal,
      unlink: () => {
        this.#following.delete(c);
        caller.removeEventListener('abort', onCaller);
      },
    };
  }

  /**
   * The report's URL as origin and path: `new URL` and `URLSearchParams` per call
   * were ~20 us each; the query is the same for every integration of a window. A
   * realm id that is a dot segment goes through `new URL` (which resolves it).
   */
  #target(realmId: string, name: ReportName, range: { startDate: string; endDate: string }): { origin: string; path: string } {
    const key = `${range.startDate}/${range.endDate}`;
    let query = this.#queries.get(key);
    if (query === undefined) {
      query = new URLSearchParams({
        start_date: range.startDate,
        end_date: range.endDate,
        summarize_column_by: 'Month',
        accounting_method: this.#options.accountingMethod,
        minorversion: MINOR_VERSION,
      }).toString();
      if (this.#queries.size >= 100) this.#queries.clear();
      this.#queries.set(key, query);
    }
    const realm = encodeURIComponent(realmId);
    if (realm === '.' || realm === '..') {
      const url = new URL(`${this.#options.apiUrl}/v3/company/${realm}/reports/${name}`);
      return { origin: url.origin, path: `${url.pathname}?${query}` };
    }
    return { origin: this.#base.origin, path: `${this.#base.pathname}${realm}/reports/${name}?${query}` };
  }

  /**
   * One report call with its retries: 429, 5xx and network failures are retried
   * `retries` times with exponential backoff (`backoffMs` doubling, times a random
   * 1-2 so that many integrations throttled at once do not come back together),
   * after the Retry-After that Intuit gave. Once the signal is aborted nothing more
   * is tried, and the call fails with the signal's reason, even one whose answer
   * had already arrived.
   *
   * Why not p-retry (the email service's): its per-call state (options copy,
   * frozen contexts, an abort listener) was alive through every one of the ~40k
   * calls of a run; this loop allocates nothing until a call fails
   * (bench/FINDINGS.md, round four). The rules above are p-retry's as the client
   * used them (client.test.ts, hanging-providers).
   */
  async #fetch(url: { origin: string; path: string }, accessToken: string, realmId: string, name: ReportName, signal: AbortSignal | undefined, scan: boolean): Promise<QboReport | ScannedReport> {
    const retries = this.#options.retries ?? 4;
    const backoffMs = this.#options.backoffMs ?? 250;
    let body: unknown;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        body = await this.#attempt(url, accessToken, realmId, name, signal, scan);
        signal?.throwIfAborted();
        break;
      } catch (error) {
        signal?.throwIfAborted();
        if (!(error instanceof QuickBooksTransientError) || attempt > retries) throw error;
        this.#options.log.warn('qbo:request:retry', { realmId, report: name, attempt, status: error.status, intuitTid: error.intuitTid, retryAfterMs: error.retryAfterMs });
        // Intuit said how long to wait: honour it before the backoff.
        if (error.retryAfterMs) await sleep(error.retryAfterMs, signal);
        await sleep(Math.round((Math.random() + 1) * backoffMs * 2 ** (attempt - 1)), signal);
      }
    }
    if (!body || typeof body !== 'object') throw new QuickBooksParseError(`QuickBooks ${name} for realm ${realmId} is not a JSON object`);
    return body as QboReport | ScannedReport;
  }

  /** One HTTP call within the realm's limits (taken first) and the global one; the realm's window counts it from when it really starts. */
  async #attempt(url: { origin: string; path: string }, accessToken: string, realmId: string, name: ReportName, signal: AbortSignal | undefined, scan: boolean): Promise<unknown> {
    const slot = this.#realms.tryAcquire(realmId) ?? (await this.#realms.acquire(realmId, signal));
    try {
      if (!this.#global.tryTake()) await this.#global.take(signal);
      try {
        slot.start();
        return await this.#get(url, accessToken, realmId, name, signal, scan);
      } finally {
        this.#global.release();
      }
    } finally {
      slot.release();
    }
  }

  async #get(url: { origin: string; path: string }, accessToken: string, realmId: string, name: ReportName, signal: AbortSignal | undefined, scan: boolean): Promise<unknown> {
    this.calls++;
    const started = performance.now();
    let res: HttpAnswer;
    try {
      // One deadline for the whole call, the body included (http-get.ts).
      res = await this.#http.get(url, { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' }, this.#options.timeoutMs, signal);
    } catch (err) {
      if (signal?.aborted) throw err; // stopped by the caller: not Intuit's failure
      // A timeout (no answer, or one too slow) or a connection lost mid-answer: a GET
      // of a report, safe to ask again.
      const timedOut = (err as Error).name === 'TimeoutError';
      const e = traced(new QuickBooksTransientError(timedOut ? `QuickBooks ${name} for realm ${realmId} timed out after ${this.#options.timeoutMs} ms` : `QuickBooks ${name} for realm ${realmId} failed: ${networkReason(err)}`), { code: timedOut ? 'timeout' : 'network' });
      this.#options.log.warn('qbo:request:failed', { realmId, report: name, error: e.message });
      throw e;
    }
    const intuitTid = header(res, 'intuit_tid');
    const text = res.text;
    if (res.status >= 200 && res.status < 300) {
      if (this.#options.log.isDebugEnabled()) this.#options.log.debug('qbo:report:fetched', { realmId, report: name, status: res.status, intuitTid, ms: Math.round(performance.now() - started) });
      try {
        return (scan ? scanReport(text) : undefined) ?? JSON.parse(text);
      } catch {
        throw new QuickBooksParseError(`QuickBooks ${name} for realm ${realmId} is not JSON (intuit_tid ${intuitTid ?? 'none'})`);
      }
    }
    const fault = parseFault(text);
    const detail = fault ? `${fault.code ? `code ${fault.code}: ` : ''}${fault.message}` : `HTTP ${res.status}`;
    let error: Error;
    if (res.status === 401) {
      error = traced(new QuickBooksAuthError(`QuickBooks access token rejected for realm ${realmId}`), { intuitTid, code: fault?.code });
    } else if (res.status === 429 || res.status >= 500 || fault?.code === '3001') {
      const e = traced(new QuickBooksTransientError(res.status === 429 ? `QuickBooks throttled realm ${realmId} (HTTP 429, ${detail})` : `QuickBooks ${name} for realm ${realmId} failed with HTTP ${res.status} (${detail})`), { intuitTid, status: res.status, code: fault?.code });
      const retryAfter = retryAfterMs(header(res, 'retry-after') ?? null);
      if (retryAfter !== undefined) e.retryAfterMs = retryAfter;
      error = e;
    } else {
      error = traced(new QuickBooksApiError(`QuickBooks refused ${name} for realm ${realmId} (HTTP ${res.status}, ${detail})`), { intuitTid, status: res.status, code: fault?.code });
    }
    this.#options.log.warn('qbo:request:failed', { realmId, report: name, status: res.status, intuitTid, error: error.message });
    throw error;
  }
}

/** Reads Intuit's error bodies: `{"Fault":{"Error":[{Message,Detail,code}]}}` and the lower-case `{"fault":{"error":[{message,detail,code}]}}`. */
export function parseFault(text: string): { code?: string; message: string } | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  const b = body as Record<string, unknown>;
  const fault = (b.Fault ?? b.fault) as Record<string, unknown> | undefined;
  if (!fault || typeof fault !== 'object') return undefined;
  const errors = (fault.Error ?? fault.error) as Array<Record<string, unknown>> | undefined;
  const first = Array.isArray(errors) ? errors[0] : undefined;
  if (!first) return { message: String(fault.type ?? 'Fault') };
  const code = first.code ?? first.Code;
  const message = [first.Message ?? first.message, first.Detail ?? first.detail].filter((x) => typeof x === 'string' && x).join(' - ');
  return { ...(code !== undefined ? { code: String(code) } : {}), message: message.slice(0, 200) || 'Fault' };
}

/** Retry-After in seconds or as an HTTP date → ms (capped at 5 minutes). */
export function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return Math.min(ms, 300_000);
}

/** A response header as one string (the first, when repeated). */
function header(res: HttpAnswer, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  return String(cause?.code ?? cause?.message ?? (err as Error).message ?? 'network error').slice(0, 100);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
