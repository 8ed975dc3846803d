import { expect } from 'chai';
import { loadConfig, requireQuickBooksConfig, secretsOf } from '../../lib/config.ts';
import { parseNow, parsePeriod } from '../../lib/cli/flags.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');
const fails = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    expect((err as Error).name).to.equal('ConfigError');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('configuration', () => {
  it('has the documented defaults with an empty environment', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).to.equal(undefined);
    expect(c.embeddedDbDir).to.equal('./.exitosx/db');
    expect(c.databasePoolMax).to.equal(10);
    expect(c.appBaseUrl).to.equal('https://app.exitosx.com');
    expect(c.email.from).to.equal('Exit OSx <no-reply@exitosx.com>');
    expect(c.email.sendgridApiUrl).to.equal('https://api.sendgrid.com');
    expect(c.email.outboxDir).to.equal('./.exitosx/outbox');
    expect(c.quickbooks.environment).to.equal('production');
    expect(c.quickbooks.apiUrl).to.equal('https://quickbooks.api.intuit.com');
    expect(c.quickbooks.tokenUrl).to.equal('https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer');
    expect(c.otelServiceName).to.equal('exitosx-cron');
    expect(c.logLevel).to.equal('info');
    expect(c.shard).to.deep.equal({ count: 1, index: 0 });
  });

  it('picks the sandbox API URL by environment', () => {
    expect(loadConfig({ QUICKBOOKS_ENVIRONMENT: 'sandbox' }).quickbooks.apiUrl).to.equal('https://sandbox-quickbooks.api.intuit.com');
  });

  it('takes the shard index from JOB_COMPLETION_INDEX in an Indexed Job', () => {
    expect(loadConfig({ SHARD_COUNT: '4', JOB_COMPLETION_INDEX: '3' }).shard).to.deep.equal({ count: 4, index: 3 });
    expect(loadConfig({ SHARD_COUNT: '4', SHARD_INDEX: '1', JOB_COMPLETION_INDEX: '3' }).shard).to.deep.equal({ count: 4, index: 1 });
  });

  it('names the variable and what it expects for each bad value', () => {
    expect(fails({ SHARD_COUNT: '2', SHARD_INDEX: '2' })).to.match(/^SHARD_INDEX must be .* \(got "2"\)$/);
    expect(fails({ SHARD_COUNT: '0' })).to.match(/^SHARD_COUNT must be a whole number/);
    expect(fails({ DATABASE_POOL_MAX: 'ten' })).to.match(/^DATABASE_POOL_MAX/);
    expect(fails({ DATABASE_URL: 'mysql://x' })).to.match(/^DATABASE_URL must be a postgres/);
    expect(fails({ TOKEN_ENCRYPTION_KEY: 'c2hvcnQ=' })).to.equal('TOKEN_ENCRYPTION_KEY must be 32 bytes of base64 (got 5); make one with: openssl rand -base64 32');
    expect(fails({ LOG_LEVEL: 'loud' })).to.match(/^LOG_LEVEL must be/);
    expect(fails({ QUICKBOOKS_ENVIRONMENT: 'staging' })).to.match(/^QUICKBOOKS_ENVIRONMENT must be sandbox or production/);
    expect(fails({ PUSHGATEWAY_URL: 'not a url' })).to.match(/^PUSHGATEWAY_URL must be an absolute URL/);
    for (const message of [fails({ SHARD_COUNT: 'x' }), fails({ APP_BASE_URL: '::' })]) expect(message).not.to.contain('\n');
  });

  it('gives every job session lock, statement and idle-in-transaction timeouts (0 turns one off) and names a bad one', () => {
    expect(loadConfig({}).databaseTimeouts).to.deep.equal({ lockTimeoutMs: 5000, statementTimeoutMs: 300_000, idleInTransactionTimeoutMs: 60_000 });
    expect(loadConfig({ DATABASE_LOCK_TIMEOUT_MS: '250', DATABASE_STATEMENT_TIMEOUT_MS: '0', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '90000' }).databaseTimeouts)
      .to.deep.equal({ lockTimeoutMs: 250, statementTimeoutMs: 0, idleInTransactionTimeoutMs: 90_000 });
    expect(fails({ DATABASE_LOCK_TIMEOUT_MS: '5s' })).to.equal('DATABASE_LOCK_TIMEOUT_MS must be a whole number of milliseconds from 0 (off) to 2147483647 (got "5s")');
    expect(fails({ DATABASE_STATEMENT_TIMEOUT_MS: '-1' })).to.match(/^DATABASE_STATEMENT_TIMEOUT_MS must be a whole number/);
    expect(fails({ DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1.5' })).to.match(/^DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS must be a whole number/);
  });

  it('refuses, for sync-quickbooks, an idle-in-transaction limit no longer than a QuickBooks call (a token refresh holds its row lock across one)', () => {
    const qb = { QUICKBOOKS_CLIENT_ID: 'id', QUICKBOOKS_CLIENT_SECRET: 'secret', TOKEN_ENCRYPTION_KEY: KEY };
    expect(() => requireQuickBooksConfig(loadConfig({ ...qb, DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '30000' }))).to.throw(/^DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS \(30000\) must be longer than QUICKBOOKS_TIMEOUT_MS \(30000\)/);
    expect(() => requireQuickBooksConfig(loadConfig({ ...qb, DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '0' }))).not.to.throw();
    expect(() => requireQuickBooksConfig(loadConfig({ ...qb, DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '31000' }))).not.to.throw();
  });

  it('asks sync-quickbooks for its own variables only', () => {
    const c = loadConfig({});
    expect(() => requireQuickBooksConfig(c)).to.throw(/QUICKBOOKS_CLIENT_ID is required/);
    const full = loadConfig({ QUICKBOOKS_CLIENT_ID: 'id', QUICKBOOKS_CLIENT_SECRET: 'secret', TOKEN_ENCRYPTION_KEY: KEY });
    expect(() => requireQuickBooksConfig(full)).not.to.throw();
  });

  it('lists the secret values for redaction, including the database password', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://app:s3cr%40t@db:5432/x', SENDGRID_API_KEY: 'SG.key-value-123', TOKEN_ENCRYPTION_KEY: KEY });
    expect(secretsOf(c)).to.include.members(['s3cr%40t', 's3cr@t', 'SG.key-value-123', KEY]);
  });
});

describe('command-line values', () => {
  it('reads --now as ISO-8601, UTC when no offset is given', () => {
    expect(parseNow('2026-03-01T06:00:00Z').toISOString()).to.equal('2026-03-01T06:00:00.000Z');
    expect(parseNow('2026-03-01T06:00:00+02:00').toISOString()).to.equal('2026-03-01T04:00:00.000Z');
    expect(parseNow('2026-03-01T06:00').toISOString()).to.equal('2026-03-01T06:00:00.000Z');
    expect(parseNow('2026-03-01').toISOString()).to.equal('2026-03-01T00:00:00.000Z');
  });

  it('rejects --now values that are not real ISO-8601 instants', () => {
    for (const bad of ['yesterday', '2026-02-30', '2026-13-01', '2026-03-01T25:00:00Z', '1700000000', '']) {
      expect(() => parseNow(bad), bad).to.throw(/--now must be an ISO-8601/);
    }
  });

  it('accepts --period months 01 to 12 only', () => {
    expect(parsePeriod('2026-01')).to.equal('2026-01');
    for (const bad of ['2026-13', '2026-00', '2026-1', '26-01', '2026-01-01']) expect(() => parsePeriod(bad), bad).to.throw(/--period must be/);
  });
});
