/**
 * SendGrid key valid and allowed to send: `GET /v3/scopes` with the key lists the
 * key's scopes, and a key that can send has `mail.send`. Nothing is sent.
 */
import type { Config } from '../config.ts';
import { TransientError, messageOf } from '../errors.ts';
import { SendGridTransport } from '../email/sendgrid.ts';
import { fail, notConfigured, ok, where, type CheckResult } from './check.ts';

const CHECK = 'sendgrid';

export async function checkSendGrid(config: Config): Promise<CheckResult> {
  const e = config.email;
  if (!e.sendgridApiKey) return notConfigured(CHECK, `SENDGRID_API_KEY is not set: emails are written to EMAIL_OUTBOX_DIR (${e.outboxDir}), not sent`);
  const transport = new SendGridTransport({ apiKey: e.sendgridApiKey, baseUrl: e.sendgridApiUrl, timeoutMs: e.timeoutMs });
  let scopes: string[];
  try {
    scopes = await transport.scopes();
  } catch (err) {
    if (err instanceof TransientError) return fail(CHECK, `${messageOf(err)} (at ${where(e.sendgridApiUrl)}; check SENDGRID_API_URL and the NetworkPolicy's sendgrid egress)`);
    return fail(CHECK, `SENDGRID_API_KEY rejected: ${messageOf(err)} (create a key with the Mail Send permission)`);
  }
  if (!scopes.includes('mail.send')) return fail(CHECK, `SENDGRID_API_KEY is valid but may not send: its ${scopes.length} scopes lack mail.send (give the key the Mail Send permission)`);
  return ok(CHECK, `key accepted at ${where(e.sendgridApiUrl)}, allowed to send (mail.send)`);
}
