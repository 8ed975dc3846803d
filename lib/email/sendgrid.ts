/**
 * The SendGrid transport: `POST /v3/mail/send` through one keep-alive connection
 * pool (undici's `Pool`), with the v3 body built and serialized once here. It
 * replaced @sendgrid/client, whose axios path (a config merged per request,
 * interceptors, transforms, follow-redirects, Node's http agent) cost more CPU
 * per email than rendering the email (bench/FINDINGS.md, round two). The body is
 * checked against SendGrid's official JSON schema in the tests.
 *
 * SendGrid's API has no retries and no timeout of its own: the timeout is here and
 * covers the whole request (connecting, sending the body, the answer's headers
 * and its body); retries live in the email service. Errors are translated into
 * TransientError (429, 5xx, network, timeout; with the wait the API asked for) and
 * PermanentError (any other 4xx), with secrets never in their messages.
 */
import { classes } from '@sendgrid/helpers';
import { Pool } from 'undici';
import { exchange, type Answer, type ExchangeFailure } from '../http-exchange.ts';
import { PermanentError, TransientError } from '../errors.ts';
import { redact } from '../telemetry/redact.ts';
import { OutcomeUnknownError, type Transport, type TransportGroup, type TransportMessage } from './transport.ts';

const { EmailAddress } = classes;

export interface SendGridOptions {
  apiKey: string;
  /** Base URL, e.g. https://api.sendgrid.com (tests: loopback). */
  baseUrl: string;
  /** Timeout of one request, whole (connect, body out, answer in), in ms. */
  timeoutMs: number;
  /** Keep-alive connections kept open (the email service's concurrency). @defaultValue 8 */
  connections?: number;
}

/** Network error codes (Node, undici) that are worth another attempt. */
const NETWORK_CODES = new Set([
  'ECONNABORTED', 'ECONNRESET', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECANCELED', 'EHOSTUNREACH', 'ENETUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'UND_ERR_ABORTED',
]);

/** A response error as translate() reads it: the status and what came with it. */
export interface SendGridResponseError {
  code: number;
  message: string;
  response: { headers: Record<string, string | string[] | undefined>; body: unknown };
}

export class SendGridTransport implements Transport {
  readonly name = 'sendgrid';
  private readonly pool: Pool;
  private readonly path: string;
  private readonly scopesPath: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(options: SendGridOptions) {
    const base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    this.path = `${base.pathname}v3/mail/send`;
    this.scopesPath = `${base.pathname}v3/scopes`;
    this.timeoutMs = options.timeoutMs;
    // Idle sockets are unref'd by undici: an open pool never keeps the process alive.
    this.pool = new Pool(base.origin, { connections: options.connections ?? 8, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs, connectTimeout: options.timeoutMs });
    // The same headers @sendgrid/client sent; built once.
    this.headers = { authorization: `Bearer ${options.apiKey}`, 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'exitosx-cron (sendgrid v3)' };
  }

  send(m: TransportMessage): Promise<{ messageId: string | null }> {
    return this.mailSend(mailSendBody(m));
  }

  /** A group in one request: a personalization per member, the template once (lib/email/substitution.ts). */
  sendGroup(group: TransportGroup): Promise<{ messageId: string | null }> {
    return this.mailSend(mailSendGroupBody(group));
  }

  /** POST /v3/mail/send with this body; the provider's id of what it accepted. */
  private async mailSend(body: string): Promise<{ messageId: string | null }> {
    const { headers } = await this.exchange('POST', this.path, body);
    return { messageId: headerValue(headers, 'x-message-id') ?? null };
  }

  /**
   * One request under one timer for the whole exchange: the answer's body is read
   * under it too, so a server that sends its headers and then trickles (or never
   * ends) the body cannot stretch the call past the timeout.
   *
   * What a failure means depends on how far the exchange got:
   * - a 2xx status line arrived: SendGrid gave its verdict, the message is accepted,
   *   even if its (empty for mail/send) body is then cut or too slow;
   * - the request body was handed to the socket in full, then no answer (timeout,
   *   connection lost): it may have been delivered, OutcomeUnknownError, never retried;
   * - otherwise (refused, reset before the body went out): TransientError, retried.
   *
   * The exchange itself (lib/http-exchange.ts) says how far it got.
   */
  private async exchange(method: 'GET' | 'POST', path: string, body?: string): Promise<{ headers: Record<string, string | string[] | undefined>; text: string }> {
    let answer: Answer;
    try {
      answer = await exchange(this.pool, { path, method, headers: this.headers, body: body === undefined ? undefined : Buffer.from(body) }, this.timeoutMs);
    } catch (err) {
      const { reason, sent, response, cause } = err as ExchangeFailure;
      if (response) {
        if (response.status >= 200 && response.status < 300) return { headers: response.headers, text: '' };
        // The status line arrived but its body did not: the status decides.
        throw translate(responseError(response.status, response.headers, ''));
      }
      throw translate(reason === 'timeout' ? new SendGridTimeout(this.timeoutMs) : cause, sent && method === 'POST');
    }
    if (answer.status >= 200 && answer.status < 300) return answer;
    throw translate(responseError(answer.status, answer.headers, answer.text));
  }

  /**
   * The scopes of the API key (`GET /v3/scopes`, `{"scopes": [...]}`): what
   * `exitosx-cron doctor` checks for `mail.send`. Sends nothing. Errors as `send`'s
   * (a rejected key is a PermanentError "SendGrid answered 401: …").
   */
  async scopes(): Promise<string[]> {
    const { text } = await this.exchange('GET', this.scopesPath);
    const parsed = JSON.parse(text) as { scopes?: unknown };
    return Array.isArray(parsed?.scopes) ? parsed.scopes.filter((s): s is string => typeof s === 'string') : [];
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** The whole request took longer than its timeout. */
class SendGridTimeout extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`no complete answer within ${ms} ms`);
    this.name = 'SendGridTimeout';
  }
}

/** A non-2xx answer, in the shape translate() reads (SendGrid's error body parsed when it is JSON). */
function responseError(status: number, headers: Record<string, string | string[] | undefined>, text: string): SendGridResponseError {
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's HTML page): kept as text, not shown.
  }
  return { code: status, message: `HTTP ${status}`, response: { headers, body } };
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

/**
 * The v3 mail/send request body of a group, as JSON text: each member's recipient,
 * subject, headers, custom_args and substitutions in its personalization; the
 * content, with the tags SendGrid fills from them, once.
 */
export function mailSendGroupBody(g: TransportGroup): string {
  return JSON.stringify({
    personalizations: g.members.map((m) => ({ to: [{ email: m.to }], subject: m.subject, headers: m.headers, substitutions: m.values, custom_args: m.customArgs })),
    from: parseAddress(g.from),
    content: [
      { type: 'text/plain', value: g.template.text },
      { type: 'text/html', value: g.template.html },
    ],
    categories: g.categories,
  });
}

const parsedAddresses = new Map<string, { email: string; name?: string }>();

/** `Name <address>` or a bare address, as SendGrid's `{ email, name }` (parsed as @sendgrid/mail does; the sender is one string per run, parsed once). */
export function parseAddress(from: string): { email: string; name?: string } {
  let parsed = parsedAddresses.get(from);
  if (!parsed) {
    parsed = new EmailAddress(from).toJSON() as { email: string; name?: string };
    if (parsedAddresses.size < 16) parsedAddresses.set(from, parsed);
  }
  return parsed;
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
 * Translates an answer that is not 2xx (numeric `code`), or a network error or
 * timeout (string `code`), into the suite's words. `sent`: the request went out in
 * full before the failure, so SendGrid may have accepted it.
 */
export function translate(err: unknown, sent = false): Error {
  const e = err as { code?: unknown; message?: string; response?: { headers?: unknown; body?: unknown } };
  if (typeof e.code === 'number') {
    const status = e.code;
    const detail = apiMessage(e.response?.body) ?? e.message ?? '';
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
  const reason = `${code ? `${code} ` : ''}${e.message ?? String(err)}`;
  // Sent, and then no answer: SendGrid may have accepted it.
  if (sent && (code === undefined || NETWORK_CODES.has(code))) {
    return new OutcomeUnknownError(redact(`SendGrid did not answer (${reason}) after the request was sent; it may have been delivered`), { cause: err });
  }
  const message = redact(`SendGrid unreachable: ${reason}`);
  if (code === undefined || NETWORK_CODES.has(code)) return new TransientError(message, { cause: err });
  return new PermanentError(message, { cause: err });
}
