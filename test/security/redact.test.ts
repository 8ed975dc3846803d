/**
 * Property-based tests of the redactor every log line, stored error, run summary
 * and span goes through: a registered secret, or any value under a secret-named key
 * (any *token, *secret, password, api key, authorization), never survives, at any
 * depth, inside any text, JSON-escaped or in an error's cause chain.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { clearSecrets, redact, redactValue, registerSecrets, serializeError } from '../../lib/telemetry/redact.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);

/** Secrets as they come: API keys, base64 keys, passwords with punctuation. */
const secret = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-.'), minLength: 12, maxLength: 48 }),
  fc.string({ unit: fc.constantFrom(...'abcXYZ019!$%^&*()[]{};,<>?|~` '), minLength: 10, maxLength: 24 }).map((s) => `pw${s}9`),
);
const filler = fc.string({ maxLength: 30 });
const SECRET_KEYS = ['token', 'id_token', 'access_token', 'refreshToken', 'x_refresh_token', 'client_secret', 'clientSecret', 'password', 'apiKey', 'api-key', 'Authorization'];

/** A JSON-like value with `leaf` somewhere inside, at depth up to 14, under innocent keys. */
const nested = (leaf: unknown) =>
  fc.array(fc.tuple(fc.constantFrom('data', 'error', 'details', 'Fault', 'Error', 'x'), fc.boolean()), { maxLength: 14 }).map((path) =>
    path.reduceRight<unknown>((inner, [key, asArray]) => (asArray ? [inner] : { [key]: inner }), leaf),
  );

describe('redaction (properties)', function () {
  this.timeout(30_000);
  afterEach(() => clearSecrets());

  it('masks a registered secret anywhere in any text, however often it appears', () => {
    fc.assert(
      fc.property(secret, filler, filler, fc.integer({ min: 1, max: 3 }), (s, a, b, n) => {
        clearSecrets();
        registerSecrets(s);
        const text = Array.from({ length: n }, () => `${a}${s}${b}`).join(' ');
        expect(redact(text)).not.to.contain(s);
        expect(redact(JSON.stringify({ message: text }))).not.to.contain(JSON.stringify(s).slice(1, -1));
      }),
      { numRuns: RUNS },
    );
  });

  it('masks a registered secret at any depth of a JSON-like value', () => {
    fc.assert(
      fc.property(secret.chain((s) => fc.tuple(fc.constant(s), nested(`before ${s} after`))), ([s, value]) => {
        clearSecrets();
        registerSecrets(s);
        expect(JSON.stringify(redactValue(value))).not.to.contain(s);
      }),
      { numRuns: RUNS },
    );
  });

  it('masks any value under a secret-named key (any *token, *secret, password, api key, authorization), unregistered, at any depth', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SECRET_KEYS), fc.string({ unit: fc.constantFrom(...'qrstuvwxyz0123456789'), minLength: 16, maxLength: 30 }), (key, value) =>
        fc.assert(
          fc.property(nested({ [key]: value, status: 400 }), (obj) => {
            const out = JSON.stringify(redactValue(obj));
            expect(out, `${key} leaked`).not.to.contain(value);
          }),
          { numRuns: 5 },
        ),
      ),
      { numRuns: RUNS },
    );
  });

  it('masks secret-looking fragments never registered: URL passwords, bearer tokens, key=value, enc:v1 tokens', () => {
    const word = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), minLength: 8, maxLength: 20 });
    fc.assert(
      // The password is marked (upper-case P), so that it is never a piece of the user name or the filler.
      fc.property(word, word.map((w) => `P${w}`), filler, (user, pass, around) => {
        fc.pre(!around.includes(pass));
        clearSecrets();
        for (const text of [
          `${around} postgres://${user}:${pass}@db.internal:5432/x ${around}`,
          `Authorization: Bearer ${pass}`,
          `refresh_token=${pass}&grant_type=refresh_token`,
          `{"access_token":"${pass}","token_type":"bearer"}`,
          `stored enc:v1:${user}:${pass}:${user}`,
        ]) expect(redact(text), text).not.to.contain(pass);
      }),
      { numRuns: RUNS },
    );
  });

  it('serialises an error without the secret in its message, stack, fields or cause chain', () => {
    fc.assert(
      fc.property(secret, fc.integer({ min: 0, max: 3 }), (s, depth) => {
        clearSecrets();
        registerSecrets(s);
        let err: Error = Object.assign(new Error(`refresh failed for ${s}`), { detail: { body: `echo ${s}` }, code: 'E_SECRET' });
        for (let i = 0; i < depth; i++) err = new Error(`wrapped ${i} (${s})`, { cause: err });
        expect(JSON.stringify(serializeError(err))).not.to.contain(s);
      }),
      { numRuns: RUNS },
    );
  });
});
