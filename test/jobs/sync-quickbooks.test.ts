import { expect } from 'chai';
import pg from 'pg';
import job from '../../jobs/sync-quickbooks.ts';
import { monthLedger, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { decryptToken } from '../../lib/quickbooks/token-crypto.ts';
import { eachBackend } from '../support/db.ts';
import { aCompany, aFinancialPeriod, daysBefore } from '../support/factories.ts';
import { NOW, runInProcess } from '../support/run.ts';
import { anIntegration, CLIENT_SECRET, KEY, OLD_KEY, qbEnv, useLoopbackQuickBooks, type TestIntegration } from '../quickbooks/support.ts';

const cents = (c: number) => (c / 100).toFixed(2);

describe('sync-quickbooks', function () {
  this.timeout(60_000);
  eachBackend((db) => {
    let server!: LoopbackQuickBooks;
    useLoopbackQuickBooks(db, (s) => (server = s));

    const run = (options: Parameters<typeof runInProcess>[1] = {}, env: Record<string, string | undefined> = {}) =>
      runInProcess(job, options, { database: db().database, env: qbEnv(server, env) });
    const integration = (id: string) => db().knex('quickbooks_integrations').where({ id }).first();
    const periods = (companyId: string) => db().knex('financial_periods').where({ company_id: companyId }).orderBy('period_start');
    const openSignals = (companyId: string) => db().knex('signals').where({ company_id: companyId, event_type: 'quickbooks_sync_failed' }).whereNull('resolved_at');

    it('syncs 24 months back to the end of this month, each month from the report rows, with status, ledger entry and summary', async () => {
      const i = await anIntegration(db().knex, server);
      const { exitCode, summary } = await run();
      expect(exitCode).to.equal(0);
      expect(summary).to.deep.include({ success: true, job: 'sync-quickbooks', dryRun: false, integrationsChecked: 1, synced: 1, skipped: 0, failed: 0, errors: 0, periodsCreated: 25, periodsUpdated: 0, periodsConflicted: 0 });
      expect(summary.results).to.deep.equal([{ companyId: i.companyId, companyName: `Company ${i.companyId}`, status: 'synced', periodsCreated: 25, periodsUpdated: 0, periodsConflicted: 0 }]);
      const rows = await periods(i.companyId);
      expect(rows.map((r) => r.period_start)).to.have.length(25);
      expect(rows[0]).to.include({ period_start: '2024-03-01', period_end: '2024-03-31', source: 'QUICKBOOKS' });
      expect(rows.at(-1)).to.include({ period_start: '2026-03-01', period_end: '2026-03-31' });
      // One month against the generator's ledger lines (the rows of the report).
      const month = rows.find((r) => !monthLedger(i.realmId, String(r.period_start).slice(0, 7)).quiet)!;
      const l = monthLedger(i.realmId, String(month.period_start).slice(0, 7));
      const revenue = l.productSales + l.consulting + l.training;
      const opex = l.advertising + l.rent + l.wages + l.payrollTaxes + l.depreciation + l.amortization;
      const noi = revenue - l.materials - opex;
      expect(month).to.include({
        revenue: cents(revenue), cogs: cents(l.materials), gross_profit: cents(revenue - l.materials), operating_expenses: cents(opex),
        ebitda: cents(noi + l.depreciation + l.amortization), net_income: cents(noi + l.interestIncome - l.interestExpense),
      });
      expect(new Date(month.synced_at as Date).toISOString()).to.equal(NOW.toISOString());
      const row = await integration(i.id);
      expect(row).to.include({ last_sync_status: 'SUCCESS', last_sync_error: null, needs_reauth: false });
      expect(new Date(row.last_sync_at).toISOString()).to.equal(NOW.toISOString());
      const ledger = await db().knex('value_ledger_entries').where({ company_id: i.companyId });
      expect(ledger.map((e) => e.entry_type)).to.deep.equal(['FINANCIALS_SYNCED']);
      expect(server.stats(i.realmId).reportRequests).to.equal(2);
    });

    it('skips an integration synced within 12 hours, unless --force', async () => {
      const i = await anIntegration(db().knex, server, { row: { last_sync_at: new Date(NOW.getTime() - 11 * 3600_000) } });
      const first = await run();
      expect(first.summary).to.deep.include({ integrationsChecked: 1, skipped: 1, synced: 0 });
      expect(first.summary.results).to.deep.equal([{ companyId: i.companyId, companyName: `Company ${i.companyId}`, status: 'skipped', periodsCreated: 0, periodsUpdated: 0, periodsConflicted: 0 }]);
      expect(server.stats('*').reportRequests).to.equal(0);
      const forced = await run({ force: true });
      expect(forced.summary).to.deep.include({ synced: 1, skipped: 0 });
    });

    it('never calls QuickBooks for disabled, disconnected, needs-reauth or deleted-company integrations', async () => {
      await anIntegration(db().knex, server, { row: { auto_sync_enabled: false } });
      await anIntegration(db().knex, server, { row: { disconnected_at: daysBefore(3) } });
      await anIntegration(db().knex, server, { row: { needs_reauth: true } });
      await anIntegration(db().knex, server, { company: { deleted_at: daysBefore(1) } });
      const { exitCode, summary } = await run({ force: true });
      expect(exitCode).to.equal(0);
      expect(summary).to.deep.include({ integrationsChecked: 0, synced: 0, failed: 0 });
      expect(server.stats('*').reportRequests).to.equal(0);
      expect(server.tokenStats.requests).to.equal(0);
    });

    it('refreshes an access token expiring within 5 minutes and saves the rotated pair before using it', async () => {
      const i = await anIntegration(db().knex, server, { accessExpiresInMs: 4 * 60_000 });
      server.revokeAccessToken(i.accessToken); // only the new one works
      const { summary } = await run();
      expect(summary).to.deep.include({ synced: 1, failed: 0 });
      expect(server.tokenStats.refreshed).to.equal(1);
      const row = await integration(i.id);
      const newRefresh = server.issuedRefreshTokens.at(-1)!;
      expect(decryptToken(row.refresh_token, [KEY])).to.equal(newRefresh);
      expect(decryptToken(row.access_token, [KEY])).to.match(/^at_/);
      expect(new Date(row.access_token_expires_at).toISOString()).to.equal(new Date(NOW.getTime() + 3600_000).toISOString());
      expect(new Date(row.refresh_token_expires_at).toISOString()).to.equal(new Date(NOW.getTime() + 8726400_000).toISOString());
    });

    it('keeps a token with more than 5 minutes left', async () => {
      await anIntegration(db().knex, server, { accessExpiresInMs: 6 * 60_000 });
      await run();
      expect(server.tokenStats.refreshed).to.equal(0);
    });

    it('answers a 401 with one refresh and one retry', async () => {
      const i = await anIntegration(db().knex, server);
      server.revokeAccessToken(i.accessToken);
      const { summary } = await run();
      expect(summary).to.deep.include({ synced: 1, failed: 0 });
      expect(server.tokenStats.refreshed).to.equal(1);
      expect(server.stats(i.realmId).statuses.filter((s) => s === 401).length).to.be.within(1, 2);
    });

    it('fails (once refreshed, once retried) when the API keeps answering 401', async () => {
      const i = await anIntegration(db().knex, server);
      server.behave(i.realmId, { failNext: { status: 401, count: 100 } });
      const { exitCode, summary } = await run();
      expect(exitCode).to.equal(0);
      expect(summary).to.deep.include({ success: true, failed: 1, errors: 0 });
      expect(server.tokenStats.refreshed).to.equal(1);
      expect((summary.results as Array<{ error: string }>)[0]!.error).to.equal('QuickBooks access token rejected for realm ' + i.realmId);
      expect(server.stats(i.realmId).reportRequests).to.equal(4);
    });

    it('on invalid_grant sets needs_reauth and raises the HIGH reconnect signal, escalating an open MEDIUM one', async () => {
      const fresh = await anIntegration(db().knex, server, { accessExpiresInMs: -60_000 });
      server.revokeRefreshToken(fresh.refreshToken);
      const escalated = await anIntegration(db().knex, server, { accessExpiresInMs: -60_000 });
      server.revokeRefreshToken(escalated.refreshToken);
      await db().knex('signals').insert({ company_id: escalated.companyId, channel: 'INTEGRATION', event_type: 'quickbooks_sync_failed', category: 'FINANCIAL', severity: 'MEDIUM', confidence: 'CONFIDENT', title: 'QuickBooks sync failed', created_at: daysBefore(2) });
      const { exitCode, summary } = await run();
      expect(summary).to.deep.include({ failed: 2, needsReauth: 2, errors: 0, success: true });
      expect(exitCode).to.equal(0);
      for (const i of [fresh, escalated]) {
        const row = await integration(i.id);
        expect(row).to.include({ needs_reauth: true, last_sync_status: 'FAILED' });
        expect(row.last_sync_error).to.match(/invalid_grant/);
        const signals = await openSignals(i.companyId);
        expect(signals).to.have.length(1);
        expect(signals[0]).to.include({ severity: 'HIGH', title: 'QuickBooks connection needs to be reconnected', channel: 'INTEGRATION', category: 'FINANCIAL' });
      }
      const entries = await db().knex('value_ledger_entries').whereIn('company_id', [fresh.companyId, escalated.companyId]).orderBy('entry_type');
      expect(entries.map((e) => `${e.company_id === fresh.companyId ? 'fresh' : 'escalated'}:${e.entry_type}`).sort()).to.deep.equal(['escalated:SIGNAL_ESCALATED', 'fresh:SIGNAL_CREATED']);
      expect(server.stats('*').reportRequests).to.equal(0);
      // needs_reauth integrations are no longer candidates.
      const again = await run({ force: true });
      expect(again.summary).to.deep.include({ integrationsChecked: 0 });
    });

    it('exits 2 on invalid_client before touching any integration', async () => {
      const i = await anIntegration(db().knex, server, { accessExpiresInMs: -60_000 });
      const { exitCode, summary } = await run({}, { QUICKBOOKS_CLIENT_SECRET: 'a-wrong-client-secret' });
      expect(exitCode).to.equal(2);
      expect(summary).to.deep.include({ success: false });
      expect(String(summary.error)).to.match(/invalid_client/);
      expect(server.stats('*').reportRequests).to.equal(0);
      expect(server.tokenStats.invalidClient).to.equal(1);
      expect(await integration(i.id)).to.include({ last_sync_status: null, needs_reauth: false });
    });

    it('stops and exits 2 when Intuit refuses the app credentials mid-run', async () => {
      const a = await anIntegration(db().knex, server, { accessExpiresInMs: -60_000 });
      await anIntegration(db().knex, server, { accessExpiresInMs: -60_000 });
      server.rejectClientAfter = 1; // the preflight check passes, the first refresh does not
      const { exitCode, summary } = await run({}, { QUICKBOOKS_CONCURRENCY: '1' });
      expect(exitCode).to.equal(2);
      expect(String(summary.error)).to.match(/invalid_client/);
      expect(server.tokenStats.invalidClient).to.equal(1);
      expect(server.stats('*').reportRequests).to.equal(0);
      expect(await integration(a.id)).to.include({ needs_reauth: false, last_sync_status: null });
    });

    it('waits out a 429 as Retry-After says, then syncs', async () => {
      const i = await anIntegration(db().knex, server);
      server.behave(i.realmId, { failNext: { status: 429, count: 1, retryAfterSeconds: 1 } });
      const { summary, logs } = await run();
      expect(summary).to.deep.include({ synced: 1, failed: 0 });
      expect(logs.some((l) => l.message === 'qbo:request:retry' && l.status === 429 && l.retryAfterMs === 1000)).to.equal(true);
    });

    it('fails on persistent 5xx with one MEDIUM signal, not reopened by a rerun, resolved by the next success', async () => {
      const i = await anIntegration(db().knex, server);
      server.behave(i.realmId, { failNext: { status: 503, count: 1000 } });
      const first = await run();
      expect(first.exitCode).to.equal(0);
      expect(first.summary).to.deep.include({ success: true, failed: 1, errors: 0 });
      expect((await integration(i.id)).last_sync_error).to.match(/HTTP 503/);
      let signals = await openSignals(i.companyId);
      expect(signals).to.have.length(1);
      expect(signals[0]).to.include({ severity: 'MEDIUM', title: 'QuickBooks sync failed', confidence: 'CONFIDENT' });
      const tids = first.logs.filter((l) => l.message === 'qbo:request:failed').map((l) => l.intuitTid);
      expect(tids.length).to.be.greaterThan(0);
      expect(tids.every((t) => typeof t === 'string' && t.startsWith('loopback-'))).to.equal(true);

      await run({ force: true });
      expect(await db().knex('signals').where({ company_id: i.companyId })).to.have.length(1);

      server.behave(i.realmId, { failNext: { status: 503, count: 0 } });
      const healed = await run({ force: true });
      expect(healed.summary).to.deep.include({ synced: 1 });
      signals = await db().knex('signals').where({ company_id: i.companyId });
      expect(signals[0]).to.include({ resolution: 'SYNC_RECOVERED' });
      const entries = (await db().knex('value_ledger_entries').where({ company_id: i.companyId })).map((e) => e.entry_type).sort();
      expect(entries).to.deep.equal(['FINANCIALS_SYNCED', 'SIGNAL_CREATED', 'SIGNAL_RESOLVED']);
    });

    it('never overwrites a MANUAL month, and counts it as conflicted', async () => {
      const i = await anIntegration(db().knex, server);
      await aFinancialPeriod(db().knex, i.companyId, '2026-01-01', { revenue: '1.00', source: 'MANUAL' });
      const { summary } = await run();
      expect(summary).to.deep.include({ periodsCreated: 24, periodsConflicted: 1 });
      expect(await db().knex('financial_periods').where({ company_id: i.companyId, period_start: '2026-01-01' }).first()).to.include({ revenue: '1.00', source: 'MANUAL', synced_at: null });
    });

    it('counts exactly one update when one month changed in QuickBooks, and re-fetches from two months before the latest', async () => {
      const i = await anIntegration(db().knex, server);
      await run();
      const before = server.stats(i.realmId).reportRequests;
      server.behave(i.realmId, { adjustments: { '2026-02': 12345 } });
      const later = new Date(NOW.getTime() + 13 * 3600_000);
      const { summary } = await run({ now: later });
      expect(summary).to.deep.include({ synced: 1, periodsCreated: 0, periodsUpdated: 1, periodsConflicted: 0 });
      expect(server.stats(i.realmId).reportRequests).to.equal(before + 2);
      const feb = await db().knex('financial_periods').where({ company_id: i.companyId, period_start: '2026-02-01' }).first();
      expect(new Date(feb.updated_at).toISOString()).to.equal(later.toISOString());
      const jan = await db().knex('financial_periods').where({ company_id: i.companyId, period_start: '2026-01-01' }).first();
      expect(new Date(jan.updated_at).toISOString()).to.not.equal(later.toISOString());
      expect(new Date(jan.synced_at).toISOString()).to.equal(later.toISOString());
    });

    it('fails an integration whose tokens the key cannot decrypt, with a clear secret-free error, and goes on with the others', async () => {
      const bad = await anIntegration(db().knex, server, { key: OLD_KEY });
      const good = await anIntegration(db().knex, server);
      const { exitCode, summary } = await run();
      expect(exitCode).to.equal(0);
      expect(summary).to.deep.include({ synced: 1, failed: 1, errors: 0 });
      const row = await integration(bad.id);
      expect(row.last_sync_error).to.equal('token cannot be decrypted with TOKEN_ENCRYPTION_KEY or TOKEN_ENCRYPTION_KEY_PREVIOUS (wrong key or tampered)');
      expect(await openSignals(bad.companyId)).to.have.length(1);
      expect(await openSignals(good.companyId)).to.have.length(0);
    });

    it('during a key rotation decrypts with the previous key and writes refreshed tokens with the current one', async () => {
      const i = await anIntegration(db().knex, server, { key: OLD_KEY, accessExpiresInMs: -1 });
      const { summary } = await run({}, { TOKEN_ENCRYPTION_KEY_PREVIOUS: OLD_KEY.toString('base64') });
      expect(summary).to.deep.include({ synced: 1 });
      const row = await integration(i.id);
      expect(decryptToken(row.refresh_token, [KEY])).to.equal(server.issuedRefreshTokens.at(-1));
      expect(() => decryptToken(row.refresh_token, [OLD_KEY])).to.throw(/cannot be decrypted/);
    });

    it('writes no secret to any log line or stored error', async () => {
      const a = await anIntegration(db().knex, server, { accessExpiresInMs: -1 });
      server.revokeRefreshToken(a.refreshToken);
      const b = await anIntegration(db().knex, server);
      server.revokeAccessToken(b.accessToken);
      const c = await anIntegration(db().knex, server);
      server.behave(c.realmId, { failNext: { status: 500, count: 1000 } });
      const result = await run({}, { LOG_LEVEL: 'debug' });
      const bad = await run({ force: true }, { QUICKBOOKS_CLIENT_SECRET: 'another-wrong-secret-42' });
      const stored = await db().knex('quickbooks_integrations').select('last_sync_error');
      const signals = await db().knex('signals').select('description', 'metadata');
      const text = JSON.stringify([result.logs, result.summary, bad.logs, bad.summary, stored, signals]);
      const secrets = [CLIENT_SECRET, 'another-wrong-secret-42', KEY.toString('base64'), ...[a, b, c].flatMap((i: TestIntegration) => [i.accessToken, i.refreshToken]), ...server.issuedRefreshTokens];
      for (const s of secrets) expect(text, s).to.not.include(s);
      expect(text).to.not.match(/enc:v1:|Basic [A-Za-z0-9+/=]{8}|Bearer [a-z]/);
    });

    it('in a dry run reports what it would fetch, calls neither Intuit endpoint and writes nothing', async () => {
      const i = await anIntegration(db().knex, server, { accessExpiresInMs: -1 });
      await aFinancialPeriod(db().knex, i.companyId, '2025-11-01', { source: 'QUICKBOOKS' });
      const { exitCode, summary } = await run({ dryRun: true });
      expect(exitCode).to.equal(0);
      expect(summary).to.deep.include({ dryRun: true, integrationsChecked: 1, synced: 1 });
      expect((summary.results as Array<Record<string, unknown>>)[0]!.wouldFetch).to.deep.equal({ startDate: '2025-09-01', endDate: '2026-03-31', reports: ['ProfitAndLoss', 'BalanceSheet'] });
      expect(server.tokenStats.requests).to.equal(0);
      expect(server.stats('*').reportRequests).to.equal(0);
      expect(await integration(i.id)).to.include({ last_sync_at: null });
      expect(await db().knex('value_ledger_entries')).to.have.length(0);
    });

    it('with --company syncs only that company', async () => {
      const a = await anIntegration(db().knex, server);
      const b = await anIntegration(db().knex, server);
      const { summary } = await run({ companyId: b.companyId });
      expect(summary).to.deep.include({ integrationsChecked: 1, synced: 1 });
      expect(server.stats(a.realmId).reportRequests).to.equal(0);
    });

    it('splits integrations across shards, each exactly once', async () => {
      const all = [];
      for (let n = 0; n < 6; n++) all.push(await anIntegration(db().knex, server));
      const checked: string[] = [];
      for (const index of ['0', '1', '2']) {
        const { summary } = await run({ dryRun: true }, { SHARD_COUNT: '3', SHARD_INDEX: index });
        checked.push(...(summary.results as Array<{ companyId: string }>).map((r) => r.companyId));
      }
      expect(checked.sort()).to.deep.equal(all.map((i) => i.companyId).sort());
    });

    it('keeps fetching while a batch waits to be written: QUICKBOOKS_CONCURRENCY bounds the fetches, not the writes', async function () {
      if (db().kind !== 'postgres') return this.skip(); // needs a second connection to hold a lock
      const all = [await anIntegration(db().knex, server), await anIntegration(db().knex, server), await anIntegration(db().knex, server)];
      // Another session holds financial_periods: the first batch's write waits for it.
      const holder = new pg.Client({ connectionString: db().url });
      await holder.connect();
      try {
        await holder.query('begin');
        await holder.query('lock table financial_periods in exclusive mode');
        const running = run({}, { QUICKBOOKS_CONCURRENCY: '1' });
        // One integration fetching at a time, and one more waiting for its write:
        // the second integration's reports are fetched while the first's write is held.
        const deadline = Date.now() + 3000;
        while (server.stats('*').reportRequests < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        expect(server.stats('*').reportRequests, 'reports fetched while the first write was held').to.equal(4);
        await holder.query('commit');
        const { exitCode, summary } = await running;
        expect(exitCode).to.equal(0);
        expect(summary).to.deep.include({ integrationsChecked: 3, synced: 3, failed: 0 });
        expect(server.stats('*').maxInFlight, 'one integration fetching at once: its two reports at most').to.be.at.most(2);
        for (const i of all) expect(await periods(i.companyId)).to.have.length(25);
      } finally {
        await holder.end();
      }
    });

    it('bounds the results list at 100', async () => {
      const rows = [];
      for (let n = 0; n < 101; n++) rows.push(await aCompany(db().knex));
      await db().knex('quickbooks_integrations').insert(rows.map((c, n) => ({
        id: `bulk_${n}`, company_id: c.id, realm_id: `r${n}`, access_token: 'enc:v1:x:y:z', refresh_token: 'enc:v1:x:y:z',
        access_token_expires_at: NOW, refresh_token_expires_at: NOW, last_sync_at: NOW,
      })));
      const { summary } = await run({ dryRun: true });
      expect(summary).to.deep.include({ integrationsChecked: 101, skipped: 101, resultsTruncated: true });
      expect(summary.results).to.have.length(100);
    });
  });
});
