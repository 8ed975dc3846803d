/**
 * A loopback stand-in for Intuit, for tests and the demo: node:http on 127.0.0.1,
 * port 0. Never used in production: it lives in lib/stand-ins/ (not beside the real
 * client in lib/quickbooks/) only because the demo starts it at run time, so it must
 * be compiled into dist/. It speaks the real wire formats:
 * - the OAuth token endpoint (`POST /oauth2/v1/tokens/bearer`): HTTP Basic client
 *   credentials (else 401 `invalid_client`), refresh-token rotation (each refresh
 *   issues a new refresh token; the old one keeps working for a grace period, as at
 *   Intuit), unknown or revoked refresh tokens → 400 `invalid_grant`; bodies shaped
 *   like intuit-oauth's recorded samples;
 * - `GET /v3/company/{realmId}/reports/{ProfitAndLoss|BalanceSheet}` in Intuit's JSON
 *   report shape with one column per month (`summarize_column_by=Month`), for any
 *   date range, with figures from a deterministic generator per realm and month;
 * - switchable faults per realm: latency, 401, 429 (Retry-After and the Fault 3001
 *   body), 5xx; request counts and the most requests in flight, per realm;
 * - a hanging Intuit, for reports per realm and for the token endpoint (`hang`: the
 *   request is read and never answered; `trickle`: status and headers at once, then
 *   the body one byte a second; `cut`: the headers and half the body, then the
 *   socket closed). A token request that meets `trickle` or `cut` has been carried
 *   out (the refresh token rotated) before its answer is spoilt, as at Intuit;
 * - fixed report bodies per realm (`reports`: text served as it is, e.g. a real
 *   company's report), in place of the generated ones.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { balanceSheetReport, profitAndLossReport } from './quickbooks-reports.ts';

export { monthLedger } from './quickbooks-reports.ts';

export interface LoopbackOptions {
  clientId: string;
  clientSecret: string;
  /**
   * Accept any bearer and refresh token not revoked (the demo, whose sample tokens
   * the server never issued). Tests leave it off and register tokens.
   * @defaultValue false
   */
  acceptUnknownTokens?: boolean;
  /** Access token lifetime, seconds. @defaultValue 3600 */
  accessTokenTtl?: number;
  /** Refresh token lifetime, seconds. @defaultValue 8726400 */
  refreshTokenTtl?: number;
}

/** Faults and delays for one realm (or `*` for every realm). */
export interface RealmBehaviour {
  /** Delay before answering a report request, ms. */
  latencyMs?: number;
  /** Answer the next N report requests with this status. */
  failNext?: { status: 401 | 429 | 500 | 503; count: number; retryAfterSeconds?: number; lowerCaseFault?: boolean };
  /** Added to "Sales of Product Income" of one month ('YYYY-MM'), in cents: to change one month between runs. */
  adjustments?: Record<string, number>;
  /** Every report request of the realm meets this fault (after the latency). */
  fault?: HangingFault;
  /** Report bodies (JSON text) served as they are, with 200, instead of generated reports. */
  reports?: Partial<Record<'ProfitAndLoss' | 'BalanceSheet', string>>;
}

/** How a hanging Intuit answers: never, a byte a second, or half an answer and a closed socket. */
export type HangingFault = 'hang' | 'trickle' | 'cut';

export interface RealmStats {
  reportRequests: number;
  inFlight: number;
  maxInFlight: number;
  /** Request start times (ms since epoch), for rate checks. */
  startedAt: number[];
  statuses: number[];
}

/** What the token endpoint did, for assertions. */
export interface TokenStats {
  requests: number;
  refreshed: number;
  invalidGrant: number;
  invalidClient: number;
  /** Token requests whose connection is still open (a client that gave up closes it). */
  open: number;
}

export interface LoopbackQuickBooks {
  /** e.g. http://127.0.0.1:43121 (QUICKBOOKS_API_URL). */
  apiUrl: string;
  /** The token endpoint URL (QUICKBOOKS_TOKEN_URL). */
  tokenUrl: string;
  /** Registers tokens the server will accept for a realm. */
  addTokens(realmId: string, tokens: { accessToken: string; refreshToken: string }): void;
  /** Revokes a refresh token: the next refresh with it is `invalid_grant`. */
  revokeRefreshToken(refreshToken: string): void;
  /** Invalidates an access token: report calls with it get 401. */
  revokeAccessToken(accessToken: string): void;
  /** Sets a realm's faults and latency (`*`: every realm). */
  behave(realmId: string, behaviour: RealmBehaviour): void;
  /** Delay of the token endpoint, ms. */
  tokenLatencyMs: number;
  /** Every token request meets this fault (undefined: answered normally). */
  tokenFault?: HangingFault | undefined;
  /** After this many token requests, answer invalid_client (the app's credentials revoked mid-run). */
  rejectClientAfter?: number;
  /** Called when a token request has been answered (tests: kill a process then). */
  onTokenIssued?: (refreshToken: string) => void;
  /** Called when a report request arrives. */
  onReportRequest?: (realmId: string) => void;
  /** A realm's counts; `*`: all realms together. */
  stats(realmId: string): RealmStats;
  tokenStats: TokenStats;
  /** Refresh tokens issued, newest last. */
  issuedRefreshTokens: string[];
  close(): Promise<void>;
}

const GRACE_MS = 24 * 3600_000;

/** Starts the server on 127.0.0.1, a free port. The caller owns it and closes it. */
export async function startLoopbackQuickBooks(options: LoopbackOptions): Promise<LoopbackQuickBooks> {
  const accessTokens = new Map<string, { realmId: string | undefined; expiresAt: number }>();
  const refreshTokens = new Map<string, { realmId: string | undefined; diesAt: number }>();
  const revokedRefresh = new Set<string>();
  const revokedAccess = new Set<string>();
  const behaviours = new Map<string, RealmBehaviour>();
  const stats = new Map<string, RealmStats>();
  const tokenStats: TokenStats = { requests: 0, refreshed: 0, invalidGrant: 0, invalidClient: 0, open: 0 };
  const issuedRefreshTokens: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const statsOf = (realmId: string): RealmStats => {
    let s = stats.get(realmId);
    if (!s) stats.set(realmId, (s = { reportRequests: 0, inFlight: 0, maxInFlight: 0, startedAt: [], statuses: [] }));
    return s;
  };
  const behaviourOf = (realmId: string): RealmBehaviour => ({ ...behaviours.get('*'), ...behaviours.get(realmId) });

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { Fault: { Error: [{ Message: 'loopback error', Detail: String(err), code: '10000' }], type: 'SERVICE' } });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const api: LoopbackQuickBooks = {
    apiUrl: '',
    tokenUrl: '',
    tokenLatencyMs: 0,
    addTokens(realmId, t) {
      accessTokens.set(t.accessToken, { realmId, expiresAt: Date.now() + 3600_000 });
      refreshTokens.set(t.refreshToken, { realmId, diesAt: Number.POSITIVE_INFINITY });
    },
    revokeRefreshToken: (t) => void revokedRefresh.add(t),
    revokeAccessToken: (t) => void revokedAccess.add(t),
    behave: (realmId, b) => void behaviours.set(realmId, { ...behaviours.get(realmId), ...b }),
    stats: statsOf,
    tokenStats,
    issuedRefreshTokens,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname === '/oauth2/v1/tokens/bearer') return token(req, res);
    const m = /^\/v3\/company\/([^/]+)\/reports\/(ProfitAndLoss|BalanceSheet)$/.exec(url.pathname);
    if (req.method === 'GET' && m) return report(req, res, decodeURIComponent(m[1]!), m[2] as 'ProfitAndLoss' | 'BalanceSheet', url.searchParams);
    json(res, 404, { Fault: { Error: [{ Message: 'Not found', Detail: url.pathname, code: '610' }], type: 'ValidationFault' } });
  }

  async function token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    tokenStats.requests++;
    tokenStats.open++;
    res.on('close', () => tokenStats.open--);
    const body = await readBody(req);
    if (api.tokenLatencyMs) await sleep(api.tokenLatencyMs);
    const expected = `Basic ${Buffer.from(`${options.clientId}:${options.clientSecret}`).toString('base64')}`;
    if (req.headers.authorization !== expected || (api.rejectClientAfter !== undefined && tokenStats.requests > api.rejectClientAfter)) {
      tokenStats.invalidClient++;
      return json(res, 401, { error: 'invalid_client' });
    }
    const form = parseForm(body, req.headers['content-type']);
    const refreshToken = form.refresh_token;
    if (form.grant_type !== 'refresh_token' || !refreshToken) return json(res, 400, { error: 'invalid_request' });
    if (api.tokenFault === 'hang') return; // read, never answered (and never carried out)
    const known = refreshTokens.get(refreshToken);
    const alive = known ? known.diesAt > Date.now() : options.acceptUnknownTokens === true;
    if (revokedRefresh.has(refreshToken) || !alive) {
      tokenStats.invalidGrant++;
      return json(res, 400, { error_description: 'Token invalid', error: 'invalid_grant' });
    }
    const realmId = known?.realmId;
    // Rotation: the old refresh token dies a day later, the new one is returned.
    refreshTokens.set(refreshToken, { realmId, diesAt: Math.min(known?.diesAt ?? Number.POSITIVE_INFINITY, Date.now() + GRACE_MS) });
    const accessToken = `at_${crypto.randomBytes(12).toString('hex')}`;
    const newRefresh = `rt_${crypto.randomBytes(12).toString('hex')}`;
    const accessTtl = options.accessTokenTtl ?? 3600;
    accessTokens.set(accessToken, { realmId, expiresAt: Date.now() + accessTtl * 1000 });
    refreshTokens.set(newRefresh, { realmId, diesAt: Number.POSITIVE_INFINITY });
    issuedRefreshTokens.push(newRefresh);
    tokenStats.refreshed++;
    // The shape of intuit-oauth's recorded refresh response.
    (api.tokenFault ? (r: http.ServerResponse, status: number, body: unknown) => misbehave(r, status, body, api.tokenFault!) : json)(res, 200, {
      access_token: accessToken,
      refresh_token: newRefresh,
      token_type: 'bearer',
      expires_in: accessTtl,
      x_refresh_token_expires_in: options.refreshTokenTtl ?? 8726400,
      id_token: 'loopback_id_token',
    });
    res.on('finish', () => api.onTokenIssued?.(newRefresh));
  }

  async function report(req: http.IncomingMessage, res: http.ServerResponse, realmId: string, name: 'ProfitAndLoss' | 'BalanceSheet', params: URLSearchParams): Promise<void> {
    const s = statsOf(realmId);
    const all = statsOf('*');
    for (const x of [s, all]) {
      x.reportRequests++;
      x.inFlight++;
      x.maxInFlight = Math.max(x.maxInFlight, x.inFlight);
      x.startedAt.push(Date.now());
    }
    const tid = `loopback-${crypto.randomBytes(6).toString('hex')}`;
    res.setHeader('intuit_tid', tid);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      s.statuses.push(status);
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      const fault = behaviourOf(realmId).fault;
      if (fault) return misbehave(res, status, body, fault);
      json(res, status, body);
    };
    try {
      api.onReportRequest?.(realmId);
      const b = behaviourOf(realmId);
      if (b.latencyMs) await sleep(b.latencyMs);
      const fail = behaviours.get(realmId)?.failNext ?? behaviours.get('*')?.failNext;
      if (fail && fail.count > 0) {
        fail.count--;
        if (fail.status === 429) {
          const fault = { Error: [{ Message: 'message=ThrottleExceeded; errorCode=003001; statusCode=429', Detail: 'The request limit was reached.  Try again later', code: '3001' }], type: 'SERVICE' };
          return send(429, fail.lowerCaseFault ? { fault: { error: [{ message: fault.Error[0]!.Message, detail: fault.Error[0]!.Detail, code: '3001' }], type: 'SERVICE' } } : { Fault: fault, time: new Date().toISOString() }, { 'Retry-After': String(fail.retryAfterSeconds ?? 1) });
        }
        if (fail.status === 401) return send(401, { fault: { error: [{ message: 'message=AuthenticationFailed; errorCode=003200; statusCode=401', detail: 'Token expired', code: '3200' }], type: 'AUTHENTICATION' } });
        return send(fail.status, { Fault: { Error: [{ Message: 'An application error has occurred while processing your request', Detail: 'System Failure Error', code: '10000' }], type: 'SystemFault' } });
      }
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const known = bearer ? accessTokens.get(bearer) : undefined;
      const valid = bearer && !revokedAccess.has(bearer) && (known ? known.expiresAt > Date.now() && (known.realmId === undefined || known.realmId === realmId) : options.acceptUnknownTokens === true);
      if (!valid) return send(401, { fault: { error: [{ message: 'message=AuthenticationFailed; errorCode=003200; statusCode=401', detail: 'Token expired', code: '3200' }], type: 'AUTHENTICATION' } });
      if (req.headers.accept !== 'application/json' || params.get('minorversion') !== '75' || params.get('summarize_column_by') !== 'Month') {
        return send(400, { Fault: { Error: [{ Message: 'Invalid request', Detail: 'Accept: application/json, minorversion=75 and summarize_column_by=Month are required', code: '2010' }], type: 'ValidationFault' } });
      }
      const start = params.get('start_date') ?? '';
      const end = params.get('end_date') ?? '';
      if (!/^\d{4}-\d{2}-\d{2}$/.test(start) || !/^\d{4}-\d{2}-\d{2}$/.test(end) || start > end) {
        return send(400, { Fault: { Error: [{ Message: 'Invalid date range', Detail: `${start}..${end}`, code: '2020' }], type: 'ValidationFault' } });
      }
      const basis = params.get('accounting_method') ?? 'Accrual';
      const fixed = b.reports?.[name];
      if (fixed !== undefined) return send(200, new RawJson(fixed));
      send(200, name === 'ProfitAndLoss' ? profitAndLossReport(realmId, start, end, basis, b.adjustments ?? {}) : balanceSheetReport(realmId, start, end, basis, b.adjustments ?? {}));
    } finally {
      s.inFlight--;
      all.inFlight--;
    }
  }

  /** Answers as a hanging server would: never, a byte a second, or half and then a closed socket. */
  function misbehave(res: http.ServerResponse, status: number, body: unknown, fault: HangingFault): void {
    if (fault === 'hang') return;
    const bytes = Buffer.from(body instanceof RawJson ? body.text : JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': bytes.length });
    res.flushHeaders();
    if (fault === 'cut') {
      res.write(bytes.subarray(0, bytes.length >> 1), () => res.socket?.destroy());
      return;
    }
    let i = 0;
    const tick = setInterval(() => {
      if (res.destroyed || i >= bytes.length) {
        clearInterval(tick);
        timers.delete(tick);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(bytes.subarray(i, ++i));
    }, 1000);
    timers.add(tick);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  api.apiUrl = `http://127.0.0.1:${port}`;
  api.tokenUrl = `http://127.0.0.1:${port}/oauth2/v1/tokens/bearer`;
  return api;
}

/** A body that is JSON text already, served byte for byte. */
class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = body instanceof RawJson ? body.text : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (data += c));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function parseForm(body: string, contentType: string | undefined): Record<string, string> {
  if (contentType?.includes('application/json')) {
    try {
      return JSON.parse(body) as Record<string, string>;
    } catch {
      return {};
    }
  }
  return Object.fromEntries(new URLSearchParams(body));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
