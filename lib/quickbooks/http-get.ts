/**
 * One HTTP GET read whole as text, over undici's keep-alive connection pool, for
 * the Accounting API client (client.ts).
 *
 * Why not `fetch`: per report call, fetch built a Request, Headers, a WHATWG body
 * stream and two composite AbortSignals (`AbortSignal.any`, each registered on the
 * run's signal) before reading ~21 kB of text; at 40k calls a run that was a tenth
 * of the job's CPU (bench/FINDINGS.md, sync-quickbooks). undici's `request` (the
 * engine under Node's fetch, without the WHATWG layers) cost a third of fetch's CPU
 * per call here, node:http about half. This path keeps what the client needs: one
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

export interface HttpAnswer {
  status: number;
  /** Response headers, names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  /** The body, decoded as UTF-8. */
  text: string;
}

export class HttpGetter {
  readonly #agent: Agent;

  /** `maxSockets`: connections per origin at most (the caller's concurrency). Idle pooled sockets do not keep the process alive. */
  constructor(options: { maxSockets: number }) {
    this.#agent = new Agent({ connections: options.maxSockets });
  }

  /**
   * GETs `url` (a URL, or its origin and path with the query) and reads the whole answer within `timeoutMs`.
   *
   * Through `dispatch` with a handler of our own, not `request`: `request` wraps
   * each answer in a body stream and needs an AbortSignal per call; the handler
   * collects the ~21 kB of chunks and aborts through undici's controller. The
   * SendGrid transport measured half the CPU per call this way (bench/FINDINGS.md,
   * round three).
   */
  get(url: URL | { origin: string; path: string }, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<HttpAnswer> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<HttpAnswer>((resolve, reject) => {
      let controller: { abort(reason: Error): void } | undefined;
      let stopped: Error | undefined;
      let settled = false;
      let status = 0;
      let answerHeaders: Record<string, string | string[] | undefined> = {};
      const chunks: Buffer[] = [];
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      // The deadline and the caller's signal end the call at once, whether or not it has started.
      const stop = (reason: Error, error: unknown) => {
        stopped ??= reason;
        finish(() => reject(error)); // first: aborting calls onResponseError at once
        controller?.abort(reason);
      };
      const timer = setTimeout(() => stop(new Error('deadline'), Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: 'TimeoutError' })), timeoutMs);
      const onAbort = () => stop(new Error('aborted'), signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const path = url instanceof URL ? url.pathname + url.search : url.path;
      try {
        this.#agent.dispatch(
          { origin: url.origin, path, method: 'GET', headers },
          {
            onRequestStart: (c: { abort(reason: Error): void }) => {
              controller = c;
              if (stopped) c.abort(stopped);
            },
            onResponseStart: (_c: unknown, statusCode: number, h: Record<string, string | string[] | undefined>) => {
              status = statusCode;
              answerHeaders = h ?? {};
            },
            onResponseData: (_c: unknown, chunk: Buffer) => {
              chunks.push(chunk);
            },
            onResponseEnd: () => finish(() => resolve({ status, headers: answerHeaders, text: Buffer.concat(chunks).toString('utf8') })),
            onResponseError: (_c: unknown, err: Error) => finish(() => reject(Object.assign(new Error(`request failed: ${err.message}`), { cause: err }))),
          },
        );
      } catch (err) {
        finish(() => reject(Object.assign(new Error(`request failed: ${(err as Error).message}`), { cause: err })));
      }
    });
  }
}
