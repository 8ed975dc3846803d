/**
 * A crash between the token refresh and the sync must not lose the rotated refresh
 * token: the real command line runs in a child process, and is killed (SIGKILL)
 * as soon as its first report request arrives, after the token endpoint answered.
 */
import { expect } from 'chai';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { decryptToken } from '../../lib/quickbooks/token-crypto.ts';
import { createTestDb, backends, type TestDb } from '../support/db.ts';
import { NOW, runCli } from '../support/run.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, KEY, qbEnv } from '../quickbooks/support.ts';

describe('sync-quickbooks killed after a token refresh', function () {
  this.timeout(60_000);
  let server: LoopbackQuickBooks;
  let db: TestDb;
  before(async function () {
    if (!backends().includes('postgres')) this.skip();
    db = await createTestDb('postgres');
  });
  after(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  });
  afterEach(() => server.close());

  it('has the new refresh token in the database when SIGKILLed before the reports came back', async () => {
    const i = await anIntegration(db.knex, server, { accessExpiresInMs: -60_000 });
    server.behave('*', { latencyMs: 5000 });
    let killed = false;
    const result = await runCli(['sync-quickbooks', '--now', NOW.toISOString()], {
      env: { DATABASE_URL: db.url, ...qbEnv(server) },
      onSpawn: (child) => {
        server.onReportRequest = () => {
          if (!killed) child.kill('SIGKILL');
          killed = true;
        };
      },
    });
    expect(result.signal, `exit ${String(result.code)}, report request seen: ${String(killed)}; stderr: ${result.stderr.slice(-1500)}`).to.equal('SIGKILL');
    expect(server.tokenStats.refreshed).to.equal(1);
    const row = await db.knex('quickbooks_integrations').where({ id: i.id }).first();
    expect(decryptToken(row.refresh_token, [KEY])).to.equal(server.issuedRefreshTokens[0]);
    expect(row.last_sync_at).to.equal(null);

    // The next run uses the saved pair: no refresh needed, the sync completes.
    server.behave('*', { latencyMs: 0 });
    const rerun = await runCli(['sync-quickbooks', '--now', NOW.toISOString()], { env: { DATABASE_URL: db.url, ...qbEnv(server) } });
    expect(rerun.code, rerun.stderr).to.equal(0);
    expect(rerun.summary).to.deep.include({ synced: 1, failed: 0 });
    expect(server.tokenStats.refreshed).to.equal(1);
  });
});
