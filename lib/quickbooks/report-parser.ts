/**
 * Reads Intuit's JSON report shape (ProfitAndLoss, BalanceSheet): `Columns.Column[]`
 * and `Rows.Row[]` of nested `Section` rows (any depth) with a `group`, a `Header`,
 * `Rows` and a `Summary` whose `ColData[i]` lines up with `Columns.Column[i]`.
 *
 * Columns are mapped by their `StartDate`/`EndDate` metadata, never by title; the
 * account column and the total column are skipped. Amounts are decimal strings kept
 * exact with decimal.js; `""` means no amount (null), never zero.
 */
import { Decimal } from 'decimal.js';
import { QuickBooksParseError } from './errors.ts';

export interface QboColData {
  value?: string;
  id?: string;
}
export interface QboRow {
  type?: string;
  group?: string;
  Header?: { ColData?: QboColData[] };
  Rows?: { Row?: QboRow[] };
  Summary?: { ColData?: QboColData[] };
  ColData?: QboColData[];
}
export interface QboColumn {
  ColTitle?: string;
  ColType?: string;
  MetaData?: Array<{ Name?: string; Value?: string }>;
}
export interface QboReport {
  Header?: { ReportName?: string; StartPeriod?: string; EndPeriod?: string; SummarizeColumnsBy?: string; Currency?: string; [k: string]: unknown };
  Columns?: { Column?: QboColumn[] };
  Rows?: { Row?: QboRow[] };
}

/** A period column of a report: its position in ColData and the dates it covers. */
export interface PeriodColumn {
  index: number;
  /** 'YYYY-MM-DD' */
  start: string;
  /** 'YYYY-MM-DD' */
  end: string;
}

export interface ProfitAndLossFigures {
  revenue: Decimal | null;
  cogs: Decimal | null;
  grossProfit: Decimal | null;
  operatingExpenses: Decimal | null;
  netOperatingIncome: Decimal | null;
  depreciationAndAmortization: Decimal | null;
  ebitda: Decimal | null;
  netIncome: Decimal | null;
}

export interface BalanceSheetFigures {
  totalAssets: Decimal | null;
  totalLiabilities: Decimal | null;
  equity: Decimal | null;
  cash: Decimal | null;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const AMOUNT = /^-?\d+(\.\d+)?$/;

/** The period columns, by metadata. A report of one Money column without dates covers the header's period. */
export function periodColumns(report: QboReport): PeriodColumn[] {
  return guard('QuickBooks', () => readPeriodColumns(report));
}

function readPeriodColumns(report: QboReport): PeriodColumn[] {
  const columns = report.Columns?.Column;
  if (!Array.isArray(columns) || columns.length === 0) throw new QuickBooksParseError(`${reportName(report)} report has no Columns`);
  const out: PeriodColumn[] = [];
  const undated: number[] = [];
  const totals: number[] = [];
  columns.forEach((column, index) => {
    if (column.ColType !== 'Money') return; // the Account column, and anything that is not an amount
    const meta = new Map((column.MetaData ?? []).map((m) => [m.Name, m.Value]));
    if (meta.get('ColKey') === 'total') return void totals.push(index);
    const start = meta.get('StartDate');
    const end = meta.get('EndDate');
    if (start === undefined || end === undefined) return void undated.push(index);
    if (!DATE.test(start) || !DATE.test(end)) throw new QuickBooksParseError(`${reportName(report)} column ${index} has bad StartDate/EndDate metadata`);
    out.push({ index, start, end });
  });
  if (out.length === 0 && undated.length + totals.length === 1) {
    // summarize_column_by=Total: the only amount column (Intuit keys it `total`)
    // covers the report's period. With dated columns, a `total` column is their sum
    // and is skipped.
    const start = report.Header?.StartPeriod;
    const end = report.Header?.EndPeriod;
    if (typeof start === 'string' && typeof end === 'string' && DATE.test(start) && DATE.test(end)) out.push({ index: (undated[0] ?? totals[0])!, start, end });
  }
  if (out.length === 0) throw new QuickBooksParseError(`${reportName(report)} report has no period columns (no StartDate/EndDate metadata)`);
  return out;
}

/** The first section with this `group`, searched depth-first through every level. */
export function findSection(report: QboReport, ...groups: string[]): QboRow | undefined {
  for (const group of groups) {
    const found = search(report.Rows?.Row ?? [], group);
    if (found) return found;
  }
  return undefined;
}

function search(rows: QboRow[], group: string): QboRow | undefined {
  for (const row of rows) {
    if (row.group === group) return row;
    const inner = search(row.Rows?.Row ?? [], group);
    if (inner) return inner;
  }
  return undefined;
}

/** Parses one amount: a decimal string, or "" (none). */
export function amount(value: string | undefined, where: string): Decimal | null {
  if (value === undefined || value === '') return null;
  if (typeof value !== 'string') throw new QuickBooksParseError(`${where}: amount is a ${value === null ? 'null' : typeof value}, not a decimal string`);
  const v = value.trim();
  if (!AMOUNT.test(v)) throw new QuickBooksParseError(`${where}: amount ${JSON.stringify(value.slice(0, 40))} is not a decimal number`);
  return new Decimal(v);
}

/** A section's total in one column: its Summary, else the sum of what it holds. */
export function sectionTotal(section: QboRow | undefined, column: number): Decimal | null {
  if (!section) return null;
  const summary = section.Summary?.ColData;
  if (summary) return amount(summary[column]?.value, `section ${section.group ?? nameOf(section)}`);
  return sumRows(section.Rows?.Row ?? [], column, () => true);
}

/** Sums the rows (at any depth) whose account name matches; a matching sub-section counts by its total. */
export function sumRows(rows: QboRow[], column: number, matches: (name: string) => boolean): Decimal | null {
  let total: Decimal | null = null;
  const add = (d: Decimal | null) => {
    if (d) total = (total ?? new Decimal(0)).plus(d);
  };
  for (const row of rows) {
    if (row.Rows?.Row || row.Summary) {
      if (matches(nameOf(row))) add(sectionTotal(row, column));
      else add(sumRows(row.Rows?.Row ?? [], column, matches));
    } else if (row.ColData && matches(row.ColData[0]?.value ?? '')) {
      add(amount(row.ColData[column]?.value, `row ${row.ColData[0]?.value ?? '?'}`));
    }
  }
  return total;
}

/** A section's account name: its Header's first cell. */
function nameOf(row: QboRow): string {
  return row.Header?.ColData?.[0]?.value ?? row.ColData?.[0]?.value ?? '';
}

const DEPRECIATION = /depreciation|amortization|amortisation/i;

/** ProfitAndLoss figures per period column; GrossProfit and NetOperatingIncome are computed when absent. */
export function parseProfitAndLoss(report: QboReport): Array<PeriodColumn & { figures: ProfitAndLossFigures }> {
  return guard('ProfitAndLoss', () => readProfitAndLoss(report));
}

function readProfitAndLoss(report: QboReport): Array<PeriodColumn & { figures: ProfitAndLossFigures }> {
  expectReport(report, 'ProfitAndLoss');
  const income = findSection(report, 'Income');
  const cogsSection = findSection(report, 'COGS');
  const grossProfitSection = findSection(report, 'GrossProfit');
  const expenses = findSection(report, 'Expenses');
  const noiSection = findSection(report, 'NetOperatingIncome');
  const netOtherSection = findSection(report, 'NetOtherIncome');
  const otherIncome = findSection(report, 'OtherIncome');
  const otherExpenses = findSection(report, 'OtherExpenses');
  const netIncomeSection = findSection(report, 'NetIncome');
  return readPeriodColumns(report).map((col) => {
    const i = col.index;
    const revenue = sectionTotal(income, i);
    const cogs = sectionTotal(cogsSection, i);
    const operatingExpenses = sectionTotal(expenses, i);
    const grossProfit = grossProfitSection ? sectionTotal(grossProfitSection, i) : difference(revenue, cogs);
    const netOperatingIncome = noiSection ? sectionTotal(noiSection, i) : difference(grossProfit, operatingExpenses);
    const depreciationAndAmortization = sumRows(expenses?.Rows?.Row ?? [], i, (name) => DEPRECIATION.test(name));
    const ebitda = netOperatingIncome === null ? null : netOperatingIncome.plus(depreciationAndAmortization ?? 0);
    const netOther = netOtherSection ? sectionTotal(netOtherSection, i) : difference(sectionTotal(otherIncome, i), sectionTotal(otherExpenses, i));
    const netIncome = netIncomeSection ? sectionTotal(netIncomeSection, i) : netOperatingIncome === null ? null : netOperatingIncome.plus(netOther ?? 0);
    return { ...col, figures: { revenue, cogs, grossProfit, operatingExpenses, netOperatingIncome, depreciationAndAmortization, ebitda, netIncome } };
  });
}

/** BalanceSheet figures per period column (each column's balances are at its EndDate). */
export function parseBalanceSheet(report: QboReport): Array<PeriodColumn & { figures: BalanceSheetFigures }> {
  return guard('BalanceSheet', () => readBalanceSheet(report));
}

/** A section that holds a figure: its `group`, and when the group alone is ambiguous, the label its Summary must carry. */
interface TotalOf {
  group: string;
  label?: RegExp;
}

/**
 * Where each BalanceSheet figure is, per QuickBooks Online edition (README, "What
 * each edition maps"). A figure is a section's own total or nothing: a total the
 * report does not show (the AU edition's liabilities come as current and
 * non-current only) is left null, never added up.
 * - US and CA: `TotalAssets`, `Liabilities`, `Equity`, `BankAccounts` (CA labels it
 *   "Total Cash and Cash Equivalent"; CA's "Current Assets" is `OtherCurrentAssets`).
 * - AU: `NetAssets` labelled "Total Assets" (the Assets section; in a UK-style layout
 *   "Net assets" is assets less liabilities, hence the label check),
 *   `TotalShareHoldersEquityNode` ("Total shareholders' equity"); no liabilities
 *   total, no bank-accounts section (`TotalLongTermLiabilities` is, despite its
 *   name, "Total current liabilities"; `TotalNonCurLiabilities` the non-current ones).
 * The same group names as picortex/bitframe's AU parser (BalanceSheetParser.kt).
 */
const BALANCE_SHEET_TOTALS: Record<keyof BalanceSheetFigures, TotalOf[]> = {
  totalAssets: [{ group: 'TotalAssets' }, { group: 'NetAssets', label: /^total assets$/i }],
  totalLiabilities: [{ group: 'TotalLiabilities' }, { group: 'Liabilities' }],
  equity: [{ group: 'Equity' }, { group: 'TotalShareHoldersEquityNode' }],
  cash: [{ group: 'BankAccounts' }],
};

/** The first section matching one of `candidates` (in their order), searched at any depth. */
function findTotal(report: QboReport, candidates: TotalOf[]): QboRow | undefined {
  for (const { group, label } of candidates) {
    const found = findSection(report, group);
    if (found && (!label || label.test((found.Summary?.ColData?.[0]?.value ?? '').trim()))) return found;
  }
  return undefined;
}

function readBalanceSheet(report: QboReport): Array<PeriodColumn & { figures: BalanceSheetFigures }> {
  expectReport(report, 'BalanceSheet');
  const assets = findTotal(report, BALANCE_SHEET_TOTALS.totalAssets);
  const liabilities = findTotal(report, BALANCE_SHEET_TOTALS.totalLiabilities);
  const equity = findTotal(report, BALANCE_SHEET_TOTALS.equity);
  const bank = findTotal(report, BALANCE_SHEET_TOTALS.cash);
  return readPeriodColumns(report).map((col) => ({
    ...col,
    figures: {
      totalAssets: sectionTotal(assets, col.index),
      totalLiabilities: sectionTotal(liabilities, col.index),
      equity: sectionTotal(equity, col.index),
      cash: sectionTotal(bank, col.index),
    },
  }));
}

/** One calendar month's figures, as stored in financial_periods. */
export interface MonthFigures {
  /** 'YYYY-MM-01' */
  periodStart: string;
  /** last day of the month, 'YYYY-MM-DD' */
  periodEnd: string;
  revenue: Decimal | null;
  cogs: Decimal | null;
  grossProfit: Decimal | null;
  operatingExpenses: Decimal | null;
  ebitda: Decimal | null;
  netIncome: Decimal | null;
  totalAssets: Decimal | null;
  totalLiabilities: Decimal | null;
  equity: Decimal | null;
  cash: Decimal | null;
}

/**
 * Joins monthly ProfitAndLoss and BalanceSheet columns into one row per calendar
 * month (summarize_column_by=Month). Months where both reports say nothing are left out.
 */
export function monthlyFigures(pnl: QboReport, balanceSheet: QboReport): MonthFigures[] {
  return joinMonthlyFigures(() => parseProfitAndLoss(pnl), () => parseBalanceSheet(balanceSheet));
}

/** A report's columns read before the join (readEarly), or what reading it threw. */
export type ReadReport<F> = () => Array<PeriodColumn & { figures: F }>;

/**
 * Reads a report now and keeps the outcome, to be replayed by joinMonthlyFigures:
 * the sync reads each report as soon as it arrives, so its JSON tree dies young
 * instead of waiting for the other report (less GC), while a report that cannot
 * be read still fails at the same point, in the same order, as in monthlyFigures.
 */
export function readEarly<F>(read: () => Array<PeriodColumn & { figures: F }>): ReadReport<F> {
  try {
    const columns = read();
    return () => columns;
  } catch (err) {
    return () => {
      throw err;
    };
  }
}

/** monthlyFigures, from the two reports' columns (parseProfitAndLoss, parseBalanceSheet, or readEarly of them). */
export function joinMonthlyFigures(pnl: ReadReport<ProfitAndLossFigures>, balanceSheet: ReadReport<BalanceSheetFigures>): MonthFigures[] {
  return guard('QuickBooks', () => joinMonths(pnl, balanceSheet));
}

function joinMonths(pnl: ReadReport<ProfitAndLossFigures>, balanceSheet: ReadReport<BalanceSheetFigures>): MonthFigures[] {
  const months = new Map<string, MonthFigures>();
  const month = (col: PeriodColumn, report: string): MonthFigures => {
    if (col.start.slice(0, 7) !== col.end.slice(0, 7)) throw new QuickBooksParseError(`${report} column ${col.index} spans ${col.start}..${col.end}, not one month (summarize_column_by=Month expected)`);
    const start = `${col.start.slice(0, 7)}-01`;
    let m = months.get(start);
    if (!m) {
      m = { periodStart: start, periodEnd: lastDayOfMonth(start), revenue: null, cogs: null, grossProfit: null, operatingExpenses: null, ebitda: null, netIncome: null, totalAssets: null, totalLiabilities: null, equity: null, cash: null };
      months.set(start, m);
    }
    return m;
  };
  for (const col of pnl()) {
    const { revenue, cogs, grossProfit, operatingExpenses, ebitda, netIncome } = col.figures;
    Object.assign(month(col, 'ProfitAndLoss'), { revenue, cogs, grossProfit, operatingExpenses, ebitda, netIncome });
  }
  for (const col of balanceSheet()) Object.assign(month(col, 'BalanceSheet'), col.figures);
  return [...months.values()]
    .filter((m) => Object.values(m).some((v) => v instanceof Decimal))
    .sort((a, b) => a.periodStart.localeCompare(b.periodStart));
}

/** 'YYYY-MM-01' → the month's last day. */
export function lastDayOfMonth(periodStart: string): string {
  let last = lastDays.get(periodStart);
  if (last === undefined) {
    const [y, m] = periodStart.split('-').map(Number) as [number, number];
    last = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
    // A run asks for the same couple of dozen months for every integration (a tenth of the mapping's CPU).
    if (lastDays.size < 10_000) lastDays.set(periodStart, last);
  }
  return last;
}
const lastDays = new Map<string, string>();

/**
 * Runs a parse, turning anything thrown by a report that breaks the documented
 * shape (a null row, a list that is not a list, a number where a string belongs)
 * into a QuickBooksParseError, so the sync fails as a handled failure with its signal.
 */
function guard<T>(report: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof QuickBooksParseError) throw err;
    throw new QuickBooksParseError(`${report} report does not have the documented shape (${err instanceof Error ? err.message.slice(0, 120) : 'unreadable'})`, { cause: err });
  }
}

function difference(a: Decimal | null, b: Decimal | null): Decimal | null {
  if (a === null && b === null) return null;
  return (a ?? new Decimal(0)).minus(b ?? 0);
}

function reportName(report: QboReport): string {
  return typeof report?.Header?.ReportName === 'string' ? report.Header.ReportName : 'QuickBooks';
}

function expectReport(report: unknown, name: string): asserts report is QboReport {
  if (!report || typeof report !== 'object') throw new QuickBooksParseError(`${name} report is not a JSON object`);
  const r = report as QboReport;
  if (!r.Rows || typeof r.Rows !== 'object') throw new QuickBooksParseError(`${name} report has no Rows`);
  const actual = r.Header?.ReportName;
  if (actual !== undefined && actual !== name) throw new QuickBooksParseError(`expected a ${name} report, got ${String(actual).slice(0, 40)}`);
}
