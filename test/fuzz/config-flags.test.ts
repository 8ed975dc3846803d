/**
 * Property-based tests of configuration and flag parsing: any environment gives
 * either a Config or a ConfigError whose one-line message starts with the name of
 * a variable it got wrong (never another exception, never a secret in the
 * message); --now and --period accept exactly the valid values, checked against an
 * oracle written here from ISO-8601 / RFC 3339.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { parseLimit, parseNow, parsePeriod } from '../../lib/cli/flags.ts';
import { loadConfig, type Config } from '../../lib/config.ts';
import { ConfigError } from '../../lib/errors.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

const MAX_WHOLE = 2_147_483_647;

/** Each variable: values it must accept, and values it must refuse. */
interface Spec {
  valid: fc.Arbitrary<string>;
  invalid?: fc.Arbitrary<string>;
}
const whole: Spec = {
  valid: fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.constant(MAX_WHOLE)).map(String),
  invalid: fc.constantFrom('0', '-1', '1.5', 'ten', 'Infinity', ' 5', '0x10', '1e3', '2147483648', '99999999999999999999'),
};
/** A duration where 0 turns the limit off. */
const wholeOrZero: Spec = {
  valid: fc.oneof(fc.integer({ min: 0, max: 100_000 }), fc.constant(MAX_WHOLE)).map(String),
  invalid: fc.constantFrom('-1', '1.5', 'ten', 'Infinity', ' 5', '0x10', '1e3', '5s', '2147483648', '99999999999999999999'),
};
const url: Spec = {
  valid: fc.constantFrom('http://127.0.0.1:9091', 'https://collector.example.com/', 'https://app.exitosx.com/path//'),
  invalid: fc.constantFrom('not a url', '::', '/relative/path', 'javascript:alert(1)', 'file:///etc/passwd'),
};
const key: Spec = {
  valid: fc.uint8Array({ minLength: 32, maxLength: 32 }).chain((b) => fc.constantFrom(Buffer.from(b).toString('base64'), Buffer.from(b).toString('base64url'))),
  invalid: fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 64 }).filter((b) => b.length !== 32).map((b) => Buffer.from(b).toString('base64')),
    fc.constantFrom('c2hvcnQ=', 'not base64 at all!', `${'A'.repeat(43)}=!`),
  ),
};
const text: Spec = { valid: fc.string({ minLength: 1, maxLength: 20 }) };
const secretText: Spec = { valid: fc.string({ minLength: 8, maxLength: 40 }).map((s) => `secret-${s}`) };

const SPECS: Record<string, Spec> = {
  DATABASE_URL: {
    valid: fc.constantFrom('postgres://app:pa55-w0rd@127.0.0.1:5432/product', 'postgresql://db.internal/product?sslmode=require'),
    invalid: fc.constantFrom('mysql://app:pa55-w0rd@db/product', 'postgres:/x', 'localhost:5432'),
  },
  EMBEDDED_DB_DIR: text,
  DATABASE_POOL_MAX: whole,
  DATABASE_LOCK_TIMEOUT_MS: wholeOrZero,
  DATABASE_STATEMENT_TIMEOUT_MS: wholeOrZero,
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: wholeOrZero,
  APP_BASE_URL: url,
  EMAIL_FROM: { valid: fc.constantFrom('a@b.co', 'Exit OSx <no-reply@exitosx.com>'), invalid: fc.constantFrom('nobody', 'a@b c', 'Name <>') },
  SENDGRID_API_KEY: secretText,
  SENDGRID_API_URL: url,
  EMAIL_OUTBOX_DIR: text,
  EMAIL_CONCURRENCY: whole,
  EMAIL_TIMEOUT_MS: whole,
  EMAIL_MAX_RETRIES: whole,
  QUICKBOOKS_CLIENT_ID: secretText,
  QUICKBOOKS_CLIENT_SECRET: secretText,
  QUICKBOOKS_ENVIRONMENT: { valid: fc.constantFrom('sandbox', 'production'), invalid: fc.constantFrom('staging', 'Production') },
  QUICKBOOKS_API_URL: url,
  QUICKBOOKS_TOKEN_URL: url,
  QUICKBOOKS_ACCOUNTING_METHOD: { valid: fc.constantFrom('Accrual', 'Cash'), invalid: fc.constantFrom('accrual', 'Both') },
  QUICKBOOKS_MAX_IN_FLIGHT: whole,
  QUICKBOOKS_MAX_PER_MINUTE: whole,
  QUICKBOOKS_CONCURRENCY: whole,
  QUICKBOOKS_TIMEOUT_MS: whole,
  TOKEN_ENCRYPTION_KEY: key,
  TOKEN_ENCRYPTION_KEY_PREVIOUS: key,
  PUSHGATEWAY_URL: url,
  PUSHGATEWAY_TIMEOUT_MS: whole,
  OTEL_EXPORTER_OTLP_ENDPOINT: url,
  OTEL_SERVICE_NAME: text,
  LOG_LEVEL: { valid: fc.constantFrom('error', 'warn', 'info', 'debug'), invalid: fc.constantFrom('chatty', 'INFO', 'trace') },
  POD_NAME: text,
  POD_NAMESPACE: text,
  JOB_NAME: text,
  KUBERNETES_SERVICE_HOST: text,
  KUBECONFIG: text,
  KUBERNETES_API_TIMEOUT_MS: whole,
};
const VARIABLES = [...Object.keys(SPECS), 'SHARD_COUNT', 'SHARD_INDEX', 'JOB_COMPLETION_INDEX'];
const SECRET_VARIABLES = ['SENDGRID_API_KEY', 'QUICKBOOKS_CLIENT_ID', 'QUICKBOOKS_CLIENT_SECRET', 'TOKEN_ENCRYPTION_KEY', 'TOKEN_ENCRYPTION_KEY_PREVIOUS'];

type Choice = { name: string; value: string; bad: boolean };

/** An environment: some variables unset, the others valid, and `badCount` of them invalid; shards consistent unless chosen bad. */
const envArb = (badCount: { min: number; max: number }) =>
  fc
    .record({
      set: fc.subarray(Object.keys(SPECS)),
      bad: fc.subarray(Object.keys(SPECS).filter((k) => SPECS[k]!.invalid), { minLength: badCount.min, maxLength: badCount.max }),
      seedValues: fc.record(Object.fromEntries(Object.entries(SPECS).map(([k, s]) => [k, fc.record({ valid: s.valid, invalid: s.invalid ?? s.valid })]))),
      shards: fc.integer({ min: 1, max: 8 }).chain((count) => fc.record({ count: fc.constant(count), index: fc.integer({ min: 0, max: count - 1 }), viaJob: fc.boolean() })),
      noise: fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }).map((s) => `X_${s}`), fc.string(), { maxKeys: 3 }),
    })
    .map(({ set, bad, seedValues, shards, noise }) => {
      const choices: Choice[] = [];
      for (const name of new Set([...set, ...bad])) {
        const isBad = bad.includes(name);
        choices.push({ name, value: isBad ? seedValues[name]!.invalid : seedValues[name]!.valid, bad: isBad });
      }
      const env: Record<string, string> = { ...noise, SHARD_COUNT: String(shards.count), [shards.viaJob ? 'JOB_COMPLETION_INDEX' : 'SHARD_INDEX']: String(shards.index) };
      for (const c of choices) env[c.name] = c.value;
      return { env, choices, shards };
    });

/** Runs loadConfig; returns the Config, or the ConfigError's message; any other exception fails the property. */
function load(env: Record<string, string | undefined>): Config | string {
  try {
    return loadConfig(env);
  } catch (err) {
    expect(err, `not a ConfigError: ${String(err)}`).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
}

function expectOneLineNaming(message: string, allowed: string[]): void {
  expect(message, 'one line').not.to.match(/[\r\n\u2028\u2029]/);
  const variable = /^([A-Z_]+)\b/.exec(message)?.[1];
  expect(allowed, `"${message}" names ${variable}`).to.include(variable);
}

describe('configuration and flags (properties)', function () {
  this.timeout(30_000);

  it('accepts every environment of valid values, and reflects them', () => {
    fc.assert(
      fc.property(envArb({ min: 0, max: 0 }), ({ env, choices, shards }) => {
        const c = load(env);
        expect(c, String(c)).to.be.an('object');
        const config = c as Config;
        expect(config.shard).to.deep.equal({ count: shards.count, index: shards.index });
        const get = (name: string) => choices.find((x) => x.name === name)?.value;
        if (get('DATABASE_POOL_MAX')) expect(config.databasePoolMax).to.equal(Number(get('DATABASE_POOL_MAX')));
        if (get('EMAIL_TIMEOUT_MS')) expect(config.email.timeoutMs).to.equal(Number(get('EMAIL_TIMEOUT_MS')));
        if (get('APP_BASE_URL')) expect(config.appBaseUrl).to.equal(get('APP_BASE_URL')!.replace(/\/+$/, ''));
        if (get('TOKEN_ENCRYPTION_KEY')) expect(config.tokenEncryptionKey?.equals(Buffer.from(get('TOKEN_ENCRYPTION_KEY')!, 'base64'))).to.equal(true);
        if (get('SENDGRID_API_KEY')) expect(config.email.sendgridApiKey).to.equal(get('SENDGRID_API_KEY'));
        if (get('LOG_LEVEL')) expect(config.logLevel).to.equal(get('LOG_LEVEL'));
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses any environment with bad values with a one-line ConfigError naming one of them, without echoing a secret', () => {
    fc.assert(
      fc.property(envArb({ min: 1, max: 3 }), ({ env, choices }) => {
        const message = load(env);
        expect(message, 'a ConfigError').to.be.a('string');
        expectOneLineNaming(message as string, choices.filter((c) => c.bad).map((c) => c.name));
        for (const c of choices) if (SECRET_VARIABLES.includes(c.name) && c.value.length >= 8) expect(message).not.to.contain(c.value);
        const dbUrl = env.DATABASE_URL;
        if (dbUrl) expect(message).not.to.contain('pa55-w0rd');
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws anything but ConfigError, whatever the variables hold (any text, any unicode)', () => {
    const anyEnv = fc.dictionary(fc.constantFrom(...VARIABLES), fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.constantFrom('', ' ', '\n', '0', '-0', '1e400', 'NaN', '\u0000')), { maxKeys: 8 });
    fc.assert(
      fc.property(anyEnv, (env) => {
        const c = load(env);
        if (typeof c === 'string') expectOneLineNaming(c, Object.keys(env));
      }),
      { numRuns: RUNS },
    );
  });

  it('takes SHARD_INDEX (or JOB_COMPLETION_INDEX) only as a whole number below SHARD_COUNT', () => {
    const index = fc.oneof(fc.integer({ min: -3, max: 10 }).map(String), fc.constantFrom(' ', ' 1', '1.0', '0x1', '1e0', 'one', '+1'));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), index, fc.constantFrom('SHARD_INDEX', 'JOB_COMPLETION_INDEX'), (count, value, variable) => {
        const c = load({ SHARD_COUNT: String(count), [variable]: value });
        const valid = /^\d+$/.test(value) && Number(value) < count;
        if (valid) expect((c as Config).shard, value).to.deep.equal({ count, index: Number(value) });
        else expectOneLineNaming(c as string, [variable]);
      }),
      { numRuns: RUNS },
    );
  });

  describe('--now', () => {
    const pad = (n: number, w: number) => String(n).padStart(w, '0');
    const dateTime = fc.record({
      y: fc.integer({ min: 0, max: 9999 }),
      mo: fc.integer({ min: 0, max: 13 }),
      d: fc.integer({ min: 0, max: 32 }),
      time: fc.option(
        fc.record({
          sep: fc.constantFrom('T', 't', ' ', '_'),
          h: fc.integer({ min: 0, max: 25 }),
          mi: fc.integer({ min: 0, max: 61 }),
          s: fc.option(fc.integer({ min: 0, max: 61 }), { nil: undefined }),
          frac: fc.option(fc.string({ unit: fc.constantFrom('0', '1', '5', '9'), minLength: 0, maxLength: 10 }), { nil: undefined }),
          zone: fc.option(
            fc.oneof(fc.constantFrom('Z', 'z'), fc.record({ sign: fc.constantFrom('+', '-'), h: fc.integer({ min: 0, max: 25 }), m: fc.integer({ min: 0, max: 61 }), colon: fc.boolean() })),
            { nil: undefined },
          ),
        }),
        { nil: undefined },
      ),
    });
    type DT = typeof dateTime extends fc.Arbitrary<infer T> ? T : never;

    const render = (v: DT): string => {
      let out = `${pad(v.y, 4)}-${pad(v.mo, 2)}-${pad(v.d, 2)}`;
      const t = v.time;
      if (!t) return out;
      out += `${t.sep}${pad(t.h, 2)}:${pad(t.mi, 2)}`;
      if (t.s !== undefined) out += `:${pad(t.s, 2)}${t.frac !== undefined ? `.${t.frac}` : ''}`;
      if (typeof t.zone === 'string') out += t.zone;
      else if (t.zone) out += `${t.zone.sign}${pad(t.zone.h, 2)}${t.zone.colon ? ':' : ''}${pad(t.zone.m, 2)}`;
      return out;
    };

    /** The instant an ISO-8601 / RFC 3339 text means, or null when it is not one; 24:00 is the end of the day. */
    const oracle = (v: DT): { base: number; ms: number } | null => {
      const leap = (v.y % 4 === 0 && v.y % 100 !== 0) || v.y % 400 === 0;
      const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
      if (v.mo < 1 || v.mo > 12 || v.d < 1 || v.d > days[v.mo - 1]!) return null;
      const t = v.time;
      const at = new Date(0);
      at.setUTCFullYear(v.y, v.mo - 1, v.d);
      if (!t) return { base: at.getTime(), ms: 0 };
      if (!['T', 't', ' '].includes(t.sep)) return null;
      const frac = t.s === undefined ? undefined : t.frac; // a fraction only after seconds
      if (frac !== undefined && (frac.length < 1 || frac.length > 9)) return null;
      const s = t.s ?? 0;
      const endOfDay = t.h === 24 && t.mi === 0 && s === 0 && !/[1-9]/.test(frac ?? '');
      if (!endOfDay && (t.h > 23 || t.mi > 59 || s > 59)) return null;
      let offsetMin = 0;
      if (t.zone && typeof t.zone !== 'string') {
        if (t.zone.h > 23 || t.zone.m > 59) return null;
        offsetMin = (t.zone.sign === '-' ? -1 : 1) * (t.zone.h * 60 + t.zone.m);
      }
      const ms = frac ? Number(`0.${frac}`) * 1000 : 0;
      return { base: at.getTime() + ((t.h * 60 + t.mi - offsetMin) * 60 + s) * 1000, ms };
    };

    const parse = (textValue: string): Date | null => {
      try {
        return parseNow(textValue);
      } catch (err) {
        expect(err, `not a ConfigError: ${String(err)}`).to.be.instanceOf(ConfigError);
        expect((err as Error).message).to.match(/^--now must be an ISO-8601 date-time/);
        expect((err as Error).message, 'one line').not.to.match(/[\r\n\u2028\u2029]/);
        return null;
      }
    };

    /** Checks `parse(t)` against the oracle's answer: refused, or the instant it names. */
    const expectParsed = (t: string, expected: { base: number; ms: number } | null) => {
      const actual = parse(t);
      if (expected === null) expect(actual, `${JSON.stringify(t)} must be refused`).to.equal(null);
      else {
        expect(actual, `${JSON.stringify(t)} must be accepted`).to.be.instanceOf(Date);
        // Sub-millisecond digits are cut (a Date holds whole milliseconds).
        const ms = actual!.getTime() - expected.base;
        expect(ms >= Math.floor(expected.ms) && ms <= Math.ceil(expected.ms), `${t}: ${ms} ms past the second, expected ${expected.ms}`).to.equal(true);
      }
    };

    /** Any text read back into the parts `render` writes, when it has that shape (any digits in each field); the oracle then says whether they are valid. */
    const readBack = (t: string): DT | undefined => {
      const m = /^(\d{4})-(\d{2})-(\d{2})(?:([Tt ])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d*))?)?(?:([Zz])|([+-])(\d{2})(:?)(\d{2}))?)?$/.exec(t);
      if (!m) return undefined;
      const [, y, mo, d, sep, h, mi, sec, frac, z, sign, zh, colon, zm] = m;
      const v: DT = { y: Number(y), mo: Number(mo), d: Number(d), time: undefined };
      if (sep === undefined) return v;
      const zone = z ?? (sign ? { sign: sign as '+' | '-', h: Number(zh), m: Number(zm), colon: colon === ':' } : undefined);
      v.time = { sep: sep as 'T', h: Number(h), mi: Number(mi), s: sec === undefined ? undefined : Number(sec), frac, zone: zone as NonNullable<DT['time']>['zone'] };
      return v;
    };

    /** A valid-looking text with one character inserted, deleted or replaced. */
    const nearMiss = fc
      .tuple(dateTime.map(render), fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.constantFrom(...'0123456789-:Tt Zz+._x/\n\u2028\u00a0\uff10'))
      .map(([t, i, op, c]) => {
        const k = i % (t.length + 1);
        if (op === 'insert') return t.slice(0, k) + c + t.slice(k);
        if (op === 'delete') return t.slice(0, k) + t.slice(k + 1);
        return t.slice(0, k) + c + t.slice(k + 1);
      });

    it('accepts exactly the valid ISO-8601 dates and date-times, as the instant they name (no offset: UTC)', () => {
      fc.assert(
        fc.property(dateTime, (v) => {
          const t = render(v);
          // The refusal test's reader reads back what is written here ('_' is no separator: not read).
          const written = v.time?.sep === '_' ? undefined : { ...v, ...(v.time && v.time.s === undefined ? { time: { ...v.time, frac: undefined } } : {}) };
          expect(readBack(t), t).to.deep.equal(written);
          expectParsed(t, oracle(v));
        }),
        { numRuns: RUNS * 3 },
      );
    });

    it('refuses anything else with a one-line ConfigError', () => {
      const odd = fc.constantFrom(
        '', ' ', 'now', 'yesterday', '2026-03-01\n', '2026-03-01T06:00:00Z\n', ' 2026-03-01', '2026-03-01T06:00:00Z ', '2026-3-1', '20260301', '2026-03-01T06',
        '2026-03-01T06:00:00+0', '2026-03-01T06:00:00 Z', '2026-03-01T06:00:00+02:00:00', '+02026-03-01', '２０２６-03-01', '2026-03-01\u2028', '2026-03-01T06:00:00.Z', '1772344800000',
      );
      let refused = 0;
      fc.assert(
        fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), nearMiss, odd), (t) => {
          const v = readBack(t);
          const expected = v ? oracle(v) : null;
          if (expected === null) refused++;
          expectParsed(t, expected);
        }),
        { numRuns: RUNS * 3 },
      );
      // Most of these texts are not dates: the refusals were checked, not skipped.
      expect(refused).to.be.greaterThan(RUNS);
    });
  });

  describe('--limit', () => {
    it('accepts exactly the whole numbers 1 to 1000 written in digits', () => {
      const candidate = fc.oneof(fc.integer({ min: -5, max: 1100 }).map(String), fc.constantFrom(' 5', '5 ', '0x10', '1e2', '1.0', '+5', '', '0010', '1000', '01000'), fc.string({ maxLength: 6 }));
      fc.assert(
        fc.property(candidate, (t) => {
          const valid = /^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= 1000;
          let result: number | null = null;
          try {
            result = parseLimit(t);
          } catch (err) {
            expect(err).to.be.instanceOf(ConfigError);
            expect((err as Error).message).to.match(/^--limit must be a whole number from 1 to 1000/);
          }
          expect(result, JSON.stringify(t)).to.equal(valid ? Number(t) : null);
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('--period', () => {
    it('accepts exactly YYYY-MM with a month from 01 to 12', () => {
      const candidate = fc.oneof(
        fc.record({ y: fc.integer({ min: 0, max: 9999 }), m: fc.integer({ min: 0, max: 13 }) }).map(({ y, m }) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}`),
        fc.constantFrom('2026-3', '2026-03-01', ' 2026-03', '2026-03 ', '2026/03', '202603', '+2026-03', '2026-003', '2026-03\n'),
        fc.string({ maxLength: 12 }),
      );
      fc.assert(
        fc.property(candidate, (t) => {
          const m = /^(\d{4})-(\d{2})$/.exec(t);
          const valid = Boolean(m && Number(m[2]) >= 1 && Number(m[2]) <= 12);
          let result: string | null = null;
          try {
            result = parsePeriod(t);
          } catch (err) {
            expect(err).to.be.instanceOf(ConfigError);
            expect((err as Error).message).to.match(/^--period must be a month as YYYY-MM/);
            expect((err as Error).message).not.to.match(/[\r\n]/);
          }
          expect(result, JSON.stringify(t)).to.equal(valid ? t : null);
        }),
        { numRuns: RUNS },
      );
    });
  });
});
