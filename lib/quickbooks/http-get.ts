/**
 * One HTTP GET read whole as text, over undici's keep-alive connection pool, for
 * the Accounting API client (client.ts).
 *
 * Why not `fetch`: per report call, fetch built a Request, Headers, a WHATWG body
 * stream and two composite AbortSignals (`AbortSignal.any`, each registered on the
 * run's signal) before reading ~21 kB of text; at 40k calls a run that was a tenth
 * of the job's CPU (bench/FINDINGS.md, sync-quickbooks). undici's `request` (the
 * engine under Node's fetch, without the WHATWG layers) cost a third of fetch's CPU
 * per call here, node:http about half; it now goes through undici's `dispatch`
 * with a handler of ours (lib/http-exchange.ts), as the SendGrid transport does. This path keeps what the client needs: one
 * deadline for the whole exchange (connect, headers and the body: a server that
 * stalls mid-body times out too), the caller's AbortSignal, and the status,
 * headers and text.
 *
 * Errors, shaped like fetch's so the client reads them the same way:
 * - the deadline: an Error named `TimeoutError`;
 * - the caller's signal: its `reason`;
 * - the network (refused, reset, closed mid-body): an Error whose `cause` is
 *   undici's error (with its `code`), as fetch's "fetch failed" has.
 */
import { Agent } from 'undici';
import { exchange, type Answer, type ExchangeFailure } from '../http-exchange.ts';

/** The status, the headers (names in lower case) and the body as text. */
export type HttpAnswer = Answer;

export class HttpGetter {
  readonly #agent: Agent;

  /** `maxSockets`: connections per origin at most (the caller's concurrency). Idle pooled sockets do not keep the process alive. */
  constructor(options: { maxSockets: number }) {
    this.#agent = new Agent({ connections: options.maxSockets });
  }

  /** GETs `url` (a URL, or its origin and path with the query) and reads the whole answer within `timeoutMs`. */
  async get(url: URL | { origin: string; path: string }, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<HttpAnswer> {
    const path = url instanceof URL ? url.pathname + url.search : url.path;
    try {
      return await exchange(this.#agent, { origin: url.origin, path, method: 'GET', headers }, timeoutMs, signal);
    } catch (err) {
      const failure = err as ExchangeFailure;
      if (failure.reason === 'timeout') throw Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: 'TimeoutError' });
      if (failure.reason === 'aborted') throw signal!.reason;
      throw Object.assign(new Error(`request failed: ${failure.message}`), { cause: failure.cause });
    }
  }
}
