/**
 * Property-based tests of QuickBooks token encryption at rest (`enc:v1:`,
 * AES-256-GCM): round trips of any unicode text, detection of any single-bit
 * change, key rotation, and errors that never carry the token.
 */
import crypto from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { decryptToken, encryptToken, TokenDecryptError } from '../../lib/quickbooks/token-crypto.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);

const keyArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
/** Tokens: any well-formed unicode text (emoji, CJK, NUL, combining marks), and token-like ASCII. */
const plaintext = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom('\u0000', 'é', 'e\u0301', '𝄞', '🔑', '中', ':', '.', 'A', '-'), maxLength: 50 }),
  fc.string({ maxLength: 1200 }).map((s) => `eyJ${Buffer.from(s).toString('base64url')}`),
);

const parts = (stored: string) => stored.slice('enc:v1:'.length).split(':').map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer];
const join = ([iv, ct, tag]: [Buffer, Buffer, Buffer]) => `enc:v1:${iv.toString('base64url')}:${ct.toString('base64url')}:${tag.toString('base64url')}`;

/** Calls decryptToken; returns the plaintext or the TokenDecryptError (anything else fails the property). */
function tryDecrypt(stored: string, keys: Array<Buffer | undefined>): string | TokenDecryptError {
  try {
    return decryptToken(stored, keys);
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(TokenDecryptError);
    return err as TokenDecryptError;
  }
}

describe('token encryption (properties)', function () {
  this.timeout(30_000);

  it('round-trips any unicode text, in the enc:v1 format, with a fresh IV each time', () => {
    fc.assert(
      fc.property(plaintext, keyArb, (text, key) => {
        const a = encryptToken(text, key);
        const b = encryptToken(text, key);
        expect(a).to.match(/^enc:v1:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]*:[A-Za-z0-9_-]{22}$/);
        expect(a).not.to.equal(b);
        expect(decryptToken(a, [key])).to.equal(text);
        if (text.length >= 4) expect(a).not.to.contain(text);
      }),
      { numRuns: RUNS },
    );
  });

  it('detects any single-bit change of the IV, the ciphertext or the tag', () => {
    const tamper = fc.record({ text: plaintext, key: keyArb, part: fc.constantFrom(0, 1, 2), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) });
    fc.assert(
      fc.property(tamper, ({ text, key, part, at, bit }) => {
        const p = parts(encryptToken(text, key));
        if (p[part].length === 0) return; // an empty token has no ciphertext byte to flip
        const i = at % p[part].length;
        p[part][i] = p[part][i]! ^ (1 << bit);
        const r = tryDecrypt(join(p), [key]);
        expect(r, `bit ${bit} of byte ${i} of part ${part} flipped`).to.be.instanceOf(TokenDecryptError);
      }),
      { numRuns: RUNS },
    );
  });

  it('changing any character of the stored text either is detected or still gives the same token', () => {
    // base64url's last character may carry unused bits: a change there can decode to the same bytes.
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:=. ';
    fc.assert(
      fc.property(plaintext, keyArb, fc.nat(), fc.nat(ALPHABET.length - 1), (text, key, at, c) => {
        const stored = encryptToken(text, key);
        const i = at % stored.length;
        const changed = stored.slice(0, i) + ALPHABET[c] + stored.slice(i + 1);
        const r = tryDecrypt(changed, [key]);
        if (typeof r === 'string') expect(r).to.equal(text);
      }),
      { numRuns: RUNS },
    );
  });

  it('decrypts with the previous key during a rotation, and writes with the current one', () => {
    fc.assert(
      fc.property(plaintext, keyArb, keyArb, (text, current, previous) => {
        fc.pre(!current.equals(previous));
        const old = encryptToken(text, previous);
        expect(decryptToken(old, [current, previous])).to.equal(text);
        expect(decryptToken(old, [undefined, previous])).to.equal(text);
        const fresh = encryptToken(text, current);
        expect(decryptToken(fresh, [current, undefined])).to.equal(text);
        expect(tryDecrypt(fresh, [previous])).to.be.instanceOf(TokenDecryptError);
      }),
      { numRuns: RUNS },
    );
  });

  it('fails with a wrong key with TokenDecryptError whose message, stack and fields never hold the token or a key', () => {
    fc.assert(
      // Marked tokens, so that a short token like "all" is not found inside the fixed message's words.
      fc.property(plaintext.map((t) => `qbo-token:${t}`), keyArb, fc.array(keyArb, { minLength: 1, maxLength: 2 }), (text, key, wrong) => {
        fc.pre(!wrong.some((k) => k.equals(key)));
        const stored = encryptToken(text, key);
        const err = tryDecrypt(stored, wrong);
        expect(err).to.be.instanceOf(TokenDecryptError);
        const all = `${(err as Error).message}\n${(err as Error).stack}\n${JSON.stringify(err)}\n${String((err as Error).cause ?? '')}`;
        expect(all).not.to.contain(text);
        for (const k of [key, ...wrong]) for (const enc of ['base64', 'base64url', 'hex'] as const) expect(all).not.to.contain(k.toString(enc));
        expect(all).not.to.contain(stored);
      }),
      { numRuns: RUNS },
    );
  });

  it('throws nothing but TokenDecryptError on any stored text and any keys (wrong length included)', () => {
    const stored = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 120 }),
      fc.tuple(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 20 })).map(([a, b, c]) => join([Buffer.from(a), Buffer.from(b), Buffer.from(c)])),
      fc.constantFrom('enc:v1:', 'enc:v1:::', 'enc:v2:a:b:c', 'enc:v1:a:b:c:d'),
    );
    const keys = fc.array(fc.option(fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), { nil: undefined }), { maxLength: 3 });
    fc.assert(
      fc.property(stored, keys, (s, k) => {
        const r = tryDecrypt(s, k);
        if (typeof r === 'string') {
          // Only a genuine GCM token decrypts: then one of the keys must really be 32 bytes.
          expect(k.some((key) => key?.length === 32)).to.equal(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('does not decrypt with a key that is a prefix, a bit flip, or a byte shift of the right one', () => {
    fc.assert(
      fc.property(plaintext, keyArb, fc.nat(255), (text, key, n) => {
        const stored = encryptToken(text, key);
        const flipped = Buffer.from(key);
        flipped[n % 32] = flipped[n % 32]! ^ (1 << (n % 8));
        const shifted = Buffer.concat([key.subarray(1), key.subarray(0, 1)]);
        for (const k of [key.subarray(0, 16), flipped, shifted.equals(key) ? crypto.randomBytes(32) : shifted]) {
          expect(tryDecrypt(stored, [k])).to.be.instanceOf(TokenDecryptError);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
