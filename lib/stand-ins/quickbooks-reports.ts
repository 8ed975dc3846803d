/**
 * The loopback QuickBooks' report generator (quickbooks-server.ts): ProfitAndLoss and BalanceSheet in
 * Intuit's JSON report shape, one Money column per month (StartDate/EndDate/ColKey
 * metadata) plus the last Total column of a multi-month ProfitAndLoss, nested
 * sections with `group`, `""` for no amount. Figures depend only on (realm, month),
 * so any date range gives the same month the same numbers; now and then a month
 * has no activity at all.
 */
import crypto from 'node:crypto';
import type { QboColData, QboReport, QboRow } from '../quickbooks/report-parser.ts';

/** Calendar months touched by start..end, with each column's clipped dates. */
export function monthColumns(start: string, end: string): Array<{ key: string; start: string; end: string; title: string }> {
  const out: Array<{ key: string; start: string; end: string; title: string }> = [];
  let y = Number(start.slice(0, 4));
  let m = Number(start.slice(5, 7));
  for (;;) {
    const first = `${y}-${String(m).padStart(2, '0')}-01`;
    if (first > end) break;
    const last = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
    const colStart = first < start ? start : first;
    const colEnd = last > end ? end : last;
    out.push({ key: first.slice(0, 7), start: colStart, end: colEnd, title: `${MONTHS[m - 1]} ${y}` });
    m++;
    if (m > 12) {
      m = 1;
      y++;
    }
  }
  return out;
}
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A seeded number in [0, 1) for (realm, month, what). */
function unit(realmId: string, month: string, what: string): number {
  return crypto.createHash('sha256').update(`${realmId}|${month}|${what}`).digest().readUInt32BE(0) / 2 ** 32;
}
function cents(realmId: string, month: string, what: string, low: number, high: number): number {
  return Math.round((low + unit(realmId, month, what) * (high - low)) * 100);
}
const money = (c: number): string => {
  const sign = c < 0 ? '-' : '';
  const a = Math.abs(c);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
};

/** One month's ledger lines, in cents. */
export function monthLedger(realmId: string, month: string, adjustments: Record<string, number> = {}) {
  const scale = 0.5 + unit(realmId, 'scale', 'size') * 4;
  const quiet = unit(realmId, month, 'quiet') < 0.04; // now and then a month with no activity
  const c = (what: string, low: number, high: number) => (quiet ? 0 : cents(realmId, month, what, low * scale, high * scale));
  const productSales = c('product', 20_000, 60_000) + (adjustments[month] ?? 0);
  const consulting = c('consulting', 5_000, 25_000);
  const training = c('training', 0, 4_000);
  const materials = c('materials', 6_000, 18_000);
  const advertising = c('advertising', 500, 4_000);
  const rent = c('rent', 3_000, 3_000);
  const wages = c('wages', 8_000, 14_000);
  const payrollTaxes = Math.round(wages * 0.0765);
  const depreciation = c('depreciation', 400, 400);
  const amortization = c('amortization', 150, 150);
  const interestIncome = c('interest', 0, 300);
  const interestExpense = c('interestExp', 100, 600);
  return { quiet, productSales, consulting, training, materials, advertising, rent, wages, payrollTaxes, depreciation, amortization, interestIncome, interestExpense };
}

type Cell = (month: string) => number | null;

/** A ProfitAndLoss report for start..end, by month. */
export function profitAndLossReport(realmId: string, start: string, end: string, basis: string, adjustments: Record<string, number>): QboReport {
  const cols = monthColumns(start, end);
  const L = memo((month: string) => monthLedger(realmId, month, adjustments));
  // With several months Intuit adds a last Total column; the parser must skip it.
  const cells = (f: Cell): QboColData[] => {
    const months = cols.map((k) => cell(f(k.key), L(k.key).quiet));
    if (cols.length < 2) return months;
    const total = cols.reduce((sum, k) => sum + (L(k.key).quiet ? 0 : (f(k.key) ?? 0)), 0);
    return [...months, cell(total, false)];
  };
  const line = (name: string, id: string, f: Cell): QboRow => ({ ColData: [{ value: name, id }, ...cells(f)], type: 'Data' });
  const summary = (name: string, f: Cell) => ({ ColData: [{ value: name }, ...cells(f)] });
  const header = (name: string, id?: string) => ({ ColData: [{ value: name, ...(id ? { id } : {}) }, ...cols.map(() => ({ value: '' })), ...(cols.length > 1 ? [{ value: '' }] : [])] });
  const income = (m: string) => L(m).productSales + L(m).consulting + L(m).training;
  const cogs = (m: string) => L(m).materials;
  const payroll = (m: string) => L(m).wages + L(m).payrollTaxes;
  const expenses = (m: string) => L(m).advertising + L(m).rent + payroll(m) + L(m).depreciation + L(m).amortization;
  const noi = (m: string) => income(m) - cogs(m) - expenses(m);
  const netOther = (m: string) => L(m).interestIncome - L(m).interestExpense;
  return {
    Header: reportHeader('ProfitAndLoss', start, end, basis),
    Columns: columns(cols, true),
    Rows: {
      Row: [
        {
          Header: header('Income'),
          Rows: {
            Row: [
              line('Sales of Product Income', '4', (m) => L(m).productSales),
              {
                Header: header('Services', '1'),
                Rows: { Row: [line('Consulting', '43', (m) => L(m).consulting), line('Training', '44', (m) => L(m).training)] },
                Summary: summary('Total Services', (m) => L(m).consulting + L(m).training),
                type: 'Section',
              },
            ],
          },
          Summary: summary('Total Income', income),
          type: 'Section',
          group: 'Income',
        },
        { Header: header('Cost of Goods Sold'), Rows: { Row: [line('Cost of Goods Sold', '5', cogs)] }, Summary: summary('Total Cost of Goods Sold', cogs), type: 'Section', group: 'COGS' },
        { Summary: summary('Gross Profit', (m) => income(m) - cogs(m)), type: 'Section', group: 'GrossProfit' },
        {
          Header: header('Expenses'),
          Rows: {
            Row: [
              line('Advertising', '11', (m) => L(m).advertising),
              line('Rent or Lease', '17', (m) => L(m).rent),
              {
                Header: header('Payroll Expenses', '20'),
                Rows: { Row: [line('Wages', '21', (m) => L(m).wages), line('Taxes', '22', (m) => L(m).payrollTaxes)] },
                Summary: summary('Total Payroll Expenses', payroll),
                type: 'Section',
              },
              line('Depreciation Expense', '30', (m) => L(m).depreciation),
              line('Amortization Expense', '31', (m) => L(m).amortization),
            ],
          },
          Summary: summary('Total Expenses', expenses),
          type: 'Section',
          group: 'Expenses',
        },
        { Summary: summary('Net Operating Income', noi), type: 'Section', group: 'NetOperatingIncome' },
        { Header: header('Other Income'), Rows: { Row: [line('Interest Earned', '29', (m) => L(m).interestIncome)] }, Summary: summary('Total Other Income', (m) => L(m).interestIncome), type: 'Section', group: 'OtherIncome' },
        { Header: header('Other Expenses'), Rows: { Row: [line('Interest Expense', '32', (m) => L(m).interestExpense)] }, Summary: summary('Total Other Expenses', (m) => L(m).interestExpense), type: 'Section', group: 'OtherExpenses' },
        { Summary: summary('Net Other Income', netOther), type: 'Section', group: 'NetOtherIncome' },
        { Summary: summary('Net Income', (m) => noi(m) + netOther(m)), type: 'Section', group: 'NetIncome' },
      ],
    },
  };
}

/** A BalanceSheet report for start..end, by month (balances at each column's end). */
export function balanceSheetReport(realmId: string, start: string, end: string, basis: string, adjustments: Record<string, number>): QboReport {
  const cols = monthColumns(start, end);
  // Balances at each month's end: an opening position plus the months' results so far this generator knows of.
  const position = memo((m: string) => {
    const base = monthLedger(realmId, 'opening', {});
    const l = monthLedger(realmId, m, adjustments);
    const checking = 2 * base.productSales + (l.productSales - l.materials) * 0.5;
    const savings = base.consulting * 3;
    const ar = l.consulting + l.training;
    const equipment = base.wages * 4;
    const ap = l.materials;
    const loan = base.rent * 10;
    const assets = Math.round(checking) + savings + ar + equipment;
    const liabilities = ap + loan;
    const retained = assets - liabilities - base.advertising - (l.productSales - l.materials - l.rent);
    return { checking: Math.round(checking), savings, ar, equipment, ap, loan, assets, liabilities, capital: base.advertising, retained, netIncome: l.productSales - l.materials - l.rent };
  });
  const line = (name: string, id: string, f: Cell): QboRow => ({ ColData: [{ value: name, id }, ...cols.map((k) => cell(f(k.key), false))], type: 'Data' });
  const summary = (name: string, f: Cell) => ({ ColData: [{ value: name }, ...cols.map((k) => cell(f(k.key), false))] });
  const header = (name: string) => ({ ColData: [{ value: name }, ...cols.map(() => ({ value: '' }))] });
  const P = position;
  return {
    Header: reportHeader('BalanceSheet', start, end, basis),
    Columns: columns(cols, false),
    Rows: {
      Row: [
        {
          Header: header('ASSETS'),
          Rows: {
            Row: [
              {
                Header: header('Current Assets'),
                Rows: {
                  Row: [
                    { Header: header('Bank Accounts'), Rows: { Row: [line('Checking', '35', (m) => P(m).checking), line('Savings', '36', (m) => P(m).savings)] }, Summary: summary('Total Bank Accounts', (m) => P(m).checking + P(m).savings), type: 'Section', group: 'BankAccounts' },
                    { Header: header('Accounts Receivable'), Rows: { Row: [line('Accounts Receivable (A/R)', '84', (m) => P(m).ar)] }, Summary: summary('Total Accounts Receivable', (m) => P(m).ar), type: 'Section', group: 'AR' },
                  ],
                },
                Summary: summary('Total Current Assets', (m) => P(m).checking + P(m).savings + P(m).ar),
                type: 'Section',
                group: 'CurrentAssets',
              },
              { Header: header('Fixed Assets'), Rows: { Row: [line('Equipment', '37', (m) => P(m).equipment)] }, Summary: summary('Total Fixed Assets', (m) => P(m).equipment), type: 'Section', group: 'FixedAssets' },
            ],
          },
          Summary: summary('TOTAL ASSETS', (m) => P(m).assets),
          type: 'Section',
          group: 'TotalAssets',
        },
        {
          Header: header('LIABILITIES AND EQUITY'),
          Rows: {
            Row: [
              {
                Header: header('Liabilities'),
                Rows: {
                  Row: [
                    {
                      Header: header('Current Liabilities'),
                      Rows: { Row: [{ Header: header('Accounts Payable'), Rows: { Row: [line('Accounts Payable (A/P)', '33', (m) => P(m).ap)] }, Summary: summary('Total Accounts Payable', (m) => P(m).ap), type: 'Section', group: 'AP' }] },
                      Summary: summary('Total Current Liabilities', (m) => P(m).ap),
                      type: 'Section',
                      group: 'CurrentLiabilities',
                    },
                    { Header: header('Long-Term Liabilities'), Rows: { Row: [line('Notes Payable', '44', (m) => P(m).loan)] }, Summary: summary('Total Long-Term Liabilities', (m) => P(m).loan), type: 'Section', group: 'LongTermLiabilities' },
                  ],
                },
                Summary: summary('Total Liabilities', (m) => P(m).liabilities),
                type: 'Section',
                group: 'Liabilities',
              },
              {
                Header: header('Equity'),
                Rows: { Row: [line('Opening Balance Equity', '34', (m) => P(m).capital), line('Retained Earnings', '2', (m) => P(m).retained), line('Net Income', '', (m) => P(m).netIncome)] },
                Summary: summary('Total Equity', (m) => P(m).assets - P(m).liabilities),
                type: 'Section',
                group: 'Equity',
              },
            ],
          },
          Summary: summary('TOTAL LIABILITIES AND EQUITY', (m) => P(m).assets),
          type: 'Section',
          group: 'TotalLiabilitiesAndEquity',
        },
      ],
    },
  };
}

/** Caches a one-argument function for the life of one report. */
function memo<T>(f: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = f(key)));
    return v;
  };
}

function cell(c: number | null, quiet: boolean): QboColData {
  // A month with no activity shows empty amounts, as Intuit's reports do.
  return { value: c === null || quiet ? '' : money(c) };
}

function reportHeader(name: string, start: string, end: string, basis: string): QboReport['Header'] {
  return {
    Time: new Date().toISOString(),
    ReportName: name,
    ReportBasis: basis,
    StartPeriod: start,
    EndPeriod: end,
    SummarizeColumnsBy: 'Month',
    Currency: 'USD',
    Option: [{ Name: 'AccountingStandard', Value: 'GAAP' }, { Name: 'NoReportData', Value: 'false' }],
  };
}

function columns(cols: Array<{ key: string; start: string; end: string; title: string }>, withTotal: boolean): QboReport['Columns'] {
  return {
    Column: [
      { ColTitle: '', ColType: 'Account', MetaData: [{ Name: 'ColKey', Value: 'account' }] },
      ...cols.map((k) => ({ ColTitle: k.title, ColType: 'Money', MetaData: [{ Name: 'StartDate', Value: k.start }, { Name: 'EndDate', Value: k.end }, { Name: 'ColKey', Value: k.key }] })),
      ...(withTotal && cols.length > 1 ? [{ ColTitle: 'Total', ColType: 'Money', MetaData: [{ Name: 'ColKey', Value: 'total' }] }] : []),
    ],
  };
}
