/**
 * Real QuickBooks books (issue 13, part 4): the eleven ProfitAndLoss and BalanceSheet
 * responses of other people's QuickBooks Online companies in
 * ../shared/reference/quickbooks/real/ (US, Canadian and Australian editions), each
 * served by the loopback Intuit with its rows exactly as sent, through the
 * sync job against real PostgreSQL. Only the period columns' dates are changed, to
 * months (the header's period of a one-column `Total` report, the StartDate/EndDate
 * of a report by days), because the sync asks for monthly columns.
 *
 * The rule: a stored figure is the report's own total, or null; never another
 * number. The expected figures are the totals SOURCES.md lists for each file (the
 * `Summary` strings a reader sees). A file that cannot be read (the SDK-wrapped
 * report with no amounts) is a handled sync failure with its signal, nothing written.
 *
 * The files are reference data, read at run time and never copied into the project;
 * without ../shared the suite is skipped with a message.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import syncJob from '../../jobs/sync-quickbooks.ts';
import { parseBalanceSheet, type QboReport, type QboRow } from '../../lib/quickbooks/report-parser.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { backends, createTestDb, type TestDb } from '../support/db.ts';
import { ROOT, runInProcess } from '../support/run.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv, type TestIntegration } from './support.ts';

const REAL = path.resolve(ROOT, '../shared/reference/quickbooks/real');

type Report = { Header?: Record<string, unknown>; Columns?: { Column?: Array<{ MetaData?: Array<{ Name?: string; Value?: string }> }> } };

/** A month's first and last day. */
const month = (ym: string) => ({ start: `${ym}-01`, end: new Date(Date.UTC(Number(ym.slice(0, 4)), Number(ym.slice(5, 7)), 0)).toISOString().slice(0, 10) });

/**
 * The file's text with only its period dates moved to months: `months[i]` for the
 * i-th dated column, or the header's period when the report has one `Total` column.
 * Everything else (rows, amounts, labels, groups, the SDK's wrapper) is kept.
 */
function asMonthly(file: string, months: string[]): string {
  const json = JSON.parse(fs.readFileSync(path.join(REAL, file), 'utf8')) as Report & { Report?: Report };
  const report = json.Report ?? json;
  let dated = 0;
  for (const column of report.Columns?.Column ?? []) {
    const meta = column.MetaData ?? [];
    const start = meta.find((m) => m.Name === 'StartDate');
    const end = meta.find((m) => m.Name === 'EndDate');
    if (!start || !end) continue;
    const m = month(months[dated++]!);
    start.Value = m.start;
    end.Value = m.end;
  }
  if (report.Header) {
    report.Header.StartPeriod = month(months[0]!).start;
    report.Header.EndPeriod = month(months.at(-1)!).end;
  }
  return JSON.stringify(json);
}

type Figures = Partial<Record<'revenue' | 'cogs' | 'gross_profit' | 'operating_expenses' | 'ebitda' | 'net_income' | 'total_assets' | 'total_liabilities' | 'equity' | 'cash', string | null>>;

/** What SOURCES.md says a reader sees, per file: the totals as written there (null: the file has no such total). */
const PNL: Record<string, Figures> = {
  // AU: "Total Cost of Sales", "Net Earnings" (negative), no NetOperatingIncome section.
  'bitframe-profitandloss-1.json': { revenue: '55171.17', cogs: '40638.73', gross_profit: '14532.44', operating_expenses: '18501.21', net_income: '-3968.77' },
  'monily-profitandloss-1.json': { revenue: '674842.00', cogs: null, gross_profit: '674842.00', operating_expenses: '1038968.38', net_income: '-364126.38' },
  'monily-profitandloss-2.json': { revenue: '674842.00', cogs: null, gross_profit: '674842.00', operating_expenses: '1078078.99', net_income: '-403236.99' },
};
const BS: Record<string, Figures> = {
  // AU: NetAssets "Total Assets", TotalShareHoldersEquityNode; no liabilities total (current and non-current only), no bank-accounts total.
  'bitframe-balancesheet-1.json': { total_assets: '80262.50', total_liabilities: null, equity: '31287.12', cash: null },
  'bitframe-balancesheet-2.json': { total_assets: '24742.44', total_liabilities: '31548.42', equity: '-6805.98', cash: '2150.55' },
  'monily-balancesheet-1.json': { total_assets: '-259951.15', total_liabilities: '67472.38', equity: '-327423.53', cash: '-409131.15' },
  'posterminal-balancesheet-1.json': { total_assets: '23436.29', total_liabilities: '31131.33', equity: '-7695.04', cash: '2001.00' },
  // CA (IFRS): "Total Cash and Cash Equivalent", Current Assets as OtherCurrentAssets.
  'qbdecoder-balancesheet-1.json': { total_assets: '102633.58', total_liabilities: '185636.14', equity: '-83002.56', cash: '2330.75' },
  'qbdecoder-balancesheet-2.json': { total_assets: '101719.63', total_liabilities: '189057.01', equity: '-87337.38', cash: '1416.80' },
};

/** Each integration: a ProfitAndLoss and a BalanceSheet file (a file may serve twice), and the month the sync sees. */
const BOOKS: Array<{ pnl: string; bs: string; note: string }> = [
  { pnl: 'bitframe-profitandloss-1.json', bs: 'bitframe-balancesheet-1.json', note: 'one Australian company' },
  { pnl: 'monily-profitandloss-2.json', bs: 'monily-balancesheet-1.json', note: 'one US company, two days apart' },
  { pnl: 'monily-profitandloss-1.json', bs: 'posterminal-balancesheet-1.json', note: 'US' },
  { pnl: 'monily-profitandloss-1.json', bs: 'qbdecoder-balancesheet-1.json', note: 'a Canadian balance sheet' },
  { pnl: 'bitframe-profitandloss-1.json', bs: 'qbdecoder-balancesheet-2.json', note: 'a Canadian balance sheet' },
];
const MONTH = '2026-02';

describe('real QuickBooks books through sync-quickbooks (PostgreSQL)', function () {
  this.timeout(60_000);
  let t: TestDb | undefined;
  let server: LoopbackQuickBooks;
  before(async function () {
    if (!fs.existsSync(path.join(REAL, 'SOURCES.md'))) {
      console.warn(`      (skipped: the real QuickBooks books are not at ${REAL}; they are read from ../shared at run time, never copied into the project)`);
      this.skip();
    }
    if (!backends().includes('postgres')) this.skip();
    t = await createTestDb('postgres');
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(async () => {
    await t!.truncate();
    server = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  });
  afterEach(() => server.close());

  const serve = async (pnl: string, bs: string, pnlMonths: string[], bsMonths: string[]): Promise<TestIntegration> => {
    const i = await anIntegration(t!.knex, server);
    server.behave(i.realmId, { reports: { ProfitAndLoss: asMonthly(pnl, pnlMonths), BalanceSheet: asMonthly(bs, bsMonths) } });
    return i;
  };
  const stored = async (companyId: string) =>
    t!.knex('financial_periods').where({ company_id: companyId }).orderBy('period_start')
      .select(t!.knex.raw(`to_char(period_start, 'YYYY-MM') as month`), 'revenue', 'cogs', 'gross_profit', 'operating_expenses', 'ebitda', 'net_income', 'total_assets', 'total_liabilities', 'equity', 'cash', 'source');

  it("stores each report's own totals, or null where the report has none: US, Canadian and Australian books", async () => {
    const synced = [];
    for (const b of BOOKS) synced.push({ ...b, integration: await serve(b.pnl, b.bs, [MONTH], [MONTH]) });
    const run = await runInProcess(syncJob, { force: true }, { database: t!.database, env: qbEnv(server) });
    expect(run.exitCode, JSON.stringify(run.summary)).to.equal(0);
    expect(run.summary).to.include({ synced: BOOKS.length, failed: 0, errors: 0 });
    for (const b of synced) {
      const rows = await stored(b.integration.companyId);
      expect(rows, `${b.pnl} + ${b.bs}`).to.have.length(1);
      const [row] = rows;
      expect(row, `${b.pnl} + ${b.bs} (${b.note})`).to.deep.include({ month: MONTH, source: 'QUICKBOOKS', ...PNL[b.pnl], ...BS[b.bs] });
    }
  });

  it('EBITDA is the net operating income (the report\'s, or gross profit less expenses where the AU edition has no such section) plus the depreciation and amortization rows', async () => {
    const au = await serve('bitframe-profitandloss-1.json', 'bitframe-balancesheet-1.json', [MONTH], [MONTH]);
    const us = await serve('monily-profitandloss-2.json', 'monily-balancesheet-1.json', [MONTH], [MONTH]);
    await runInProcess(syncJob, { force: true }, { database: t!.database, env: qbEnv(server) });
    // AU: 14532.44 - 18501.21, plus its one "Depreciation" expense row (299.97).
    expect((await stored(au.companyId))[0]).to.include({ ebitda: '-3668.80' });
    // US: its NetOperatingIncome total; no depreciation row.
    expect((await stored(us.companyId))[0]).to.include({ ebitda: '-403236.99' });
  });

  it('a report by days (two period columns, "" totals, a Total column): each column is its month, "" stays null, the Total column is not a month', async () => {
    const i = await serve('singer-tapqb-profitandloss-1.json', 'bitframe-balancesheet-2.json', ['2026-01', MONTH], [MONTH]);
    const run = await runInProcess(syncJob, { force: true }, { database: t!.database, env: qbEnv(server) });
    expect(run.summary).to.include({ synced: 1 });
    const rows = await stored(i.companyId);
    const none = { revenue: null, cogs: null, operating_expenses: null };
    const zero = { gross_profit: '0.00', ebitda: '0.00', net_income: '0.00' };
    expect(rows.map((r: Record<string, unknown>) => r.month)).to.deep.equal(['2026-01', MONTH]);
    expect(rows[0]).to.deep.include({ ...none, ...zero, total_assets: null, total_liabilities: null, equity: null, cash: null });
    expect(rows[1]).to.deep.include({ ...none, ...zero, ...BS['bitframe-balancesheet-2.json'] });
  });

  it('a NetAssets section is total assets only when it says so: labelled "Net assets" (a UK-style layout: assets less liabilities) it is left null', () => {
    // The Australian file, its NetAssets Summary label changed (a variant, not a real file).
    const report = JSON.parse(asMonthly('bitframe-balancesheet-1.json', [MONTH])) as QboReport;
    const [figures] = parseBalanceSheet(report).map((c) => c.figures);
    expect(figures!.totalAssets?.toFixed(2)).to.equal('80262.50');
    const netAssets = report.Rows!.Row!.find((r: QboRow) => r.group === 'NetAssets')!;
    netAssets.Summary!.ColData![0]!.value = 'Net assets';
    expect(parseBalanceSheet(report)[0]!.figures.totalAssets).to.equal(null);
  });

  it('the SDK-wrapped report with no amounts is a handled sync failure with its signal, and nothing is written', async () => {
    const i = await serve('monily-profitandloss-2.json', 'intuit-phpsdk-balancesheet-1.json', [MONTH], [MONTH]);
    const run = await runInProcess(syncJob, { force: true }, { database: t!.database, env: qbEnv(server) });
    expect(run.exitCode, JSON.stringify(run.summary)).to.equal(0);
    expect(run.summary).to.include({ synced: 0, failed: 1, errors: 0 });
    expect(await stored(i.companyId)).to.deep.equal([]);
    const row = await t!.knex('quickbooks_integrations').where({ id: i.id }).first();
    expect(row).to.include({ last_sync_status: 'FAILED' });
    expect(row.last_sync_error).to.match(/BalanceSheet report has no Rows/);
    const signals = await t!.knex('signals').where({ company_id: i.companyId });
    expect(signals.map((s: Record<string, unknown>) => [s.event_type, s.severity, s.title])).to.deep.equal([['quickbooks_sync_failed', 'MEDIUM', 'QuickBooks sync failed']]);
  });
});
