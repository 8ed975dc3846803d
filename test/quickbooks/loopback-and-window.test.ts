import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { fetchWindow } from '../../lib/quickbooks/sync.ts';
import { ROOT } from '../support/run.ts';

const fixture = (name: string) => JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/quickbooks', name), 'utf8')) as Record<string, unknown>;

describe('the loopback token endpoint', () => {
  let server: LoopbackQuickBooks;
  beforeEach(async () => {
    server = await startLoopbackQuickBooks({ clientId: 'id', clientSecret: 'secret' });
    server.addTokens('1', { accessToken: 'a', refreshToken: 'r' });
  });
  afterEach(() => server.close());
  const post = (body: string, auth = `Basic ${Buffer.from('id:secret').toString('base64')}`) =>
    fetch(server.tokenUrl, { method: 'POST', headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }, body });

  it('answers a refresh in the shape of Intuit\'s recorded response, rotating the refresh token', async () => {
    const res = await post('grant_type=refresh_token&refresh_token=r');
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).to.deep.equal(Object.keys(fixture('oauth_token_refresh_response.intuit-oauth-jsclient.json')).sort());
    expect(body.refresh_token).to.not.equal('r');
    // The old refresh token keeps working during Intuit's grace period; a revoked one does not.
    expect((await post('grant_type=refresh_token&refresh_token=r')).status).to.equal(200);
    server.revokeRefreshToken('r');
    const revoked = await post('grant_type=refresh_token&refresh_token=r');
    expect(revoked.status).to.equal(400);
    expect(await revoked.json()).to.deep.equal((fixture('oauth_token_refresh_error_invalid_grant.intuit-oauth-jsclient.json') as { json: unknown }).json);
  });

  it('checks the client credentials (Basic) first: invalid_client', async () => {
    const res = await post('grant_type=refresh_token&refresh_token=r', `Basic ${Buffer.from('id:wrong').toString('base64')}`);
    expect(res.status).to.equal(401);
    expect(await res.json()).to.deep.equal({ error: 'invalid_client' });
  });
});

describe('the fetch window', () => {
  const now = new Date('2026-03-15T08:00:00Z');
  it('goes back to the first day of the month 24 months before now, to the end of this month', () => {
    expect(fetchWindow(now, null)).to.deep.equal({ startDate: '2024-03-01', endDate: '2026-03-31' });
  });
  it('starts two months before the latest QuickBooks period when that is later', () => {
    expect(fetchWindow(now, '2026-02-01')).to.deep.equal({ startDate: '2025-12-01', endDate: '2026-03-31' });
    expect(fetchWindow(now, '2026-01-01')).to.deep.equal({ startDate: '2025-11-01', endDate: '2026-03-31' });
    expect(fetchWindow(now, '2023-01-01')).to.deep.equal({ startDate: '2024-03-01', endDate: '2026-03-31' });
  });
  it('crosses year ends', () => {
    expect(fetchWindow(new Date('2026-01-31T23:59:59Z'), '2026-01-01')).to.deep.equal({ startDate: '2025-11-01', endDate: '2026-01-31' });
  });
});
