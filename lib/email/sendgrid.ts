/**
 * The SendGrid transport, over SendGrid's official client (@sendgrid/client, the
 * HTTP layer of @sendgrid/mail). It builds the mail/send body itself and hands it
 * over serialized once: @sendgrid/mail's `send` deep-clones every message
 * (`JSON.parse(JSON.stringify(…))`, for the whole HTML) and axios serializes it
 * again, which with the rest of that path was a quarter of the drift job's CPU
 * and most of its garbage at 100k companies (bench/FINDINGS.md). The body is
 * checked against SendGrid's official JSON schema in the tests. Its own Client
 * instance (never the module's singleton), so that two services in one process
 * (tests with different URLs and keys) do not share settings. SendGrid's
 * library has no retries and no timeout of its own: each request gets a deadline
 * here (an AbortSignal for the whole request, body included: axios's own `timeout`
 * only bounds the wait for the headers and then the socket's idle time, so an
 * answer trickling in a byte a second would outlive it), retries live in the email
 * service. Errors are translated into TransientError (429, 5xx, a connection that
 * never carried the whole request; with the wait the API asked for),
 * OutcomeUnknownError (the request was sent, then a timeout or a lost connection:
 * it may have been delivered, so it is never retried) and PermanentError (any
 * other 4xx), with secrets never in their messages.
 */
import { Client } from '@sendgrid/client';
import { classes } from '@sendgrid/helpers';
import { PermanentError, TransientError } from '../errors.ts';
import { redact } from '../telemetry/redact.ts';
import { OutcomeUnknownError, type Transport, type TransportMessage } from './transport.ts';

const { EmailAddress } = classes;
type ClientRequest = Parameters<Client['request']>[0];

export interface SendGridOptions {
  apiKey: string;
  /** Base URL, e.g. https://api.sendgrid.com (tests: loopback). */
  baseUrl: string;
  /** Timeout of one request, in ms: from the start of the request to the last byte of its answer. */
  timeoutMs: number;
}

/**
 * SendGrid's client with a per-request AbortSignal: its `createRequest` passes on
 * only a few fields of a request to axios, so the signal is added here.
 */
class DeadlineClient extends Client {
  override createRequest(data: ClientRequest & { signal?: AbortSignal }): ClientRequest {
    const options = super.createRequest(data);
    return data.signal ? ({ ...options, signal: data.signal } as ClientRequest) : options;
  }
}

/** Network error codes (axios, Node) that are worth another attempt. */
const NETWORK_CODES = new Set(['ECONNABORTED', 'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'ECANCELED']);

export class SendGridTransport implements Transport {
  readonly name = 'sendgrid';
  private readonly client: Client;
  private readonly timeoutMs: number;

  constructor(options: SendGridOptions) {
    this.timeoutMs = options.timeoutMs;
    this.client = new DeadlineClient();
    // setApiKey also resets baseUrl to SendGrid's, so the base URL comes after it.
    this.client.setApiKey(options.apiKey);
    this.client.setDefaultRequest('baseUrl', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    // axios's own timeout (it bounds the connection and the wait for the headers; the
    // deadline below bounds the rest), its body transform off: the body is already
    // JSON text (axios would parse a JSON string again to check it), and no redirects
    // (mail/send never redirects): axios then uses Node's own request, whose
    // `writableFinished` tells whether the request went out in full. Axios options
    // the request type of @sendgrid/helpers does not list.
    this.client.setDefaultRequest({ timeout: options.timeoutMs, maxRedirects: 0, transformRequest: [(body: unknown) => body] } as unknown as Parameters<Client['setDefaultRequest']>[0]);
  }

  async send(m: TransportMessage): Promise<{ messageId: string | null }> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    try {
      // The body as JSON text (Content-Type application/json is the client's default).
      const [response] = await this.client.request({ method: 'POST', url: '/v3/mail/send', body: mailSendBody(m) as unknown as object, signal: deadline } as ClientRequest);
      const id = headerValue(response.headers, 'x-message-id');
      return { messageId: id ?? null };
    } catch (err) {
      // The status line said 2xx and then the connection closed mid-body: SendGrid's
      // verdict was given, the message is accepted (its 202 has no body worth having).
      // A body cut by the deadline comes back without the status: outcome unknown.
      const answered = (err as { response?: { status?: unknown; headers?: unknown } } | null)?.response;
      if (typeof answered?.status === 'number' && answered.status >= 200 && answered.status < 300) return { messageId: headerValue(answered.headers, 'x-message-id') ?? null };
      throw translate(err, deadline.aborted ? this.timeoutMs : undefined);
    }
  }
}

/** The v3 mail/send request body of one message, as JSON text. */
export function mailSendBody(m: TransportMessage): string {
  return JSON.stringify({
    personalizations: [{ to: [{ email: m.to }] }],
    from: parseAddress(m.from),
    subject: m.subject,
    // text/plain first: the API requires that order.
    content: [
      { type: 'text/plain', value: m.text },
      { type: 'text/html', value: m.html },
    ],
    categories: m.categories,
    custom_args: m.customArgs,
    headers: m.headers,
  });
}

/** `Name <address>` or a bare address, as SendGrid's `{ email, name }` (parsed as @sendgrid/mail does). */
export function parseAddress(from: string): { email: string; name?: string } {
  return new EmailAddress(from).toJSON() as { email: string; name?: string };
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (!headers || typeof headers !== 'object') return undefined;
  const h = headers as Record<string, unknown> & { get?: (n: string) => unknown };
  const v = typeof h.get === 'function' ? h.get(name) : (h[name] ?? h[name.toLowerCase()]);
  if (Array.isArray(v)) return v[0] !== undefined ? String(v[0]) : undefined;
  return v === undefined || v === null ? undefined : String(v);
}

/**
 * How long the API asked us to wait: `Retry-After` (seconds or an HTTP date), else
 * `X-RateLimit-Reset` (epoch seconds). Undefined when it did not say.
 */
export function retryAfterMs(headers: unknown, nowMs = Date.now()): number | undefined {
  const retryAfter = headerValue(headers, 'retry-after');
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return Math.max(0, at - nowMs);
  }
  const reset = Number(headerValue(headers, 'x-ratelimit-reset'));
  if (Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - nowMs);
  return undefined;
}

/** The first error message SendGrid gave in its body, if any. */
function apiMessage(body: unknown): string | undefined {
  const errors = (body as { errors?: Array<{ message?: unknown; field?: unknown }> } | undefined)?.errors;
  const first = Array.isArray(errors) ? errors[0] : undefined;
  if (!first || typeof first.message !== 'string') return undefined;
  return typeof first.field === 'string' && first.field ? `${first.message} (${first.field})` : first.message;
}

/**
 * True when the request went out in full before it failed: axios keeps the Node
 * request on its errors, and `writableFinished` says its last byte was handed to
 * the socket. A connection refused, or cut before the body was written, never did.
 */
function requestSent(err: unknown): boolean {
  const req = (err as { request?: { writableFinished?: unknown } } | null)?.request;
  return req?.writableFinished === true;
}

/**
 * Translates an error of @sendgrid/client (a ResponseError, or axios's) into the
 * suite's words. `timedOutAfterMs`: the request's deadline passed (its value, ms).
 */
export function translate(err: unknown, timedOutAfterMs?: number): Error {
  const e = err as { code?: unknown; message?: string; response?: { status?: unknown; headers?: unknown; body?: unknown; data?: unknown } };
  // A ResponseError of @sendgrid/client carries the status as `code`; an axios error
  // whose body was lost after the status line carries it on `response`.
  const status = typeof e.code === 'number' ? e.code : typeof e.response?.status === 'number' ? e.response.status : undefined;
  if (status !== undefined) {
    const detail = apiMessage(e.response?.body ?? e.response?.data) ?? e.message ?? '';
    const message = redact(`SendGrid answered ${status}${detail ? `: ${detail}` : ''}`);
    if (status === 429 || status >= 500) {
      const t = new TransientError(message, { cause: err });
      const wait = retryAfterMs(e.response?.headers);
      if (wait !== undefined) t.retryAfterMs = wait;
      return t;
    }
    return new PermanentError(message, { cause: err });
  }
  const code = typeof e.code === 'string' ? e.code : undefined;
  const reason = timedOutAfterMs !== undefined ? `no answer within ${timedOutAfterMs} ms` : `${code ? `${code} ` : ''}${e.message ?? String(err)}`;
  // Sent, and then no answer: SendGrid may have accepted it.
  if (requestSent(err) && (timedOutAfterMs !== undefined || code === undefined || NETWORK_CODES.has(code))) {
    return new OutcomeUnknownError(redact(`SendGrid did not answer (${reason}) after the request was sent; it may have been delivered`), { cause: err });
  }
  const message = redact(`SendGrid unreachable: ${reason}`);
  if (timedOutAfterMs !== undefined) return new TransientError(message, { cause: err });
  if (code === undefined || NETWORK_CODES.has(code)) return new TransientError(message, { cause: err });
  return new PermanentError(message, { cause: err });
}
