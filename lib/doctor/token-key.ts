/**
 * Token encryption key able to decrypt a stored token: the refresh token of the
 * most recently updated connected integration, decrypted with TOKEN_ENCRYPTION_KEY
 * (then TOKEN_ENCRYPTION_KEY_PREVIOUS, during a rotation). The plaintext is
 * dropped at once: only whether it decrypted, and with which key, is reported.
 */
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import { messageOf } from '../errors.ts';
import { decryptToken, TokenDecryptError } from '../quickbooks/token-crypto.ts';
import { latestStoredToken } from '../sql/quickbooks.ts';
import { fail, notConfigured, ok, skipped, type CheckResult } from './check.ts';

const CHECK = 'token-key';

/** The part of the check that needs no database: is a key set where one is needed. Undefined: go on with the database. */
export function tokenKeyPrecheck(config: Config): CheckResult | undefined {
  if (config.tokenEncryptionKey) return undefined;
  if (config.quickbooks.clientId) return fail(CHECK, 'TOKEN_ENCRYPTION_KEY is not set but QUICKBOOKS_CLIENT_ID is: sync-quickbooks needs it to read the stored tokens');
  return notConfigured(CHECK, 'TOKEN_ENCRYPTION_KEY is not set: sync-quickbooks cannot run');
}

/** The check itself, on a readable database (`db` may be a read-only transaction). */
export async function checkTokenKey(config: Config, db: Knex): Promise<CheckResult> {
  const early = tokenKeyPrecheck(config);
  if (early) return early;
  let stored: Awaited<ReturnType<typeof latestStoredToken>>;
  try {
    stored = await latestStoredToken(db);
  } catch (err) {
    return skipped(CHECK, `quickbooks_integrations cannot be read (${messageOf(err)})`);
  }
  if (!stored) return ok(CHECK, 'TOKEN_ENCRYPTION_KEY is well-formed; no connected QuickBooks integration yet, so no stored token to decrypt');
  const what = `the stored refresh token of integration ${stored.id}`;
  if (canDecrypt(stored.refreshToken, config.tokenEncryptionKey)) return ok(CHECK, `TOKEN_ENCRYPTION_KEY decrypts ${what}`);
  if (canDecrypt(stored.refreshToken, config.tokenEncryptionKeyPrevious)) {
    return ok(CHECK, `only TOKEN_ENCRYPTION_KEY_PREVIOUS decrypts ${what}: a key rotation is under way (each refresh re-encrypts with TOKEN_ENCRYPTION_KEY)`);
  }
  try {
    decryptToken(stored.refreshToken, [config.tokenEncryptionKey, config.tokenEncryptionKeyPrevious]);
  } catch (err) {
    if (err instanceof TokenDecryptError) return fail(CHECK, `${messageOf(err).replace(/^token /, `${what} `)}: is TOKEN_ENCRYPTION_KEY the product application's key?`);
    throw err;
  }
  return fail(CHECK, `${what} cannot be decrypted`);
}

/** True when `key` decrypts `stored`; the plaintext never leaves this function. */
function canDecrypt(stored: string, key: Buffer | undefined): boolean {
  if (!key) return false;
  try {
    decryptToken(stored, [key]);
    return true;
  } catch {
    return false;
  }
}
