/**
 * One HTTP GET read whole as text, over a keep-alive connection pool (node:http /
 * node:https Agent), for the Accounting API client (client.ts).
 *
 * Why not `fetch`: per report call, fetch built a Request, Headers, a WHATWG body
 * stream and two composite AbortSignals (`AbortSignal.any`, each registered on the
 * run's signal) before reading ~21 kB of text; at 40k calls a run that was a tenth
 * of the job's CPU (bench/FINDINGS.md, sync-quickbooks). This path keeps what the
 * client needs: one deadline for the whole exchange (connect, headers and the
 * body: a server that stalls mid-body times out too), the caller's AbortSignal,
 * and the status, headers and text.
 *
 * Errors, shaped like fetch's so the client reads them the same way:
 * - the deadline: an Error named `TimeoutError`;
 * - the caller's signal: its `reason`;
 * - the network (refused, reset, closed mid-body): an Error whose `cause` is the
 *   system error (with its `code`).
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  /** Response headers, names in lower case. */
  headers: http.IncomingHttpHeaders;
  /** The body, decoded as UTF-8. */
  text: string;
}

export class HttpGetter {
  readonly #http: http.Agent;
  readonly #https: https.Agent;

  /** `maxSockets`: connections per host at most (the caller's concurrency). Idle pooled sockets do not keep the process alive. */
  constructor(options: { maxSockets: number }) {
    this.#http = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
    this.#https = new https.Agent({ keepAlive: true, maxSockets: options.maxSockets });
  }

  /** GETs `url` and reads the whole answer within `timeoutMs`. */
  get(url: URL, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<HttpAnswer> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const secure = url.protocol === 'https:';
    return new Promise<HttpAnswer>((resolve, reject) => {
      let done = false;
      const finish = (err: unknown, answer?: HttpAnswer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve(answer!);
        else {
          reject(err);
          req.destroy();
        }
      };
      const network = (err: Error) => finish(Object.assign(new Error(`request failed: ${err.message}`), { cause: err }));
      const onAbort = () => finish(signal!.reason);
      const timer = setTimeout(() => finish(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: 'TimeoutError' })), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });

      const req = (secure ? https : http).request(url, { method: 'GET', headers, agent: secure ? this.#https : this.#http }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', network);
        // Closed before its end: the connection dropped mid-body.
        res.on('close', () => {
          if (!res.complete) network(Object.assign(new Error('connection closed before the end of the response'), { code: 'ECONNRESET' }));
        });
      });
      req.on('error', network);
      req.end();
    });
  }
}
