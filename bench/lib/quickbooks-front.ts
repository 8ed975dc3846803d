/**
 * QuickBooks for the bench: the suite's loopback Intuit (lib/stand-ins/quickbooks-server.ts,
 * the real wire formats) behind a small caching front on loopback.
 *
 * Why a front: the loopback generates each report from scratch: ~25 ms of CPU
 * for a 25-month report (~260 ms before its generator was memoised; FINDINGS.md).
 * 20k integrations make 40k calls: ~1000 s of CPU in the bench's own process,
 * more than the job's, so the bench would measure its stand-in, not the job. The front maps every realm to one
 * of a few "profiles" (realms of the loopback), asks the loopback once per
 * (profile, report, query), and replays the answer (bytes as the loopback gave
 * them) after the configured latency. The token endpoint is passed through.
 *
 * It also keeps what the limits check needs, per realm: requests, most in flight
 * at once, and start times (for the most requests in any 60-second window).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';

export interface FrontOptions {
  clientId: string;
  clientSecret: string;
  /** Delay before each report answer, ms. */
  latencyMs: number;
  /** Distinct figure sets. @defaultValue 16 */
  profiles?: number;
}

interface RealmCounters {
  requests: number;
  inFlight: number;
  maxInFlight: number;
  startedAt: number[];
}

export interface RealmLimitsReport {
  realms: number;
  reportRequests: number;
  tokenRequests: number;
  /** The most report requests in flight at once, over all realms. */
  maxInFlight: number;
  /** The most in flight at once for any one realm, and which. */
  maxInFlightPerRealm: number;
  maxInFlightRealm: string | null;
  /** The most requests started within any 60 s for any one realm. */
  maxPerMinutePerRealm: number;
  /** Report requests per realm, the largest. */
  maxRequestsPerRealm: number;
  /** Request count by realm, for the floor: only realms above 2 requests. */
  busyRealms: Record<string, number>;
  /** Answers not 200. */
  errors: number;
  cacheMisses: number;
}

export interface QuickBooksFront {
  apiUrl: string;
  tokenUrl: string;
  loopback: LoopbackQuickBooks;
  /** Fills the cache for these report queries (`start_date=…&end_date=…`), every profile. */
  prewarm(windows: Array<{ startDate: string; endDate: string }>, accountingMethod?: string): Promise<number>;
  /** Forgets the counters (not the cache). */
  reset(): void;
  report(): RealmLimitsReport;
  close(): Promise<void>;
}

export async function startQuickBooksFront(o: FrontOptions): Promise<QuickBooksFront> {
  const loopback = await startLoopbackQuickBooks({ clientId: o.clientId, clientSecret: o.clientSecret, acceptUnknownTokens: true });
  const profiles = o.profiles ?? 16;
  const cache = new Map<string, Promise<{ status: number; body: Buffer; type: string }>>();
  let realms = new Map<string, RealmCounters>();
  let inFlight = 0;
  let maxInFlight = 0;
  let tokenRequests = 0;
  let errors = 0;
  let cacheMisses = 0;

  const profileOf = (realm: string) => `bench-profile-${zlib.crc32(realm) % profiles}`;
  const fetchFromLoopback = (profile: string, name: string, query: string, auth: string) => {
    const key = `${profile}|${name}|${query}`;
    let hit = cache.get(key);
    if (!hit) {
      cacheMisses++;
      hit = (async () => {
        const r = await fetch(`${loopback.apiUrl}/v3/company/${profile}/reports/${name}?${query}`, { headers: { Authorization: auth, Accept: 'application/json' } });
        return { status: r.status, body: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') ?? 'application/json' };
      })();
      cache.set(key, hit);
      // Failures are not kept: the next request asks again.
      hit.then((v) => v.status !== 200 && cache.delete(key), () => cache.delete(key));
    }
    return hit;
  };

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      errors++;
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Fault: { Error: [{ Message: 'bench front error', Detail: String(err), code: '10000' }], type: 'SERVICE' } }));
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname === '/oauth2/v1/tokens/bearer') {
      tokenRequests++;
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type', 'accept']) if (req.headers[h]) headers[h] = String(req.headers[h]);
      const r = await fetch(loopback.tokenUrl, { method: 'POST', headers, body: Buffer.concat(chunks) });
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
      res.end(Buffer.from(await r.arrayBuffer()));
      return;
    }
    const m = /^\/v3\/company\/([^/]+)\/reports\/(ProfitAndLoss|BalanceSheet)$/.exec(url.pathname);
    if (req.method !== 'GET' || !m) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    const realm = decodeURIComponent(m[1]!);
    let c = realms.get(realm);
    if (!c) realms.set(realm, (c = { requests: 0, inFlight: 0, maxInFlight: 0, startedAt: [] }));
    c.requests++;
    c.inFlight++;
    c.maxInFlight = Math.max(c.maxInFlight, c.inFlight);
    c.startedAt.push(Date.now());
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      const [answer] = await Promise.all([
        fetchFromLoopback(profileOf(realm), m[2]!, url.search.slice(1), req.headers.authorization ?? ''),
        o.latencyMs > 0 ? new Promise((r) => setTimeout(r, o.latencyMs)) : Promise.resolve(),
      ]);
      if (answer.status !== 200) errors++;
      res.writeHead(answer.status, { 'content-type': answer.type, 'content-length': answer.body.length, intuit_tid: `bench-${c.requests}` });
      res.end(answer.body);
    } finally {
      c.inFlight--;
      inFlight--;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    apiUrl: `http://127.0.0.1:${port}`,
    tokenUrl: `http://127.0.0.1:${port}/oauth2/v1/tokens/bearer`,
    loopback,
    async prewarm(windows, accountingMethod = 'Accrual') {
      const before = cacheMisses;
      for (let p = 0; p < profiles; p++) {
        for (const w of windows) {
          const query = new URLSearchParams({ start_date: w.startDate, end_date: w.endDate, summarize_column_by: 'Month', accounting_method: accountingMethod, minorversion: '75' }).toString();
          await Promise.all(['ProfitAndLoss', 'BalanceSheet'].map((name) => fetchFromLoopback(`bench-profile-${p}`, name, query, 'Bearer bench-prewarm')));
        }
      }
      const made = cacheMisses - before;
      cacheMisses = 0;
      return made;
    },
    reset() {
      realms = new Map();
      inFlight = 0;
      maxInFlight = 0;
      tokenRequests = 0;
      errors = 0;
      cacheMisses = 0;
    },
    report() {
      let reportRequests = 0;
      let maxPerRealm = 0;
      let maxRealm: string | null = null;
      let maxPerMinute = 0;
      let maxRequests = 0;
      const busyRealms: Record<string, number> = {};
      for (const [realm, c] of realms) {
        reportRequests += c.requests;
        if (c.maxInFlight > maxPerRealm) {
          maxPerRealm = c.maxInFlight;
          maxRealm = realm;
        }
        maxRequests = Math.max(maxRequests, c.requests);
        if (c.requests > 2) busyRealms[realm] = c.requests;
        // Sliding 60 s window over the sorted start times.
        const t = [...c.startedAt].sort((a, b) => a - b);
        let lo = 0;
        for (let hi = 0; hi < t.length; hi++) {
          while (t[hi]! - t[lo]! >= 60_000) lo++;
          maxPerMinute = Math.max(maxPerMinute, hi - lo + 1);
        }
      }
      return {
        realms: realms.size, reportRequests, tokenRequests, maxInFlight, maxInFlightPerRealm: maxPerRealm, maxInFlightRealm: maxRealm,
        maxPerMinutePerRealm: maxPerMinute, maxRequestsPerRealm: maxRequests, busyRealms, errors, cacheMisses,
      };
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await loopback.close();
    },
  };
}
