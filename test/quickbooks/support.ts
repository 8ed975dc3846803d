/**
 * QuickBooks test helpers: an integration row with tokens encrypted like the
 * product writes them, registered with the loopback server.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import type { TestDb } from '../support/db.ts';
import { encryptToken } from '../../lib/quickbooks/token-crypto.ts';
import { aCompany, daysBefore } from '../support/factories.ts';
import { NOW } from '../support/run.ts';

export const KEY = crypto.randomBytes(32);
export const OLD_KEY = crypto.randomBytes(32);
export const CLIENT_ID = 'qb-test-client-id';
export const CLIENT_SECRET = 'qb-test-client-secret-0123456789';

/** Environment for sync-quickbooks against the loopback server. */
export function qbEnv(server: LoopbackQuickBooks, over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    QUICKBOOKS_CLIENT_ID: CLIENT_ID,
    QUICKBOOKS_CLIENT_SECRET: CLIENT_SECRET,
    QUICKBOOKS_API_URL: server.apiUrl,
    QUICKBOOKS_TOKEN_URL: server.tokenUrl,
    TOKEN_ENCRYPTION_KEY: KEY.toString('base64'),
    QUICKBOOKS_TIMEOUT_MS: '5000',
    ...over,
  };
}

let seq = 0;
/**
 * Integrations made so far per loopback server. Realm ids are numbered per server
 * (each test starts its own), so a test's realms, and so the loopback's figures,
 * which depend on the realm, are the same on every run: never the pid, never the
 * tests that ran before.
 */
const realmsMade = new WeakMap<LoopbackQuickBooks, number>();

export interface IntegrationOptions {
  /** Access token lifetime left at NOW, ms (negative: expired). @defaultValue 1 hour */
  accessExpiresInMs?: number;
  key?: Buffer;
  row?: Record<string, unknown>;
  company?: Record<string, unknown>;
  /** Register the tokens with the server. @defaultValue true */
  register?: boolean;
}

export interface TestIntegration {
  id: string;
  companyId: string;
  realmId: string;
  accessToken: string;
  refreshToken: string;
}

export async function anIntegration(db: Knex, server: LoopbackQuickBooks, o: IntegrationOptions = {}): Promise<TestIntegration> {
  const n = ++seq;
  const company = await aCompany(db, o.company ?? {});
  const r = (realmsMade.get(server) ?? 0) + 1;
  realmsMade.set(server, r);
  const realmId = `9130${String(r).padStart(12, '0')}`; // 16 digits, as Intuit's
  const accessToken = `access-${crypto.randomBytes(8).toString('hex')}`;
  const refreshToken = `refresh-${crypto.randomBytes(8).toString('hex')}`;
  if (o.register !== false) server.addTokens(realmId, { accessToken, refreshToken });
  const id = `qbo_${process.pid}_${n}`;
  const key = o.key ?? KEY;
  await db('quickbooks_integrations').insert({
    id, company_id: company.id, realm_id: realmId,
    access_token: encryptToken(accessToken, key), refresh_token: encryptToken(refreshToken, key),
    access_token_expires_at: new Date(NOW.getTime() + (o.accessExpiresInMs ?? 3600_000)),
    refresh_token_expires_at: new Date(NOW.getTime() + 90 * 86_400_000),
    created_at: daysBefore(100),
    ...o.row,
  });
  return { id, companyId: company.id, realmId, accessToken, refreshToken };
}

/** Before each test: an empty database and a fresh loopback QuickBooks (handed to `set`), closed after it. */
export function useLoopbackQuickBooks(db: () => TestDb, set: (server: LoopbackQuickBooks) => void): void {
  let server: LoopbackQuickBooks | undefined;
  beforeEach(async () => {
    await db().truncate();
    server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    set(server);
  });
  afterEach(() => server?.close());
}

/** Before each test: a fresh loopback QuickBooks with realms 111 and 222 and their access tokens (handed to `set`), closed after it. */
export function useTwoRealmLoopback(set: (server: LoopbackQuickBooks) => void): void {
  let server: LoopbackQuickBooks | undefined;
  beforeEach(async () => {
    server = await startLoopbackQuickBooks({ clientId: 'client-id', clientSecret: 'client-secret-value' });
    server.addTokens('111', { accessToken: 'good-access-1', refreshToken: 'r1' });
    server.addTokens('222', { accessToken: 'good-access-2', refreshToken: 'r2' });
    set(server);
  });
  afterEach(() => server?.close());
}

/** The statements `fn` sends on `knex`, by their first word (select, insert, commit, …). */
export async function statementVerbs<T>(knex: Knex, fn: () => Promise<T>): Promise<{ result: T; verbs: string[] }> {
  const verbs: string[] = [];
  const onQuery = (q: { sql: string }) => verbs.push(/^\s*(\w+)/.exec(q.sql)![1]!.toLowerCase());
  knex.on('query', onQuery);
  try {
    return { result: await fn(), verbs };
  } finally {
    knex.off('query', onQuery);
  }
}
