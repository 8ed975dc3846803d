/**
 * QuickBooks tokens at rest: `enc:v1:<iv>:<ciphertext>:<tag>`, each part base64url
 * without padding; AES-256-GCM with a 12-byte random IV and the 16-byte tag, under
 * TOKEN_ENCRYPTION_KEY (INTERFACES.md, "Token encryption"). The product application
 * writes the same format. During a key rotation TOKEN_ENCRYPTION_KEY_PREVIOUS is
 * still accepted for decryption; writes always use the current key.
 */
import crypto from 'node:crypto';

const PREFIX = 'enc:v1:';

/** A token that cannot be decrypted: wrong key, tampered, or not in our format. The message never holds the token. */
export class TokenDecryptError extends Error {
  override name = 'TokenDecryptError';
}

/** Encrypts `plaintext` with `key` (32 bytes). */
export function encryptToken(plaintext: string, key: Buffer): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${PREFIX}${iv.toString('base64url')}:${ciphertext.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}`;
}

/** Decrypts a stored token with the current key, then the previous one. */
export function decryptToken(stored: string, keys: Array<Buffer | undefined>): string {
  if (!stored.startsWith(PREFIX)) throw new TokenDecryptError('token is not in the enc:v1 format');
  const parts = stored.slice(PREFIX.length).split(':');
  if (parts.length !== 3) throw new TokenDecryptError('token is not in the enc:v1 format');
  const [iv, ciphertext, tag] = parts.map((p) => Buffer.from(p!, 'base64url')) as [Buffer, Buffer, Buffer];
  if (iv.length !== 12 || tag.length !== 16) throw new TokenDecryptError('token is not in the enc:v1 format');
  for (const key of keys) {
    if (!key) continue;
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      // wrong key or tampered: try the next key
    }
  }
  throw new TokenDecryptError('token cannot be decrypted with TOKEN_ENCRYPTION_KEY or TOKEN_ENCRYPTION_KEY_PREVIOUS (wrong key or tampered)');
}
