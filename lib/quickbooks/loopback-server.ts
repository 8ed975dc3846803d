/**
 * A loopback stand-in for Intuit, for tests and the demo: node:http on 127.0.0.1,
 * port 0. It speaks the real wire formats:
 * - the OAuth token endpoint (`POST /oauth2/v1/tokens/bearer`): HTTP Basic client
 *   credentials (else 401 `invalid_client`), refresh-token rotation (each refresh
 *   issues a new refresh token; the old one keeps working for a grace period, as at
 *   Intuit), unknown or revoked refresh tokens → 400 `invalid_grant`; bodies shaped
 *   like intuit-oauth's recorded samples;
 * - `GET /v3/company/{realmId}/reports/{ProfitAndLoss|BalanceSheet}` in Intuit's JSON
 *   report shape with one column per month (`summarize_column_by=Month`), for any
 *   date range, with figures from a deterministic generator per realm and month;
 * - switchable faults per realm: latency, 401, 429 (Retry-After and the Fault 3001
 *   body), 5xx; request counts and the most requests in flight, per realm.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { QboColData, QboReport, QboRow } from './report-parser.ts';

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
}

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
  const tokenStats: TokenStats = { requests: 0, refreshed: 0, invalidGrant: 0, invalidClient: 0 };
  const issuedRefreshTokens: string[] = [];
  const sockets = new Set<Socket>();

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
    json(res, 200, {
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
      send(200, name === 'ProfitAndLoss' ? profitAndLoss(realmId, start, end, basis, b.adjustments ?? {}) : balanceSheet(realmId, start, end, basis, b.adjustments ?? {}));
    } finally {
      s.inFlight--;
      all.inFlight--;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  api.apiUrl = `http://127.0.0.1:${port}`;
  api.tokenUrl = `http://127.0.0.1:${port}/oauth2/v1/tokens/bearer`;
  return api;
}

// ---------------------------------------------------------------------------
// The deterministic report generator: figures depend only on (realm, month).

/** Calendar months touched by start..end, with each column's clipped dates. */
export function monthColumns(start: string, end: string): Array<{ key: string; start: string; end: string; title: string }> {
  const out: Array<{ key: string; start: string; end: string; title: string }> = [];
  let y = Number(start.slice(0, 4));
  let m = Number(start.slice(5, 7));
  for (;;) {
    const first = `${y}-${String(m).padStart(2, '0')}-01`;
    if (first > end) break;
    const last = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
    const colStart = first < start ? start : first;
    const colEnd = last > end ? end : last;
    out.push({ key: first.slice(0, 7), start: colStart, end: colEnd, title: `${MONTHS[m - 1]} ${y}` });
    m++;
    if (m > 12) {
      m = 1;
      y++;
    }
  }
  return out;
}
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A seeded number in [0, 1) for (realm, month, what). */
function unit(realmId: string, month: string, what: string): number {
  return crypto.createHash('sha256').update(`${realmId}|${month}|${what}`).digest().readUInt32BE(0) / 2 ** 32;
}
function cents(realmId: string, month: string, what: string, low: number, high: number): number {
  return Math.round((low + unit(realmId, month, what) * (high - low)) * 100);
}
const money = (c: number): string => {
  const sign = c < 0 ? '-' : '';
  const a = Math.abs(c);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
};

/** One month's ledger lines, in cents. */
export function monthLedger(realmId: string, month: string, adjustments: Record<string, number> = {}) {
  const scale = 0.5 + unit(realmId, 'scale', 'size') * 4;
  const quiet = unit(realmId, month, 'quiet') < 0.04; // now and then a month with no activity
  const c = (what: string, low: number, high: number) => (quiet ? 0 : cents(realmId, month, what, low * scale, high * scale));
  const productSales = c('product', 20_000, 60_000) + (adjustments[month] ?? 0);
  const consulting = c('consulting', 5_000, 25_000);
  const training = c('training', 0, 4_000);
  const materials = c('materials', 6_000, 18_000);
  const advertising = c('advertising', 500, 4_000);
  const rent = c('rent', 3_000, 3_000);
  const wages = c('wages', 8_000, 14_000);
  const payrollTaxes = Math.round(wages * 0.0765);
  const depreciation = c('depreciation', 400, 400);
  const amortization = c('amortization', 150, 150);
  const interestIncome = c('interest', 0, 300);
  const interestExpense = c('interestExp', 100, 600);
  return { quiet, productSales, consulting, training, materials, advertising, rent, wages, payrollTaxes, depreciation, amortization, interestIncome, interestExpense };
}

type Cell = (month: string) => number | null;

function profitAndLoss(realmId: string, start: string, end: string, basis: string, adjustments: Record<string, number>): QboReport {
  const cols = monthColumns(start, end);
  const L = memo((month: string) => monthLedger(realmId, month, adjustments));
  // With several months Intuit adds a last Total column; the parser must skip it.
  const cells = (f: Cell): QboColData[] => {
    const months = cols.map((k) => cell(f(k.key), L(k.key).quiet));
    if (cols.length < 2) return months;
    const total = cols.reduce((sum, k) => sum + (L(k.key).quiet ? 0 : (f(k.key) ?? 0)), 0);
    return [...months, cell(total, false)];
  };
  const line = (name: string, id: string, f: Cell): QboRow => ({ ColData: [{ value: name, id }, ...cells(f)], type: 'Data' });
  const summary = (name: string, f: Cell) => ({ ColData: [{ value: name }, ...cells(f)] });
  const header = (name: string, id?: string) => ({ ColData: [{ value: name, ...(id ? { id } : {}) }, ...cols.map(() => ({ value: '' })), ...(cols.length > 1 ? [{ value: '' }] : [])] });
  const income = (m: string) => L(m).productSales + L(m).consulting + L(m).training;
  const cogs = (m: string) => L(m).materials;
  const payroll = (m: string) => L(m).wages + L(m).payrollTaxes;
  const expenses = (m: string) => L(m).advertising + L(m).rent + payroll(m) + L(m).depreciation + L(m).amortization;
  const noi = (m: string) => income(m) - cogs(m) - expenses(m);
  const netOther = (m: string) => L(m).interestIncome - L(m).interestExpense;
  return {
    Header: reportHeader('ProfitAndLoss', start, end, basis),
    Columns: columns(cols, true),
    Rows: {
      Row: [
        {
          Header: header('Income'),
          Rows: {
            Row: [
              line('Sales of Product Income', '4', (m) => L(m).productSales),
              {
                Header: header('Services', '1'),
                Rows: { Row: [line('Consulting', '43', (m) => L(m).consulting), line('Training', '44', (m) => L(m).training)] },
                Summary: summary('Total Services', (m) => L(m).consulting + L(m).training),
                type: 'Section',
              },
            ],
          },
          Summary: summary('Total Income', income),
          type: 'Section',
          group: 'Income',
        },
        { Header: header('Cost of Goods Sold'), Rows: { Row: [line('Cost of Goods Sold', '5', cogs)] }, Summary: summary('Total Cost of Goods Sold', cogs), type: 'Section', group: 'COGS' },
        { Summary: summary('Gross Profit', (m) => income(m) - cogs(m)), type: 'Section', group: 'GrossProfit' },
        {
          Header: header('Expenses'),
          Rows: {
            Row: [
              line('Advertising', '11', (m) => L(m).advertising),
              line('Rent or Lease', '17', (m) => L(m).rent),
              {
                Header: header('Payroll Expenses', '20'),
                Rows: { Row: [line('Wages', '21', (m) => L(m).wages), line('Taxes', '22', (m) => L(m).payrollTaxes)] },
                Summary: summary('Total Payroll Expenses', payroll),
                type: 'Section',
              },
              line('Depreciation Expense', '30', (m) => L(m).depreciation),
              line('Amortization Expense', '31', (m) => L(m).amortization),
            ],
          },
          Summary: summary('Total Expenses', expenses),
          type: 'Section',
          group: 'Expenses',
        },
        { Summary: summary('Net Operating Income', noi), type: 'Section', group: 'NetOperatingIncome' },
        { Header: header('Other Income'), Rows: { Row: [line('Interest Earned', '29', (m) => L(m).interestIncome)] }, Summary: summary('Total Other Income', (m) => L(m).interestIncome), type: 'Section', group: 'OtherIncome' },
        { Header: header('Other Expenses'), Rows: { Row: [line('Interest Expense', '32', (m) => L(m).interestExpense)] }, Summary: summary('Total Other Expenses', (m) => L(m).interestExpense), type: 'Section', group: 'OtherExpenses' },
        { Summary: summary('Net Other Income', netOther), type: 'Section', group: 'NetOtherIncome' },
        { Summary: summary('Net Income', (m) => noi(m) + netOther(m)), type: 'Section', group: 'NetIncome' },
      ],
    },
  };
}

function balanceSheet(realmId: string, start: string, end: string, basis: string, adjustments: Record<string, number>): QboReport {
  const cols = monthColumns(start, end);
  // Balances at each month's end: an opening position plus the months' results so far this generator knows of.
  const position = memo((m: string) => {
    const base = monthLedger(realmId, 'opening', {});
    const l = monthLedger(realmId, m, adjustments);
    const checking = 2 * base.productSales + (l.productSales - l.materials) * 0.5;
    const savings = base.consulting * 3;
    const ar = l.consulting + l.training;
    const equipment = base.wages * 4;
    const ap = l.materials;
    const loan = base.rent * 10;
    const assets = Math.round(checking) + savings + ar + equipment;
    const liabilities = ap + loan;
    const retained = assets - liabilities - base.advertising - (l.productSales - l.materials - l.rent);
    return { checking: Math.round(checking), savings, ar, equipment, ap, loan, assets, liabilities, capital: base.advertising, retained, netIncome: l.productSales - l.materials - l.rent };
  });
  const line = (name: string, id: string, f: Cell): QboRow => ({ ColData: [{ value: name, id }, ...cols.map((k) => cell(f(k.key), false))], type: 'Data' });
  const summary = (name: string, f: Cell) => ({ ColData: [{ value: name }, ...cols.map((k) => cell(f(k.key), false))] });
  const header = (name: string) => ({ ColData: [{ value: name }, ...cols.map(() => ({ value: '' }))] });
  const P = position;
  return {
    Header: reportHeader('BalanceSheet', start, end, basis),
    Columns: columns(cols, false),
    Rows: {
      Row: [
        {
          Header: header('ASSETS'),
          Rows: {
            Row: [
              {
                Header: header('Current Assets'),
                Rows: {
                  Row: [
                    { Header: header('Bank Accounts'), Rows: { Row: [line('Checking', '35', (m) => P(m).checking), line('Savings', '36', (m) => P(m).savings)] }, Summary: summary('Total Bank Accounts', (m) => P(m).checking + P(m).savings), type: 'Section', group: 'BankAccounts' },
                    { Header: header('Accounts Receivable'), Rows: { Row: [line('Accounts Receivable (A/R)', '84', (m) => P(m).ar)] }, Summary: summary('Total Accounts Receivable', (m) => P(m).ar), type: 'Section', group: 'AR' },
                  ],
                },
                Summary: summary('Total Current Assets', (m) => P(m).checking + P(m).savings + P(m).ar),
                type: 'Section',
                group: 'CurrentAssets',
              },
              { Header: header('Fixed Assets'), Rows: { Row: [line('Equipment', '37', (m) => P(m).equipment)] }, Summary: summary('Total Fixed Assets', (m) => P(m).equipment), type: 'Section', group: 'FixedAssets' },
            ],
          },
          Summary: summary('TOTAL ASSETS', (m) => P(m).assets),
          type: 'Section',
          group: 'TotalAssets',
        },
        {
          Header: header('LIABILITIES AND EQUITY'),
          Rows: {
            Row: [
              {
                Header: header('Liabilities'),
                Rows: {
                  Row: [
                    {
                      Header: header('Current Liabilities'),
                      Rows: { Row: [{ Header: header('Accounts Payable'), Rows: { Row: [line('Accounts Payable (A/P)', '33', (m) => P(m).ap)] }, Summary: summary('Total Accounts Payable', (m) => P(m).ap), type: 'Section', group: 'AP' }] },
                      Summary: summary('Total Current Liabilities', (m) => P(m).ap),
                      type: 'Section',
                      group: 'CurrentLiabilities',
                    },
                    { Header: header('Long-Term Liabilities'), Rows: { Row: [line('Notes Payable', '44', (m) => P(m).loan)] }, Summary: summary('Total Long-Term Liabilities', (m) => P(m).loan), type: 'Section', group: 'LongTermLiabilities' },
                  ],
                },
                Summary: summary('Total Liabilities', (m) => P(m).liabilities),
                type: 'Section',
                group: 'Liabilities',
              },
              {
                Header: header('Equity'),
                Rows: { Row: [line('Opening Balance Equity', '34', (m) => P(m).capital), line('Retained Earnings', '2', (m) => P(m).retained), line('Net Income', '', (m) => P(m).netIncome)] },
                Summary: summary('Total Equity', (m) => P(m).assets - P(m).liabilities),
                type: 'Section',
                group: 'Equity',
              },
            ],
          },
          Summary: summary('TOTAL LIABILITIES AND EQUITY', (m) => P(m).assets),
          type: 'Section',
          group: 'TotalLiabilitiesAndEquity',
        },
      ],
    },
  };
}

/** Caches a one-argument function for the life of one report. */
function memo<T>(f: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = f(key)));
    return v;
  };
}

function cell(c: number | null, quiet: boolean): QboColData {
  // A month with no activity shows empty amounts, as Intuit's reports do.
  return { value: c === null || quiet ? '' : money(c) };
}

function reportHeader(name: string, start: string, end: string, basis: string): QboReport['Header'] {
  return {
    Time: new Date().toISOString(),
    ReportName: name,
    ReportBasis: basis,
    StartPeriod: start,
    EndPeriod: end,
    SummarizeColumnsBy: 'Month',
    Currency: 'USD',
    Option: [{ Name: 'AccountingStandard', Value: 'GAAP' }, { Name: 'NoReportData', Value: 'false' }],
  };
}

function columns(cols: Array<{ key: string; start: string; end: string; title: string }>, withTotal: boolean): QboReport['Columns'] {
  return {
    Column: [
      { ColTitle: '', ColType: 'Account', MetaData: [{ Name: 'ColKey', Value: 'account' }] },
      ...cols.map((k) => ({ ColTitle: k.title, ColType: 'Money', MetaData: [{ Name: 'StartDate', Value: k.start }, { Name: 'EndDate', Value: k.end }, { Name: 'ColKey', Value: k.key }] })),
      ...(withTotal && cols.length > 1 ? [{ ColTitle: 'Total', ColType: 'Money', MetaData: [{ Name: 'ColKey', Value: 'total' }] }] : []),
    ],
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
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
