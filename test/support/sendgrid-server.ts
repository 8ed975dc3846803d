/**
 * A loopback SendGrid: `POST /v3/mail/send` and `GET /v3/scopes` on 127.0.0.1 (a
 * free port), speaking the real wire format. `/v3/scopes` answers the key's scopes
 * as SendGrid does (`{"scopes": [...]}`; 401 with an `errors` body for a bad key).
 * Every request must carry `Authorization: Bearer <key>`, and a mail/send request a
 * body valid against SendGrid's official JSON schema
 * (test/fixtures/sendgrid/mail-send.schema.json, with the known `custom_args` bug
 * overridden, see SOURCES.md there); it answers 202 with `X-Message-Id`, or the
 * failures a test queues (429 with Retry-After, 500, 400...), or a hanging
 * provider (`hang`: accepts the request and never answers; `trickle`: the status
 * line and headers of a 202 at once, then its body one byte a second; `cut`: the
 * 202's headers and half its body, then the socket closed). Requests and their
 * verdicts are kept for assertions; a request received in full under a hanging
 * fault counts as a delivery (`delivered()`): SendGrid may well have sent it.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import { ROOT } from './run.ts';

const addFormats = addFormatsPlugin as unknown as (ajv: Ajv2020) => void;

/** The official schema, with the one documented override (top-level custom_args is an object). */
function loadValidator() {
  const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/sendgrid/mail-send.schema.json'), 'utf8')) as {
    properties: Record<string, unknown>;
  };
  schema.properties.custom_args = { type: 'object', additionalProperties: { type: 'string' } };
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv.compile(schema);
}
let validator: ReturnType<typeof loadValidator> | undefined;

export interface ReceivedMail {
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** The answer given. */
  status: number;
  /** Schema errors, when the body was invalid (answered 400). */
  errors?: string[];
  messageId?: string;
  /** The hanging fault it met, if any (it may have been delivered all the same). */
  fault?: HangingFault;
}

/** How a hanging SendGrid treats a valid request it has received in full. */
export type HangingFault = 'hang' | 'trickle' | 'cut';

export interface QueuedFailure {
  status: number;
  /** Response headers, e.g. `{ 'Retry-After': '1' }`. */
  headers?: Record<string, string>;
  body?: unknown;
}

export interface SendGridServer {
  url: string;
  apiKey: string;
  /** Every request received, in order. */
  requests: ReceivedMail[];
  /** The emails accepted (202): one per personalization, as SendGrid delivers them (`emailsOf`). */
  accepted(): ReceivedMail[];
  /** The next requests get these answers, in order, before normal service resumes. */
  failNext(...failures: QueuedFailure[]): void;
  /** Every request gets this answer until `recover()`. */
  failAlways(failure: QueuedFailure): void;
  recover(): void;
  /** The scopes `GET /v3/scopes` lists for the key (default: a full-access key's, `mail.send` among them). */
  setScopes(scopes: string[]): void;
  /** `GET /v3/scopes` requests received. */
  scopeRequests: number;
  /** Every valid request from now on meets this fault, until `recover()`. */
  hangWith(fault: HangingFault): void;
  /** Resolves when the next mail/send request has been received in full (before it is answered). */
  nextRequest(): Promise<void>;
  /** Emails SendGrid may have delivered (one per personalization): accepted (202), or received in full under a hanging fault. */
  delivered(): ReceivedMail[];
  /** Delays every answer by this long (to observe concurrency and timeouts). */
  delay(ms: number): void;
  /** The most requests that were being answered at the same time. */
  maxConcurrent(): number;
  close(): Promise<void>;
}

/** A few of a full-access key's scopes (the real list has a few hundred). */
const DEFAULT_SCOPES = ['mail.send', 'mail.batch.read', 'alerts.read', 'stats.read', 'suppression.read', 'templates.read', 'user.profile.read'];

/** Starts the server; the test closes it. */
export async function startSendGridServer(options: { apiKey?: string } = {}): Promise<SendGridServer> {
  validator ??= loadValidator();
  const validate = validator;
  const apiKey = options.apiKey ?? 'SG.loopback-test-key.0123456789abcdef';
  const requests: ReceivedMail[] = [];
  const queue: QueuedFailure[] = [];
  let always: QueuedFailure | undefined;
  let seq = 0;
  let delayMs = 0;
  let hanging: HangingFault | undefined;
  let current = 0;
  let most = 0;
  let scopes = [...DEFAULT_SCOPES];
  let scopeRequests = 0;
  const requestWaiters: Array<() => void> = [];

  const reply = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { ...(text ? { 'Content-Type': 'application/json' } : {}), ...headers });
    res.end(text);
  };

  const timers = new Set<NodeJS.Timeout>();
  /** A 202 that never comes, comes a byte a second, or stops half-way. */
  const misbehave = (res: http.ServerResponse, fault: HangingFault, messageId: string) => {
    if (fault === 'hang') return;
    // SendGrid's 202 has an empty body; this one carries a small JSON body, so that
    // there is a body to trickle or to cut.
    const body = Buffer.from(JSON.stringify({ message: 'accepted', id: messageId, note: 'loopback answer sent slowly' }));
    res.writeHead(202, { 'Content-Type': 'application/json', 'Content-Length': String(body.length), 'X-Message-Id': messageId });
    res.flushHeaders();
    if (fault === 'cut') {
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
      return;
    }
    let i = 0;
    const tick = setInterval(() => {
      if (res.destroyed || i >= body.length) {
        clearInterval(tick);
        timers.delete(tick);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(body.subarray(i, ++i));
    }, 1000);
    timers.add(tick);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    current++;
    most = Math.max(most, current);
    res.on('close', () => current--);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => (delayMs ? setTimeout(answer, delayMs) : answer()));
    const answer = () => {
      if (req.method === 'GET' && req.url === '/v3/scopes') {
        scopeRequests++;
        if (req.headers.authorization !== `Bearer ${apiKey}`) return reply(res, 401, { errors: [{ field: null, message: 'authorization required' }] });
        return reply(res, 200, { scopes });
      }
      if (req.method !== 'POST' || req.url !== '/v3/mail/send') return reply(res, 404, { errors: [{ message: 'not found', field: null }] });
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        return reply(res, 400, { errors: [{ message: 'Bad Request: body is not JSON', field: null }] });
      }
      const record: ReceivedMail = { headers: req.headers, body, status: 0 };
      requests.push(record);
      for (const wake of requestWaiters.splice(0)) wake();
      if (req.headers.authorization !== `Bearer ${apiKey}`) {
        record.status = 401;
        return reply(res, 401, { errors: [{ message: 'The provided authorization grant is invalid, expired, or revoked', field: null }] });
      }
      if (!validate(body)) {
        record.status = 400;
        record.errors = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
        return reply(res, 400, { errors: record.errors.map((m) => ({ message: m, field: null })) });
      }
      if (hanging) {
        record.fault = hanging;
        record.status = 202;
        record.messageId = `loopback-${++seq}`;
        return misbehave(res, hanging, record.messageId);
      }
      const failure = queue.shift() ?? always;
      if (failure) {
        record.status = failure.status;
        return reply(res, failure.status, failure.body ?? { errors: [{ message: `loopback failure ${failure.status}`, field: null }] }, failure.headers);
      }
      record.status = 202;
      record.messageId = `loopback-${++seq}`;
      return reply(res, 202, undefined, { 'X-Message-Id': record.messageId });
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    accepted: () => requests.filter((r) => r.status === 202 && !r.fault).flatMap(emailsOf),
    delivered: () => requests.filter((r) => r.status === 202).flatMap(emailsOf),
    hangWith: (fault) => (hanging = fault),
    nextRequest: () => new Promise<void>((resolve) => requestWaiters.push(resolve)),
    failNext: (...failures) => queue.push(...failures),
    failAlways: (failure) => (always = failure),
    recover: () => {
      always = undefined;
      queue.length = 0;
      scopes = [...DEFAULT_SCOPES];
      delayMs = 0;
      hanging = undefined;
      most = 0;
    },
    setScopes: (list) => (scopes = [...list]),
    get scopeRequests() {
      return scopeRequests;
    },
    delay: (ms) => (delayMs = ms),
    maxConcurrent: () => most,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const t of timers) clearInterval(t);
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

interface Personalization {
  to: unknown[];
  subject?: string;
  headers?: Record<string, string>;
  custom_args?: Record<string, string>;
  substitutions?: Record<string, string>;
}

/**
 * What SendGrid delivers of one request: an email per personalization, shown as
 * the body of a request that sent it alone. Its subject, headers and custom_args
 * override the request's; its substitutions are filled into the content and the
 * subject, tag by tag (written here apart from lib/email/substitution.ts, so that
 * a test compares the suite's filling with this one). A request with one
 * personalization and no substitutions is itself.
 */
export function emailsOf(r: ReceivedMail): ReceivedMail[] {
  const { personalizations, ...message } = r.body as { personalizations: Personalization[]; subject?: string; content?: Array<{ type: string; value: string }>; headers?: Record<string, string>; custom_args?: Record<string, string> };
  if (personalizations.length === 1 && !personalizations[0]!.substitutions) return [r];
  return personalizations.map(({ subject, headers, custom_args, substitutions = {}, ...envelope }) => {
    const fillIn = (text: string) => Object.entries(substitutions).reduce((out, [tag, value]) => out.split(tag).join(value), text);
    const body: Record<string, unknown> = { ...message, personalizations: [envelope] };
    const subjectLine = subject ?? message.subject;
    if (subjectLine !== undefined) body.subject = fillIn(subjectLine);
    if (message.content) body.content = message.content.map((c) => ({ ...c, value: fillIn(c.value) }));
    if (headers || message.headers) body.headers = { ...message.headers, ...headers };
    if (custom_args || message.custom_args) body.custom_args = { ...message.custom_args, ...custom_args };
    return { ...r, body };
  });
}

/** One loopback SendGrid for the enclosing suite (started before, closed after), handed to `set`. */
export function useSendGridServer(set: (server: SendGridServer) => void): void {
  let server: SendGridServer | undefined;
  before(async () => {
    server = await startSendGridServer();
    set(server);
  });
  after(async () => {
    await server?.close();
  });
}
