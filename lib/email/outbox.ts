/**
 * The outbox transport: with no SENDGRID_API_KEY, each email is written to
 * EMAIL_OUTBOX_DIR as an RFC 5322 `.eml` (multipart/alternative, opens in any mail
 * client) and its `.html` part (opens in a browser). File names come from the
 * idempotency key, so a resend overwrites rather than duplicates.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PermanentError } from '../errors.ts';
import type { Transport, TransportMessage } from './transport.ts';

/** A file-system-safe name for an idempotency key. */
export function outboxFileName(idempotencyKey: string): string {
  return idempotencyKey.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 180);
}

export class OutboxTransport implements Transport {
  readonly name = 'outbox';
  readonly dir: string;
  private readonly now: Date;

  constructor(dir: string, now: Date) {
    this.dir = path.resolve(dir);
    this.now = now;
  }

  async send(message: TransportMessage): Promise<{ messageId: string }> {
    const base = outboxFileName(message.idempotencyKey);
    const messageId = `<${crypto.randomUUID()}@outbox.exitosx>`;
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await fs.writeFile(path.join(this.dir, `${base}.html`), message.html);
      await fs.writeFile(path.join(this.dir, `${base}.eml`), toEml(message, messageId, this.now));
    } catch (err) {
      throw new PermanentError(`cannot write the outbox ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
    return { messageId: `outbox:${base}` };
  }
}

/** Encodes a header value with non-ASCII characters as an RFC 2047 encoded-word. */
function headerText(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

function base64Lines(text: string): string {
  return (Buffer.from(text, 'utf8').toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

function toEml(m: TransportMessage, messageId: string, now: Date): string {
  const boundary = `=_exitosx_${crypto.randomBytes(8).toString('hex')}`;
  const headers = [
    `From: ${headerText(m.from)}`,
    `To: ${m.to}`,
    `Subject: ${headerText(m.subject)}`,
    `Date: ${now.toUTCString()}`,
    `Message-ID: ${messageId}`,
    'MIME-Version: 1.0',
    ...Object.entries(m.headers).map(([k, v]) => `${k}: ${headerText(v)}`),
    `X-Exitosx-Categories: ${m.categories.join(', ')}`,
    ...Object.entries(m.customArgs).map(([k, v]) => `X-Exitosx-${k.replace(/_/g, '-')}: ${headerText(v)}`),
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
  ];
  const part = (type: string, body: string) => [`--${boundary}`, `Content-Type: ${type}; charset=UTF-8`, 'Content-Transfer-Encoding: base64', '', base64Lines(body)].join('\r\n');
  return [...headers, '', part('text/plain', m.text), part('text/html', m.html), `--${boundary}--`, ''].join('\r\n');
}
