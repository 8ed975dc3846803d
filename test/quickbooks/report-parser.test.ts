import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { QuickBooksParseError } from '../../lib/quickbooks/errors.ts';
import { monthlyFigures, parseBalanceSheet, parseProfitAndLoss, periodColumns, type QboReport } from '../../lib/quickbooks/report-parser.ts';
import { ROOT } from '../support/run.ts';

const fixture = (name: string): QboReport => JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/quickbooks', name), 'utf8')) as QboReport;
const s = (d: { toFixed(n: number): string } | null) => (d === null ? null : d.toFixed(2));
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('QuickBooks report parser', () => {
  describe('on the real samples (converted from Intuit XML)', () => {
    it('reads the ProfitAndLoss sections by group, nested sub-accounts included', () => {
      const [col, ...rest] = parseProfitAndLoss(fixture('profit_and_loss_total_column.json'));
      expect(rest).to.have.length(0);
      // The only Money column has no dates: it covers the header's period.
      expect(col).to.include({ start: '2014-01-01', end: '2014-01-14', index: 1 });
      const f = col!.figures;
      expect(s(f.revenue)).to.equal('277475.00');
      expect(s(f.cogs)).to.equal('2500.00');
      expect(s(f.grossProfit)).to.equal('274975.00');
      expect(s(f.operatingExpenses)).to.equal('2900.00');
      expect(s(f.netOperatingIncome)).to.equal('272075.00');
      expect(s(f.netIncome)).to.equal('303775.00');
      // No depreciation or amortization rows: EBITDA = Net Operating Income.
      expect(s(f.ebitda)).to.equal('272075.00');
    });

    it('maps the BalanceSheet columns by StartDate/EndDate metadata, not by title', () => {
      const report = fixture('balance_sheet_multi_column_by_year.json');
      const cols = parseBalanceSheet(report);
      expect(cols.map((c) => [c.start, c.end])).to.deep.equal([['2013-07-04', '2013-12-31'], ['2014-01-01', '2014-12-31'], ['2015-01-01', '2015-06-21']]);
      const last = cols[2]!.figures;
      expect(s(last.totalAssets)).to.equal('23470.29');
      expect(s(last.totalLiabilities)).to.equal('31131.33');
      expect(s(last.equity)).to.equal('-7661.04');
      expect(s(last.cash)).to.equal('2020.99');
      expect(s(cols[0]!.figures.cash)).to.equal('19.99');
      // Titles are ignored: scrambling them changes nothing.
      const scrambled = clone(report);
      for (const c of scrambled.Columns!.Column!) c.ColTitle = 'Total';
      expect(parseBalanceSheet(scrambled).map((c) => s(c.figures.totalAssets))).to.deep.equal(cols.map((c) => s(c.figures.totalAssets)));
    });

    it('reads the one-column BalanceSheet', () => {
      const [col] = parseBalanceSheet(fixture('balance_sheet_total_column.json'));
      expect(col).to.include({ start: '2014-01-01', end: '2014-12-18' });
      expect(s(col!.figures.totalAssets)).to.equal('23436.29');
      expect(s(col!.figures.totalLiabilities)).to.equal('31131.33');
      expect(s(col!.figures.equity)).to.equal('-7695.04');
      expect(s(col!.figures.cash)).to.equal('2001.00');
    });
  });

  describe('on hand-made monthly edge cases', () => {
    const report = fixture('profit_and_loss_monthly_edge_cases.json');

    it('skips the account and total columns and keys months by metadata', () => {
      expect(periodColumns(report).map((c) => [c.index, c.start])).to.deep.equal([[1, '2026-01-01'], [2, '2026-02-01'], [3, '2026-03-01']]);
    });

    it('computes Gross Profit and Net Operating Income when their sections are absent', () => {
      const [jan, , mar] = parseProfitAndLoss(report).map((c) => c.figures);
      expect(s(jan!.revenue)).to.equal('1300.10');
      expect(s(jan!.grossProfit)).to.equal('900.10');
      expect(s(jan!.netOperatingIncome)).to.equal('495.10');
      expect(s(jan!.netIncome)).to.equal('485.10');
      // Negative amounts (a refund, a credit) are kept exactly.
      expect(s(mar!.revenue)).to.equal('450.00');
      expect(s(mar!.netOperatingIncome)).to.equal('-90.00');
      expect(s(mar!.netIncome)).to.equal('-100.00');
    });

    it('adds back depreciation (a sub-account section) and amortization (a row nested in another section) for EBITDA', () => {
      const [jan, , mar] = parseProfitAndLoss(report).map((c) => c.figures);
      expect(s(jan!.depreciationAndAmortization)).to.equal('95.00');
      expect(s(jan!.ebitda)).to.equal('590.10');
      expect(s(mar!.ebitda)).to.equal('5.00');
    });

    it('treats "" as no amount: a month with no activity has no P&L figures', () => {
      const feb = parseProfitAndLoss(report)[1]!.figures;
      expect(Object.values(feb).every((v) => v === null)).to.equal(true);
    });

    it('finds sections at any depth', () => {
      const deep = clone(report);
      // Wrap the whole P&L two levels deeper: groups are still found.
      deep.Rows = { Row: [{ type: 'Section', Rows: { Row: [{ type: 'Section', Rows: deep.Rows } as never] } }] };
      expect(s(parseProfitAndLoss(deep)[0]!.figures.revenue)).to.equal('1300.10');
    });

    it('keeps decimals exact (no binary floating point)', () => {
      const r = clone(report);
      const income = r.Rows!.Row![0]!;
      income.Summary!.ColData![1]!.value = '0.10';
      r.Rows!.Row![1]!.Summary!.ColData![1]!.value = '0.20';
      expect(s(parseProfitAndLoss(r)[0]!.figures.grossProfit)).to.equal('-0.10');
      income.Summary!.ColData![1]!.value = '12345678901234.11';
      r.Rows!.Row![1]!.Summary!.ColData![1]!.value = '0.22';
      expect(parseProfitAndLoss(r)[0]!.figures.grossProfit!.toFixed(2)).to.equal('12345678901233.89');
    });

    it('joins monthly ProfitAndLoss and BalanceSheet columns into calendar months', () => {
      const bs: QboReport = {
        Header: { ReportName: 'BalanceSheet' },
        Columns: { Column: [{ ColType: 'Account' }, ...['01', '02', '03'].map((m) => ({ ColType: 'Money', MetaData: [{ Name: 'StartDate', Value: `2026-${m}-01` }, { Name: 'EndDate', Value: m === '02' ? '2026-02-28' : `2026-${m}-31` }] }))] },
        Rows: { Row: [{ type: 'Section', group: 'TotalAssets', Summary: { ColData: [{ value: 'TOTAL ASSETS' }, { value: '10.00' }, { value: '11.00' }, { value: '12.00' }] } }] },
      };
      const months = monthlyFigures(report, bs);
      expect(months.map((m) => [m.periodStart, m.periodEnd])).to.deep.equal([['2026-01-01', '2026-01-31'], ['2026-02-01', '2026-02-28'], ['2026-03-01', '2026-03-31']]);
      expect(s(months[1]!.revenue)).to.equal(null);
      expect(s(months[1]!.totalAssets)).to.equal('11.00');
      expect(s(months[0]!.totalLiabilities)).to.equal(null);
    });
  });

  describe('errors', () => {
    it('throws QuickBooksParseError on a bad amount, a report without columns, or a column longer than a month', () => {
      const r = clone(fixture('profit_and_loss_monthly_edge_cases.json'));
      r.Rows!.Row![0]!.Summary!.ColData![1]!.value = '1,300.10';
      expect(() => parseProfitAndLoss(r)).to.throw(QuickBooksParseError, /not a decimal/);
      expect(() => parseProfitAndLoss({ Header: { ReportName: 'ProfitAndLoss' }, Rows: {} })).to.throw(QuickBooksParseError, /no Columns/);
      const yearly = fixture('balance_sheet_multi_column_by_year.json');
      expect(() => monthlyFigures(fixture('profit_and_loss_monthly_edge_cases.json'), yearly)).to.throw(QuickBooksParseError, /not one month/);
      expect(() => parseBalanceSheet(fixture('profit_and_loss_total_column.json'))).to.throw(QuickBooksParseError, /expected a BalanceSheet/);
    });

    it('throws QuickBooksParseError, never a TypeError, on a report that breaks the documented shape', () => {
      const base = fixture('profit_and_loss_monthly_edge_cases.json');
      const breakers: Array<(r: QboReport) => void> = [
        (r) => void (r.Columns!.Column = [null as never]),
        (r) => void (r.Columns!.Column![1]!.MetaData = 'x' as never),
        (r) => void (r.Rows!.Row = 5 as never),
        (r) => void (r.Rows!.Row![0]!.Summary!.ColData![1]!.value = 1300.1 as never),
        (r) => void (r.Rows!.Row![0]!.Rows!.Row![0] = null as never),
      ];
      for (const breakIt of breakers) {
        const r = clone(base);
        breakIt(r);
        expect(() => parseProfitAndLoss(r)).to.throw(QuickBooksParseError);
      }
    });
  });
});
