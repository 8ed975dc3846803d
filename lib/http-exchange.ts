/**
 * One HTTP exchange through an undici dispatcher, read whole under one deadline:
 * the SendGrid transport and the QuickBooks report client both use it.
 *
 * Through `dispatch` with a handler of our own rather than `request`: `request`
 * wraps every answer in a body stream, needs an AbortSignal per call, and tells
 * that a body was written only for an async-iterable body. The handler gets
 * undici's `onRequestSent`, the answer's chunks directly, and aborts through
 * undici's controller: half the CPU per call (85 µs against 170 µs on loopback;
 * bench/FINDINGS.md, round three).
 *
 * The deadline covers the whole exchange (connecting, the body out, the answer's
 * headers and its body), so a server that trickles or never ends its body cannot
 * stretch a call. A failure says how far the exchange got (`ExchangeFailure`):
 * each caller decides what that means for it.
 */
import type { Dispatcher } from 'undici';

export type AnswerHeaders = Record<string, string | string[] | undefined>;

export interface Answer {
  status: number;
  /** Names in lower case. */
  headers: AnswerHeaders;
  /** The body, decoded as UTF-8. */
  text: string;
}

/** An exchange that did not end with a whole answer, and how far it got. */
export class ExchangeFailure extends Error {
  override name = 'ExchangeFailure';
  /** The deadline passed, the caller's signal aborted it, or the network failed (refused, reset, closed). */
  readonly reason: 'timeout' | 'aborted' | 'network';
  /** The request (its body included) was handed to the socket in full. */
  readonly sent: boolean;
  /** The status line and headers, when they had arrived before the failure. */
  readonly response: { status: number; headers: AnswerHeaders } | undefined;

  constructor(reason: ExchangeFailure['reason'], sent: boolean, response: ExchangeFailure['response'], options: { cause: unknown }) {
    super(reason === 'network' ? ((options.cause as Error)?.message ?? String(options.cause)) : reason, options);
    this.reason = reason;
    this.sent = sent;
    this.response = response;
  }
}

export interface ExchangeRequest {
  origin?: string;
  path: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: Buffer;
}

/** Sends `request` and reads the whole answer within `timeoutMs`; rejects with an ExchangeFailure. */
export function exchange(dispatcher: Dispatcher, request: ExchangeRequest, timeoutMs: number, signal?: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let controller: { abort(reason: Error): void } | undefined;
    let stopped: 'timeout' | 'aborted' | undefined;
    let sent = request.body === undefined;
    let response: { status: number; headers: AnswerHeaders } | undefined;
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const fail = (cause: unknown) => finish(() => reject(new ExchangeFailure(stopped ?? 'network', sent, response, { cause })));
    // The deadline and the caller's signal end the call at once, whether or not it has started.
    const stop = (why: 'timeout' | 'aborted') => {
      stopped ??= why;
      const cause = new Error(why);
      if (controller) controller.abort(cause); // undici answers with onResponseError
      else fail(cause);
    };
    const timer = setTimeout(() => stop('timeout'), timeoutMs);
    const onAbort = () => stop('aborted');
    if (signal?.aborted) return stop('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    const headers = request.body ? { ...request.headers, 'content-length': String(request.body.length) } : request.headers;
    try {
      dispatcher.dispatch(
        { origin: request.origin, path: request.path, method: request.method, headers, body: request.body },
        {
          onRequestStart: (c: { abort(reason: Error): void }) => {
            controller = c;
            if (stopped) c.abort(new Error(stopped));
          },
          onRequestSent: () => {
            sent = true;
          },
          onResponseStart: (_c: unknown, status: number, h: AnswerHeaders) => {
            response = { status, headers: h ?? {} };
          },
          onResponseData: (_c: unknown, chunk: Buffer) => {
            chunks.push(chunk);
          },
          // Most answers come in one chunk: decoded in place, not copied first.
          onResponseEnd: () => finish(() => resolve({ status: response!.status, headers: response!.headers, text: (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8') })),
          onResponseError: (_c: unknown, err: Error) => fail(err),
        },
      );
    } catch (err) {
      fail(err);
    }
  });
}
