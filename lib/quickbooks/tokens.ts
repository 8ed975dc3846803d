/**
 * An integration's access token, fresh. Tokens are decrypted with the current key
 * or the previous one; a refresh happens when the access token expires within 5
 * minutes, or once after a 401. The refresh runs under a per-integration row lock
 * (SELECT … FOR UPDATE) in its own transaction, which re-reads the row first: if
 * an overlapping run already refreshed, its tokens are used and Intuit is not
 * called. The new pair (Intuit rotates refresh tokens; the old one dies about a
 * day later) is encrypted with the current key and committed before the new
 * access token is returned, so a crash after the refresh never loses it.
 */
import type { Knex } from 'knex';
import { lockIntegrationTokens, saveTokens } from '../sql/quickbooks.ts';
import { QuickBooksReauthError } from './errors.ts';
import type { TokenEndpoint } from './oauth.ts';
import { decryptToken, encryptToken } from './token-crypto.ts';

/** Refresh when the access token has less than this left. */
export const REFRESH_MARGIN_MS = 5 * 60_000;

export interface TokenKeys {
  current: Buffer;
  previous?: Buffer | undefined;
}

export interface TokenSubject {
  id: string;
  realmId: string;
  /** Encrypted, as read with the candidate. */
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
}

export interface TokenDeps {
  db: Knex;
  endpoint: TokenEndpoint;
  keys: TokenKeys;
  now: Date;
}

/** Decrypts a stored token with the current, then the previous key (TokenDecryptError when neither works). */
export function decrypt(stored: string, keys: TokenKeys): string {
  return decryptToken(stored, [keys.current, keys.previous]);
}

/** True when the access token expires within the refresh margin of `now`. */
export function expiresSoon(expiresAt: Date, now: Date): boolean {
  return expiresAt.getTime() - now.getTime() < REFRESH_MARGIN_MS;
}

/** The access token to use now: the stored one, or a refreshed one (saved first). */
export async function currentAccessToken(deps: TokenDeps, subject: TokenSubject): Promise<string> {
  const access = decrypt(subject.accessToken, deps.keys);
  decrypt(subject.refreshToken, deps.keys); // an undecryptable refresh token fails now, not at the first refresh
  if (!expiresSoon(subject.accessTokenExpiresAt, deps.now)) return access;
  return refreshAccessToken(deps, subject, undefined);
}

/**
 * Refreshes under the row lock and returns the new access token, committed.
 * `rejected` is the access token Intuit just refused (401), if that is why.
 */
export async function refreshAccessToken(deps: TokenDeps, subject: TokenSubject, rejected: string | undefined): Promise<string> {
  return deps.endpoint.exclusive(() => deps.db.transaction(async (trx) => {
    const row = await lockIntegrationTokens(trx, subject.id);
    if (!row) throw new Error(`integration ${subject.id} no longer exists`);
    if (row.needsReauth) throw new QuickBooksReauthError(`QuickBooks connection for realm ${subject.realmId} needs to be re-authorised`);
    const stored = decrypt(row.accessToken, deps.keys);
    // Another run refreshed while we waited for the lock (or since we read the row).
    if (stored !== rejected && !expiresSoon(row.accessTokenExpiresAt, deps.now)) return stored;
    const fresh = await deps.endpoint.refresh(decrypt(row.refreshToken, deps.keys), subject.realmId, deps.now);
    await saveTokens(trx, subject.id, {
      accessToken: encryptToken(fresh.accessToken, deps.keys.current),
      refreshToken: encryptToken(fresh.refreshToken, deps.keys.current),
      accessTokenExpiresAt: fresh.accessTokenExpiresAt,
      refreshTokenExpiresAt: fresh.refreshTokenExpiresAt,
    }, deps.now);
    return fresh.accessToken;
  }));
}
