import { expect } from 'chai';
import { openPostgresUrl, type Database } from '../../lib/db/connect.ts';
import { QuickBooksClientError, QuickBooksReauthError } from '../../lib/quickbooks/errors.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { TokenEndpoint } from '../../lib/quickbooks/oauth.ts';
import { decryptToken } from '../../lib/quickbooks/token-crypto.ts';
import { currentAccessToken, refreshAccessToken } from '../../lib/quickbooks/tokens.ts';
import { eachBackend } from '../support/db.ts';
import { NOW } from '../support/run.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, KEY } from './support.ts';

describe('QuickBooks tokens', () => {
  let server: LoopbackQuickBooks;
  beforeEach(async () => {
    server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  });
  afterEach(() => server.close());
  const endpoint = (secret = CLIENT_SECRET) => new TokenEndpoint({ clientId: CLIENT_ID, clientSecret: secret, environment: 'production', tokenUrl: server.tokenUrl, timeoutMs: 5000 });

  describe('the token endpoint through intuit-oauth', () => {
    it('refreshes with rotation and computes expiry times from the response', async () => {
      server.addTokens('1', { accessToken: 'a0', refreshToken: 'r0' });
      const t = await endpoint().refresh('r0', '1', NOW);
      expect(t.refreshToken).to.equal(server.issuedRefreshTokens[0]);
      expect(t.refreshToken).to.not.equal('r0');
      expect(t.accessTokenExpiresAt.toISOString()).to.equal(new Date(NOW.getTime() + 3600_000).toISOString());
      expect(t.refreshTokenExpiresAt.toISOString()).to.equal(new Date(NOW.getTime() + 8726400_000).toISOString());
    });

    it('translates invalid_grant and invalid_client into domain errors, without secrets', async () => {
      const grant = await endpoint().refresh('never-issued', '77', NOW).catch((e: unknown) => e);
      expect(grant).to.be.instanceOf(QuickBooksReauthError);
      expect((grant as Error).message).to.equal('QuickBooks refresh token rejected for realm 77 (invalid_grant): the connection must be re-authorised');
      const client = await endpoint('wrong-secret-value').refresh('never-issued', '77', NOW).catch((e: unknown) => e);
      expect(client).to.be.instanceOf(QuickBooksClientError);
      expect(JSON.stringify(client) + String((client as Error).message)).to.not.include('wrong-secret-value');
    });

    it('checks the credentials: invalid_client throws, invalid_grant (credentials fine) does not', async () => {
      await endpoint().checkCredentials(NOW);
      const err = await endpoint('nope-nope').checkCredentials(NOW).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(QuickBooksClientError);
    });
  });

  eachBackend((db) => {
    beforeEach(() => db().truncate());

    it('two overlapping runs refresh one integration once: the second uses the first one\'s tokens', async function () {
      const i = await anIntegration(db().knex, server, { accessExpiresInMs: -1 });
      const row = await db().knex('quickbooks_integrations').where({ id: i.id }).first();
      const subject = { id: i.id, realmId: i.realmId, accessToken: row.access_token, refreshToken: row.refresh_token, accessTokenExpiresAt: new Date(row.access_token_expires_at) };
      server.tokenLatencyMs = 200;
      // A second run: on PostgreSQL its own connection pool, like another process.
      let other: Database | undefined;
      if (db().kind === 'postgres') other = await openPostgresUrl(db().url!, 'exitosx-test-2');
      try {
        const deps = (knex = db().knex) => ({ db: knex, endpoint: endpoint(), keys: { current: KEY }, now: NOW });
        const [a, b] = await Promise.all([currentAccessToken(deps(), subject), currentAccessToken(deps(other?.knex), subject)]);
        expect(a).to.equal(b);
        expect(server.tokenStats.refreshed).to.equal(1);
        const stored = await db().knex('quickbooks_integrations').where({ id: i.id }).first();
        expect(decryptToken(stored.refresh_token, [KEY])).to.equal(server.issuedRefreshTokens[0]);
      } finally {
        await other?.close();
      }
    });

    it('after a 401 uses a token another run refreshed meanwhile instead of refreshing again', async () => {
      const i = await anIntegration(db().knex, server);
      const row = await db().knex('quickbooks_integrations').where({ id: i.id }).first();
      const subject = { id: i.id, realmId: i.realmId, accessToken: row.access_token, refreshToken: row.refresh_token, accessTokenExpiresAt: new Date(row.access_token_expires_at) };
      const deps = { db: db().knex, endpoint: endpoint(), keys: { current: KEY }, now: NOW };
      const first = await refreshAccessToken(deps, subject, i.accessToken);
      const second = await refreshAccessToken(deps, subject, i.accessToken);
      expect(second).to.equal(first);
      expect(server.tokenStats.refreshed).to.equal(1);
    });
  });
});
