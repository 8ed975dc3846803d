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
 * library has no retries and no timeout of its own: the timeout is set on its
 * client here, retries live in the email service. Errors are translated into
 * TransientError (429, 5xx, network, timeout; with the wait the API asked for) and
 * PermanentError (any other 4xx), with secrets never in their messages.
 */
import { Client } from '@sendgrid/client';
import { classes } from '@sendgrid/helpers';
import { PermanentError, TransientError } from '../errors.ts';
import { redact } from '../telemetry/redact.ts';
import type { Transport, TransportMessage } from './transport.ts';

const { EmailAddress } = classes;

export interface SendGridOptions {
  apiKey: string;
  /** Base URL, e.g. https://api.sendgrid.com (tests: loopback). */
  baseUrl: string;
  /** Timeout of one request, in ms. */
  timeoutMs: number;
}

/** Network error codes (axios, Node) that are worth another attempt. */
const NETWORK_CODES = new Set(['ECONNABORTED', 'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'ECANCELED']);

export class SendGridTransport implements Transport {
  readonly name = 'sendgrid';
  private readonly client: Client;

  constructor(options: SendGridOptions) {
    this.client = new Client();
    // setApiKey also resets baseUrl to SendGrid's, so the base URL comes after it.
    this.client.setApiKey(options.apiKey);
    this.client.setDefaultRequest('baseUrl', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    // axios's own timeout, and its body transform off: the body is already JSON text
    // (axios would parse a JSON string again to check it). Axios options the request
    // type of @sendgrid/helpers does not list.
    this.client.setDefaultRequest({ timeout: options.timeoutMs, transformRequest: [(body: unknown) => body] } as unknown as Parameters<Client['setDefaultRequest']>[0]);
  }

  async send(m: TransportMessage): Promise<{ messageId: string | null }> {
    try {
      // The body as JSON text (Content-Type application/json is the client's default).
      const [response] = await this.client.request({ method: 'POST', url: '/v3/mail/send', body: mailSendBody(m) as unknown as object });
      const id = headerValue(response.headers, 'x-message-id');
      return { messageId: id ?? null };
    } catch (err) {
      throw translate(err);
    }
  }

  /**
   * The scopes of the API key (`GET /v3/scopes`, `{"scopes": [...]}`): what
   * `exitosx-cron doctor` checks for `mail.send`. Sends nothing. Errors as `send`'s
   * (a rejected key is a PermanentError "SendGrid answered 401: …").
   */
  async scopes(): Promise<string[]> {
    try {
      const [response] = await this.client.request({ method: 'GET', url: '/v3/scopes' });
      const body = response.body as { scopes?: unknown } | string;
      const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { scopes?: unknown };
      return Array.isArray(parsed?.scopes) ? parsed.scopes.filter((s): s is string => typeof s === 'string') : [];
    } catch (err) {
      throw translate(err);
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

/** Translates an error of @sendgrid/client (a ResponseError, or axios's) into the suite's words. */
export function translate(err: unknown): Error {
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
  const message = redact(`SendGrid unreachable: ${code ? `${code} ` : ''}${e.message ?? String(err)}`);
  if (code === undefined || NETWORK_CODES.has(code)) return new TransientError(message, { cause: err });
  return new PermanentError(message, { cause: err });
}
