/**
 * QuickBooks failures in the domain's words. Foreign errors (intuit-oauth's,
 * fetch's, Intuit's Fault bodies) are translated into these at the boundary; their
 * messages never hold a token, a client secret or an Authorization header.
 */
import { ConfigError, PermanentError, TransientError } from '../errors.ts';

/** Fields every QuickBooks error may carry for the logs (serializeError picks them up). */
interface Traced {
  /** Intuit's transaction id (`intuit_tid` response header), for Intuit support. */
  intuitTid?: string;
  status?: number;
  code?: string;
}

/** Intuit rejected the access token (HTTP 401): refresh once and retry. */
export class QuickBooksAuthError extends PermanentError implements Traced {
  override name = 'QuickBooksAuthError';
  intuitTid?: string;
  status = 401;
}

/** The refresh token is revoked or expired (`invalid_grant`): the owner must reconnect. */
export class QuickBooksReauthError extends PermanentError implements Traced {
  override name = 'QuickBooksReauthError';
  intuitTid?: string;
  code = 'invalid_grant';
}

/** Intuit does not know our app credentials (`invalid_client`): a configuration error for the whole run. */
export class QuickBooksClientError extends ConfigError implements Traced {
  override name = 'QuickBooksClientError';
  intuitTid?: string;
  code = 'invalid_client';
}

/** 429, 5xx, timeouts and resets: retried with backoff. */
export class QuickBooksTransientError extends TransientError implements Traced {
  override name = 'QuickBooksTransientError';
  intuitTid?: string;
  status?: number;
  code?: string;
}

/** Any other refusal (4xx, a Fault we cannot retry). */
export class QuickBooksApiError extends PermanentError implements Traced {
  override name = 'QuickBooksApiError';
  intuitTid?: string;
  status?: number;
  code?: string;
}

/** A report we cannot read (shape not as documented). */
export class QuickBooksParseError extends PermanentError {
  override name = 'QuickBooksParseError';
}

/** Attaches trace fields to an error and returns it. */
export function traced<E extends Error & Traced>(err: E, fields: Traced): E {
  if (fields.intuitTid) err.intuitTid = fields.intuitTid;
  if (fields.status !== undefined) err.status = fields.status;
  if (fields.code !== undefined) err.code = fields.code;
  return err;
}
