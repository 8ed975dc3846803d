/**
 * Reads Intuit's JSON report shape (ProfitAndLoss, BalanceSheet): `Columns.Column[]`
 * and `Rows.Row[]` of nested `Section` rows (any depth) with a `group`, a `Header`,
 * `Rows` and a `Summary` whose `ColData[i]` lines up with `Columns.Column[i]`.
 *
 * Columns are mapped by their `StartDate`/`EndDate` metadata, never by title; the
 * account column and the total column are skipped. Amounts are decimal strings kept
 * exact (amounts.ts: decimal.js, or integers of hundredths on the sync's path, which
 * gives the same figures); `""` means no amount (null), never zero.
 */
import type { Decimal } from 'decimal.js';
import { DECIMALS, HUNDREDTHS, type Arithmetic } from './amounts.ts';
import { QuickBooksParseError } from './errors.ts';
import { Cells, ScannedReport } from './report-scan.ts';

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

/** Figures as exact decimals (the parse functions), or as stored: two-decimal text (the sync's path). */
export interface ProfitAndLossFigures<A = Decimal> {
  revenue: A | null;
  cogs: A | null;
  grossProfit: A | null;
  operatingExpenses: A | null;
  netOperatingIncome: A | null;
  depreciationAndAmortization: A | null;
  ebitda: A | null;
  netIncome: A | null;
}

export interface BalanceSheetFigures<A = Decimal> {
  totalAssets: A | null;
  totalLiabilities: A | null;
  equity: A | null;
  cash: A | null;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
/** `?? NO_ROWS` rather than `?? []`: no new empty array per row visited. */
const NO_ROWS: QboRow[] = Object.freeze([]) as unknown as QboRow[];

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
    const meta = column.MetaData ?? [];
    if (!Array.isArray(meta)) throw new TypeError('MetaData is not a list');
    if (metaValue(meta, 'ColKey') === 'total') return void totals.push(index);
    const start = metaValue(meta, 'StartDate');
    const end = metaValue(meta, 'EndDate');
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

/** A column's metadata value by name (the last one wins, as a Map built from the list would give). */
function metaValue(meta: Array<{ Name?: string; Value?: string }>, name: string): string | undefined {
  let value: string | undefined;
  let found = false;
  // A plain loop: a Map per column was a fifth of the mapping's allocations.
  for (const m of meta) {
    if (m.Name === name) {
      value = m.Value;
      found = true;
    }
  }
  return found ? value : undefined;
}

/**
 * The rows as an array, as `for…of` would walk them (a string by characters, a
 * non-iterable throws): the hot loops index the array, because a `for…of` there
 * allocated an iterator per list walked (7% of the job's allocated bytes).
 */
function asList(rows: QboRow[]): QboRow[] {
  return Array.isArray(rows) ? rows : [...(rows as Iterable<QboRow>)];
}

/** The first section with this `group`, searched depth-first through every level. */
export function findSection(report: QboReport, ...groups: string[]): QboRow | undefined {
  for (const group of groups) {
    const found = search(report.Rows?.Row ?? NO_ROWS, group);
    if (found) return found;
  }
  return undefined;
}

function search(rows: QboRow[], group: string): QboRow | undefined {
  const list = asList(rows);
  for (let i = 0; i < list.length; i++) {
    const row = list[i]!;
    if (row.group === group) return row;
    const inner = search(row.Rows?.Row ?? NO_ROWS, group);
    if (inner) return inner;
  }
  return undefined;
}

/** Parses one amount: a decimal string, or "" (none). */
export function amount(value: string | undefined, where: string): Decimal | null {
  return amountOf(DECIMALS, value, where);
}

/**
 * `where` names the amount in an error message: the text, or the row it is in (a
 * section's Summary or a data row), so that no text nor closure is made per amount
 * on the hot path (they were a tenth of the mapping's garbage).
 */
type Where = string | { row: QboRow; summary: boolean };

function whereText(where: Where): string {
  if (typeof where === 'string') return where;
  return where.summary ? `section ${where.row.group ?? nameOf(where.row)}` : `row ${cellValue(where.row.ColData, 0) ?? '?'}`;
}

function amountOf<N>(arith: Arithmetic<N>, value: string | undefined, where: Where): N | null {
  if (value === undefined || value === '') return null;
  if (typeof value !== 'string') throw new QuickBooksParseError(`${whereText(where)}: amount is a ${value === null ? 'null' : typeof value}, not a decimal string`);
  const n = arith.parse(value, 0, value.length);
  if (n === undefined) throw new QuickBooksParseError(`${whereText(where)}: amount ${JSON.stringify(value.slice(0, 40))} is not a decimal number`);
  return n;
}

/** A section's total in one column: its Summary, else the sum of what it holds. */
export function sectionTotal(section: QboRow | undefined, column: number): Decimal | null {
  return totalOf(DECIMALS, section, column);
}

function totalOf<N>(arith: Arithmetic<N>, section: QboRow | undefined, column: number): N | null {
  if (!section) return null;
  const summary = section.Summary?.ColData;
  if (summary) return amountAt(arith, summary, column, section, true);
  return sumOf(arith, section.Rows?.Row ?? NO_ROWS, column, ALL);
}

/** Sums the rows (at any depth) whose account name matches; a matching sub-section counts by its total. */
export function sumRows(rows: QboRow[], column: number, matches: (name: string) => boolean): Decimal | null {
  return sumOf(DECIMALS, rows, column, matches);
}

function sumOf<N>(arith: Arithmetic<N>, rows: QboRow[], column: number, matches: (name: string) => boolean): N | null {
  let total: N | null = null;
  const list = asList(rows);
  for (let i = 0; i < list.length; i++) {
    const row = list[i]!;
    let d: N | null = null;
    if (row.Rows?.Row || row.Summary) {
      d = matches(nameOf(row)) ? totalOf(arith, row, column) : sumOf(arith, row.Rows?.Row ?? NO_ROWS, column, matches);
    } else if (row.ColData && matches(cellValue(row.ColData, 0) ?? '')) {
      d = amountAt(arith, row.ColData, column, row, false);
    }
    if (d !== null) total = arith.plus(total ?? arith.zero, d);
  }
  return total;
}

const ALL = () => true;

/** A section's account name: its Header's first cell. */
function nameOf(row: QboRow): string {
  return cellValue(row.Header?.ColData, 0) ?? cellValue(row.ColData, 0) ?? '';
}

/** `cells[i]?.value`, for a parsed ColData list or a scanned one (report-scan.ts). */
function cellValue(cells: QboColData[] | undefined, i: number): string | undefined {
  if ((cells as unknown) instanceof Cells) return (cells as unknown as Cells).value(i);
  return cells?.[i]?.value;
}

/** Cell i's amount; a scanned one is read in place, never made into a string. */
function amountAt<N>(arith: Arithmetic<N>, cells: QboColData[], i: number, row: QboRow, summary: boolean): N | null {
  if (!((cells as unknown) instanceof Cells)) return amountOf(arith, cells[i]?.value, { row, summary });
  const scanned = cells as unknown as Cells;
  const start = scanned.start(i);
  const end = start < 0 ? start : scanned.end(i);
  if (start === end) return null; // no value, or ""
  const n = arith.parse(scanned.source, start, end);
  if (n === undefined) throw new QuickBooksParseError(`${whereText({ row, summary })}: amount ${JSON.stringify(scanned.source.slice(start, Math.min(end, start + 40)))} is not a decimal number`);
  return n;
}

const DEPRECIATION = /depreciation|amortization|amortisation/i;
const isDepreciation = (name: string) => DEPRECIATION.test(name);

/** ProfitAndLoss figures per period column; GrossProfit and NetOperatingIncome are computed when absent. */
export function parseProfitAndLoss(report: QboReport): Array<PeriodColumn & { figures: ProfitAndLossFigures }> {
  return guard('ProfitAndLoss', () => readProfitAndLoss(report, DECIMALS));
}

function readProfitAndLoss<N>(report: QboReport, arith: Arithmetic<N>): Array<PeriodColumn & { figures: ProfitAndLossFigures<N> }> {
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
  const difference = (a: N | null, b: N | null): N | null => (a === null && b === null ? null : arith.minus(a ?? arith.zero, b ?? arith.zero));
  const total = (section: QboRow | undefined, i: number) => totalOf(arith, section, i);
  return readPeriodColumns(report).map((col) => {
    const i = col.index;
    const revenue = total(income, i);
    const cogs = total(cogsSection, i);
    const operatingExpenses = total(expenses, i);
    const grossProfit = grossProfitSection ? total(grossProfitSection, i) : difference(revenue, cogs);
    const netOperatingIncome = noiSection ? total(noiSection, i) : difference(grossProfit, operatingExpenses);
    const depreciationAndAmortization = sumOf(arith, expenses?.Rows?.Row ?? NO_ROWS, i, isDepreciation);
    const ebitda = netOperatingIncome === null ? null : arith.plus(netOperatingIncome, depreciationAndAmortization ?? arith.zero);
    const netOther = netOtherSection ? total(netOtherSection, i) : difference(total(otherIncome, i), total(otherExpenses, i));
    const netIncome = netIncomeSection ? total(netIncomeSection, i) : netOperatingIncome === null ? null : arith.plus(netOperatingIncome, netOther ?? arith.zero);
    return { ...col, figures: { revenue, cogs, grossProfit, operatingExpenses, netOperatingIncome, depreciationAndAmortization, ebitda, netIncome } };
  });
}

/** BalanceSheet figures per period column (each column's balances are at its EndDate). */
export function parseBalanceSheet(report: QboReport): Array<PeriodColumn & { figures: BalanceSheetFigures }> {
  return guard('BalanceSheet', () => readBalanceSheet(report, DECIMALS));
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
    if (found && (!label || label.test((cellValue(found.Summary?.ColData, 0) ?? '').trim()))) return found;
  }
  return undefined;
}

function readBalanceSheet<N>(report: QboReport, arith: Arithmetic<N>): Array<PeriodColumn & { figures: BalanceSheetFigures<N> }> {
  expectReport(report, 'BalanceSheet');
  const assets = findTotal(report, BALANCE_SHEET_TOTALS.totalAssets);
  const liabilities = findTotal(report, BALANCE_SHEET_TOTALS.totalLiabilities);
  const equity = findTotal(report, BALANCE_SHEET_TOTALS.equity);
  const bank = findTotal(report, BALANCE_SHEET_TOTALS.cash);
  return readPeriodColumns(report).map((col) => ({
    ...col,
    figures: {
      totalAssets: totalOf(arith, assets, col.index),
      totalLiabilities: totalOf(arith, liabilities, col.index),
      equity: totalOf(arith, equity, col.index),
      cash: totalOf(arith, bank, col.index),
    },
  }));
}

/** One calendar month's figures, as stored in financial_periods: exact decimals, or their two-decimal text (the sync's path). */
export interface MonthFigures<A = Decimal> {
  /** 'YYYY-MM-01' */
  periodStart: string;
  /** last day of the month, 'YYYY-MM-DD' */
  periodEnd: string;
  revenue: A | null;
  cogs: A | null;
  grossProfit: A | null;
  operatingExpenses: A | null;
  ebitda: A | null;
  netIncome: A | null;
  totalAssets: A | null;
  totalLiabilities: A | null;
  equity: A | null;
  cash: A | null;
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

/**
 * The sync's path: parseProfitAndLoss's figures as stored, two-decimal text (what
 * their `toFixed(2)` gives), computed in integers of hundredths, from a parsed
 * report or a scanned one (report-scan.ts, amounts read in place); a report those
 * cannot hold exactly (amounts.ts), or one that does not read, is read again from
 * JSON.parse's tree with decimal.js, which gives the exact text or the same error
 * as parseProfitAndLoss.
 */
export function profitAndLossAsStored(report: QboReport | ScannedReport): Array<PeriodColumn & { figures: ProfitAndLossFigures<string> }> {
  try {
    return readProfitAndLoss(treeOf(report), HUNDREDTHS).map((col) => ({ index: col.index, start: col.start, end: col.end, figures: profitAndLossText(col.figures, HUNDREDTHS) }));
  } catch {
    return parseProfitAndLoss(parsed(report)).map((col) => ({ index: col.index, start: col.start, end: col.end, figures: profitAndLossText(col.figures, DECIMALS) }));
  }
}

/** parseBalanceSheet's figures as stored (see profitAndLossAsStored). */
export function balanceSheetAsStored(report: QboReport | ScannedReport): Array<PeriodColumn & { figures: BalanceSheetFigures<string> }> {
  try {
    return readBalanceSheet(treeOf(report), HUNDREDTHS).map((col) => ({ index: col.index, start: col.start, end: col.end, figures: balanceSheetText(col.figures, HUNDREDTHS) }));
  } catch {
    return parseBalanceSheet(parsed(report)).map((col) => ({ index: col.index, start: col.start, end: col.end, figures: balanceSheetText(col.figures, DECIMALS) }));
  }
}

/** The tree the fast path maps: a scanned report's (its ColData lists in the text) or the parsed one. */
function treeOf(report: QboReport | ScannedReport): QboReport {
  return report instanceof ScannedReport ? (report.tree as QboReport) : report;
}

/** The tree the reference mapping reads: JSON.parse's (a scanned report's text is valid JSON: the scanner is strict). */
function parsed(report: QboReport | ScannedReport): QboReport {
  return report instanceof ScannedReport ? (JSON.parse(report.text) as QboReport) : report;
}

function profitAndLossText<N>(f: ProfitAndLossFigures<N>, arith: Arithmetic<N>): ProfitAndLossFigures<string> {
  const t = (v: N | null) => (v === null ? null : arith.text(v));
  return {
    revenue: t(f.revenue), cogs: t(f.cogs), grossProfit: t(f.grossProfit), operatingExpenses: t(f.operatingExpenses), netOperatingIncome: t(f.netOperatingIncome),
    depreciationAndAmortization: t(f.depreciationAndAmortization), ebitda: t(f.ebitda), netIncome: t(f.netIncome),
  };
}

function balanceSheetText<N>(f: BalanceSheetFigures<N>, arith: Arithmetic<N>): BalanceSheetFigures<string> {
  const t = (v: N | null) => (v === null ? null : arith.text(v));
  return { totalAssets: t(f.totalAssets), totalLiabilities: t(f.totalLiabilities), equity: t(f.equity), cash: t(f.cash) };
}

/** monthlyFigures, from the two reports' columns (parseProfitAndLoss, parseBalanceSheet, the AsStored ones, or readEarly of them). */
export function joinMonthlyFigures<A>(pnl: ReadReport<ProfitAndLossFigures<A>>, balanceSheet: ReadReport<BalanceSheetFigures<A>>): Array<MonthFigures<A>> {
  return guard('QuickBooks', () => joinMonths(pnl, balanceSheet));
}

function joinMonths<A>(pnl: ReadReport<ProfitAndLossFigures<A>>, balanceSheet: ReadReport<BalanceSheetFigures<A>>): Array<MonthFigures<A>> {
  const months = new Map<string, MonthFigures<A>>();
  const month = (col: PeriodColumn, report: string): MonthFigures<A> => {
    const yearMonth = col.start.slice(0, 7);
    if (yearMonth !== col.end.slice(0, 7)) throw new QuickBooksParseError(`${report} column ${col.index} spans ${col.start}..${col.end}, not one month (summarize_column_by=Month expected)`);
    const start = `${yearMonth}-01`;
    let m = months.get(start);
    if (!m) {
      m = { periodStart: start, periodEnd: lastDayOfMonth(start), revenue: null, cogs: null, grossProfit: null, operatingExpenses: null, ebitda: null, netIncome: null, totalAssets: null, totalLiabilities: null, equity: null, cash: null };
      months.set(start, m);
    }
    return m;
  };
  for (const col of pnl()) {
    const m = month(col, 'ProfitAndLoss');
    const f = col.figures;
    m.revenue = f.revenue;
    m.cogs = f.cogs;
    m.grossProfit = f.grossProfit;
    m.operatingExpenses = f.operatingExpenses;
    m.ebitda = f.ebitda;
    m.netIncome = f.netIncome;
  }
  for (const col of balanceSheet()) {
    const m = month(col, 'BalanceSheet');
    const f = col.figures;
    m.totalAssets = f.totalAssets;
    m.totalLiabilities = f.totalLiabilities;
    m.equity = f.equity;
    m.cash = f.cash;
  }
  return [...months.values()].filter(hasFigures).sort((a, b) => a.periodStart.localeCompare(b.periodStart));
}

function hasFigures(m: MonthFigures<unknown>): boolean {
  return m.revenue !== null || m.cogs !== null || m.grossProfit !== null || m.operatingExpenses !== null || m.ebitda !== null || m.netIncome !== null ||
    m.totalAssets !== null || m.totalLiabilities !== null || m.equity !== null || m.cash !== null;
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
