/**
 * What the email service hands a transport, and what a transport answers. Two
 * transports: SendGrid (SENDGRID_API_KEY set) and the outbox folder (unset).
 */

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

export interface Transport {
  /** `sendgrid` or `outbox`, for logs. */
  readonly name: string;
  /**
   * Sends one message; returns the provider's message id. Throws TransientError
   * (retry may help: 429, 5xx, network, timeout) or PermanentError (it will not).
   */
  send(message: TransportMessage): Promise<{ messageId: string | null }>;
  /** Releases what the transport holds open (connections); called once, when the service closes. */
  close?(): Promise<void>;
}
