/**
 * What the email service hands a transport, and what a transport answers. Two
 * transports: SendGrid (SENDGRID_API_KEY set) and the outbox folder (unset).
 */
import { PermanentError } from '../errors.ts';
import type { SubstitutionTemplate } from './substitution.ts';

/**
 * The request reached the provider in full, but no answer came back (a timeout, or
 * the connection lost before the answer was read): it may have been delivered.
 * Never retried (SendGrid has no idempotency key: a retry could deliver it twice);
 * the email service records it FAILED "outcome unknown", never resent automatically,
 * as a PENDING row left by a killed run is.
 */
export class OutcomeUnknownError extends PermanentError {
  override name = 'OutcomeUnknownError';
}

/** One message, fully rendered, with the headers and tags every email carries. */
export interface TransportMessage {
  to: string;
  from: string;
  subject: string;
  html: string;
  text: string;
  /** SendGrid categories (one per email type), for the provider's statistics. */
  categories: string[];
  /** Echoed back by the provider's event webhook: the idempotency key, the type, the log row. */
  customArgs: Record<string, string>;
  /** Extra headers (List-Unsubscribe, List-Unsubscribe-Post). */
  headers: Record<string, string>;
  /** Name for files (outbox), derived from the idempotency key. */
  idempotencyKey: string;
}

/**
 * Emails of one kind sent in one request (SendGrid's personalizations): the
 * kind's template with tags, filled by the provider with each member's values.
 */
export interface TransportGroup {
  from: string;
  categories: string[];
  template: SubstitutionTemplate;
  members: Array<Pick<TransportMessage, 'to' | 'subject' | 'customArgs' | 'headers' | 'idempotencyKey'> & { values: Record<string, string> }>;
}

export interface Transport {
  /** `sendgrid` or `outbox`, for logs. */
  readonly name: string;
  /**
   * Sends one message; returns the provider's message id. Throws TransientError
   * (retry may help: 429, 5xx, a connection that never carried the request),
   * OutcomeUnknownError (sent, no answer: never retried) or PermanentError (it will not).
   */
  send(message: TransportMessage): Promise<{ messageId: string | null }>;
  /**
   * Sends a group in one request, all or none: one verdict, one message id. Errors
   * as `send`'s. Absent when the transport has no such request (the outbox).
   */
  sendGroup?(group: TransportGroup): Promise<{ messageId: string | null }>;
  /** Releases what the transport holds open (connections); called once, when the service closes. */
  close?(): Promise<void>;
}
