/**
 * Intuit's OAuth token endpoint through intuit-oauth: refreshing an access token
 * with a refresh token (`refreshUsingToken`), and a credentials check. Errors come
 * back in the domain's words, without the raw library error (whose `authResponse`
 * holds the request with its Basic credentials).
 *
 * intuit-oauth has no per-instance base URL: the endpoint is the static
 * `OAuthClient.tokenEndpoint`. refreshUsingToken reads it synchronously when it
 * builds the request, so it is set right before each call (one tick, no await in
 * between), which keeps two clients with different URLs in one process correct.
 */
import OAuthClient from 'intuit-oauth';
import PQueue from 'p-queue';
import { QuickBooksApiError, QuickBooksClientError, QuickBooksReauthError, QuickBooksTransientError, traced } from './errors.ts';

/** A decrypted token pair with its expiry times. */
export interface TokenSet {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
  refreshTokenExpiresAt: Date;
}

export interface TokenEndpointOptions {
  clientId: string;
  clientSecret: string;
  environment: 'sandbox' | 'production';
  /** The token endpoint (QUICKBOOKS_TOKEN_URL). */
  tokenUrl: string;
  /** Timeout of one token call, from the start to the last byte of the answer, intuit-oauth's own retries included, ms. */
  timeoutMs: number;
  /**
   * Aborted on SIGTERM: no refresh starts after it (one in flight finishes, within
   * its timeout, so that a rotated refresh token is saved).
   */
  signal?: AbortSignal;
  /**
   * Refreshes (each in a transaction holding a pooled connection and the row lock)
   * at once; the others wait here, not for a connection. @defaultValue unlimited
   */
  maxConcurrentRefreshes?: number;
}

/** The refresh token used by the credentials probe: never valid, so Intuit answers invalid_grant when it accepts our client. */
const PROBE_REFRESH_TOKEN = 'exitosx-credentials-probe';

/** Refreshes tokens at Intuit. One per run; holds no secret beyond the app credentials it was given. */
export class TokenEndpoint {
  readonly #options: TokenEndpointOptions;
  readonly #slots: PQueue;
  /** Token calls made (tests and the summary's debug logs). */
  calls = 0;

  constructor(options: TokenEndpointOptions) {
    this.#options = options;
    this.#slots = new PQueue({ concurrency: options.maxConcurrentRefreshes ?? Number.POSITIVE_INFINITY });
  }

  /**
   * Runs `fn` (a refresh's transaction) in one of the refresh slots. A refresh holds
   * its database connection for as long as Intuit takes (up to timeoutMs); with
   * more refreshes than connections, the rest would wait for the pool and fail
   * with its acquire timeout (15 s, under the 30 s a hanging Intuit may take), which
   * ends the run as "database unreachable". Waiting for a slot has no such limit.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#slots.add(fn) as Promise<T>;
  }

  /**
   * Exchanges a refresh token for a new pair. Intuit may rotate the refresh token;
   * the caller must persist the result before using the new access token.
   * Expiry times are computed from `now` (the run's clock).
   */
  async refresh(refreshToken: string, realmId: string, now: Date): Promise<TokenSet> {
    // Asked to stop: no new call. Items waiting for a connection (or the row lock)
    // would otherwise each start a refresh of up to timeoutMs, one after another,
    // past the pod's grace period. The item is rolled back, as when a report call
    // is aborted.
    this.#options.signal?.throwIfAborted();
    this.calls++;
    const client = new OAuthClient({ clientId: this.#options.clientId, clientSecret: this.#options.clientSecret, environment: this.#options.environment, redirectUri: 'http://127.0.0.1/unused' });
    // intuit-oauth sends the request with axios and neither a timeout nor a signal
    // (it waits forever for a server that never answers, and retries resets and
    // 5xx on its own, 3 times, 1-4 s apart). The deadline covers all of that: its
    // signal is added to the library's request (its loadResponse, wrapped for this
    // client only), so at the deadline the call in flight is aborted, body and all,
    // and a retry the library still has queued fails at once, never reaching Intuit.
    const deadline = new AbortController();
    const load = client.loadResponse.bind(client);
    client.loadResponse = (request: Record<string, unknown>) => load({ ...request, signal: deadline.signal });
    OAuthClient.tokenEndpoint = this.#options.tokenUrl;
    const call = client.refreshUsingToken(refreshToken);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        deadline.abort();
        reject(traced(new QuickBooksTransientError(`QuickBooks token endpoint did not answer within ${this.#options.timeoutMs} ms (realm ${realmId})`), { code: 'timeout' }));
      }, this.#options.timeoutMs);
    });
    call.catch(() => undefined); // settled after the deadline: already answered by the timeout
    let response: Awaited<typeof call>;
    try {
      response = await Promise.race([call, timeout]);
    } catch (err) {
      if (err instanceof QuickBooksTransientError) throw err;
      throw translate(err, realmId);
    } finally {
      clearTimeout(timer);
    }
    const body = (response?.getJson?.() ?? response?.json) as Record<string, unknown> | null;
    const accessToken = body?.access_token;
    const newRefresh = body?.refresh_token;
    if (typeof accessToken !== 'string' || !accessToken) throw new QuickBooksApiError(`QuickBooks token endpoint answered without an access token (realm ${realmId})`);
    const expiresIn = Number(body?.expires_in ?? 3600);
    const refreshExpiresIn = Number(body?.x_refresh_token_expires_in ?? 0);
    return {
      accessToken,
      // Intuit returns the refresh token to use from now on (the same or a new one).
      refreshToken: typeof newRefresh === 'string' && newRefresh ? newRefresh : refreshToken,
      accessTokenExpiresAt: new Date(now.getTime() + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600) * 1000),
      refreshTokenExpiresAt: new Date(now.getTime() + (Number.isFinite(refreshExpiresIn) && refreshExpiresIn > 0 ? refreshExpiresIn : 100 * 86400) * 1000),
    };
  }

  /**
   * Checks the app credentials before any integration is touched: a refresh with a
   * token that cannot exist. `invalid_grant` means Intuit accepted our client;
   * `invalid_client` is a configuration error (QuickBooksClientError, exit 2).
   * Network trouble is not a verdict on the credentials: it is left to the items.
   */
  async checkCredentials(now: Date): Promise<void> {
    try {
      await this.probeCredentials(now);
    } catch (err) {
      if (err instanceof QuickBooksClientError) throw err;
    }
  }

  /**
   * One token call that tells whether Intuit accepts the app credentials, and
   * changes nothing there: resolves when it does (`invalid_grant` for the probe
   * token), throws QuickBooksClientError on `invalid_client`, and the transient or
   * API error when the endpoint could not give a verdict (`exitosx-cron doctor`).
   */
  async probeCredentials(now: Date): Promise<void> {
    try {
      await this.refresh(PROBE_REFRESH_TOKEN, 'credentials-check', now);
    } catch (err) {
      if (err instanceof QuickBooksReauthError) return;
      throw err;
    }
  }
}

/** intuit-oauth's wrapped error → ours. */
function translate(err: unknown, realmId: string): Error {
  const e = (err ?? {}) as { error?: unknown; intuit_tid?: unknown; authResponse?: { response?: { status?: unknown } }; message?: unknown; code?: unknown };
  const code = typeof e.error === 'string' ? e.error : '';
  const intuitTid = typeof e.intuit_tid === 'string' && e.intuit_tid ? e.intuit_tid : undefined;
  const status = Number(e.authResponse?.response?.status) || undefined;
  if (code === 'invalid_grant') {
    return traced(new QuickBooksReauthError(`QuickBooks refresh token rejected for realm ${realmId} (invalid_grant): the connection must be re-authorised`), { intuitTid, status });
  }
  if (code === 'invalid_client') {
    return traced(new QuickBooksClientError('Intuit rejected the app credentials (invalid_client): check QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET'), { intuitTid, status });
  }
  if (status === undefined || status === 429 || status >= 500) {
    const what = status ? `HTTP ${status}` : 'no answer';
    return traced(new QuickBooksTransientError(`QuickBooks token endpoint failed for realm ${realmId} (${what})`), { intuitTid, status });
  }
  return traced(new QuickBooksApiError(`QuickBooks token endpoint refused the refresh for realm ${realmId} (HTTP ${status}${code ? `, ${code.slice(0, 40)}` : ''})`), { intuitTid, status });
}
