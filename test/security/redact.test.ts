/**
 * Property-based tests of the redactor every log line, stored error, run summary
 * and span goes through: a registered secret, or any value under a secret-named key
 * (any *token, *secret, password, api key, authorization), never survives, at any
 * depth, inside any text, JSON-escaped or in an error's cause chain; and, the other
 * way round, everything else survives unchanged (the expected value is written
 * here from the input, never by calling the redactor).
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

/**
 * Pieces of log lines that hold no secret and nothing that looks like one (no
 * `key=value` of a secret-named key, no bearer token, no password in a URL), some
 * close to it: "tokens", "secretary", a URL with a query, JSON.
 */
const INNOCENT = [
  'sync', 'failed', 'for', 'realm', '9130354701234567', 'company', 'cmp_42', 'ProfitAndLoss', 'HTTP', '503', 'retry in 250 ms', 'email', 'sent to',
  'ava@example.com', 'Bluewater "Print" & Co.', 'Ärger', '日本語', '(status 400)', '{"status":400,"detail":"quota"}', 'tokens', 'secretary',
  'passwords were not checked', 'key', '—', '\t', 'https://app.example.test/settings/notifications?unsubscribe=drift_reports', 'postgres://db.internal:5432/app',
];
const innocentText = fc.array(fc.oneof(fc.constantFrom(...INNOCENT), fc.integer().map(String)), { maxLength: 10 }).map((words) => words.join(' '));

/** How many times `part` occurs in `text`, overlaps included. */
const occurrences = (text: string, part: string): number => {
  let n = 0;
  for (let i = text.indexOf(part); i >= 0; i = text.indexOf(part, i + 1)) n++;
  return n;
};

/**
 * A JSON-like value with `leaf` inside, at most 8 levels down (the depth the redactor
 * walks as a structure), each level with innocent siblings; `build` makes the same
 * value around any leaf, so that the expected output is the input with its leaf replaced.
 */
const shallow = fc.array(
  fc.record({ key: fc.constantFrom('data', 'error', 'details', 'Fault', 'x'), asArray: fc.boolean(), note: innocentText, count: fc.integer(), ok: fc.boolean() }),
  { maxLength: 8 },
);
type Level = { key: string; asArray: boolean; note: string; count: number; ok: boolean };
const build = (path: Level[], leaf: unknown): unknown =>
  path.reduceRight<unknown>((inner, l) => (l.asArray ? [l.note, inner, l.count, null] : { [l.key]: inner, note: l.note, count: l.count, ok: l.ok, none: null }), leaf);

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

  it('leaves text without a secret exactly as it was, whatever secrets are registered', () => {
    fc.assert(
      fc.property(secret, innocentText, (s, text) => {
        fc.pre(!text.includes(s));
        clearSecrets();
        registerSecrets(s);
        expect(redact(text)).to.equal(text);
        const json = JSON.stringify({ message: text, status: 400 });
        expect(redact(json)).to.equal(json);
      }),
      { numRuns: RUNS },
    );
  });

  it('replaces each occurrence of a registered secret by [REDACTED] and keeps every other character', () => {
    fc.assert(
      fc.property(secret, innocentText, innocentText, fc.integer({ min: 1, max: 3 }), (s, a, b, n) => {
        const text = Array.from({ length: n }, () => `${a}${s}${b}`).join(' ');
        fc.pre(occurrences(text, s) === n); // the secret is only where it was put
        clearSecrets();
        registerSecrets(s);
        expect(redact(text)).to.equal(Array.from({ length: n }, () => `${a}[REDACTED]${b}`).join(' '));
      }),
      { numRuns: RUNS },
    );
  });

  it('returns a JSON-like value without a secret unchanged, and one with a secret with only that secret masked', () => {
    fc.assert(
      fc.property(secret, shallow, innocentText, (s, path, words) => {
        fc.pre(!JSON.stringify(build(path, words)).includes(s));
        clearSecrets();
        registerSecrets(s);
        expect(redactValue(build(path, words))).to.deep.equal(build(path, words));
        expect(redactValue(build(path, `before ${s} after`))).to.deep.equal(build(path, 'before [REDACTED] after'));
        expect(redactValue(build(path, { access_token: s.toLowerCase(), status: 400, reason: words }))).to.deep.equal(build(path, { access_token: '[REDACTED]', status: 400, reason: words }));
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

  it('serialises an error with everything but the secret: name, message, code, detail, the first stack line and the cause chain', () => {
    /** The serialised error without its stack, whose first line is checked on its own. */
    const withoutStacks = (e: Record<string, unknown>): Record<string, unknown> => {
      const { stack, cause, ...rest } = e;
      expect(String(stack).split('\n')[0]).to.equal(`${String(rest.name)}: ${String(rest.message)}`);
      return cause === undefined ? rest : { ...rest, cause: withoutStacks(cause as Record<string, unknown>) };
    };
    fc.assert(
      fc.property(secret, innocentText, fc.integer({ min: 0, max: 3 }), (s, words, depth) => {
        fc.pre(!words.includes(s) && !words.includes('\n'));
        clearSecrets();
        registerSecrets(s);
        let err: Error = Object.assign(new Error(`refresh failed for ${s}: ${words}`), { detail: { body: `echo ${s}`, status: 400, words }, code: 'E_REFRESH' });
        let expected: Record<string, unknown> = { name: 'Error', message: `refresh failed for [REDACTED]: ${words}`, code: 'E_REFRESH', detail: { body: 'echo [REDACTED]', status: 400, words } };
        for (let i = 0; i < depth; i++) {
          err = new TypeError(`wrapped ${i} (${s}) ${words}`, { cause: err });
          expected = { name: 'TypeError', message: `wrapped ${i} ([REDACTED]) ${words}`, cause: expected };
        }
        expect(withoutStacks(serializeError(err))).to.deep.equal(expected);
      }),
      { numRuns: RUNS },
    );
  });
});
