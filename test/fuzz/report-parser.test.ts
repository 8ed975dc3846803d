/**
 * Property-based tests of the QuickBooks report parser: random reports in Intuit's
 * JSON shape (sections nested at any depth, Summary or not, empty and odd amounts,
 * short ColData, sections missing, columns in any order) against a small model of
 * what the figures must be. The model is written here from the documented rules
 * (JOBS.md "sync-quickbooks" step 4 and the parser's header): a section's total is
 * its Summary, else the sum of what it holds; "" is no amount; GrossProfit and
 * NetOperatingIncome are computed when Intuit leaves them out.
 */
import { expect } from 'chai';
import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import { QuickBooksParseError } from '../../lib/quickbooks/errors.ts';
import { balanceSheetAsStored, monthlyFigures, parseBalanceSheet, parseProfitAndLoss, profitAndLossAsStored, type QboColData, type QboReport, type QboRow } from '../../lib/quickbooks/report-parser.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);

/** An amount as Intuit may write it, with what it means: a value, none, or unreadable. */
type Amount = { text: string | undefined; value: Decimal | null } | { text: string; invalid: true };

const validAmount: fc.Arbitrary<Amount> = fc.oneof(
  fc.integer({ min: -99_999_999_99, max: 99_999_999_99 }).map((cents) => {
    const d = new Decimal(cents).div(100);
    return { text: d.toFixed(2), value: d };
  }),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((n) => ({ text: String(n), value: new Decimal(n) })),
  fc.constantFrom<Amount>(
    { text: '', value: null },
    { text: undefined, value: null },
    { text: '-0.00', value: new Decimal(0) },
    { text: '0', value: new Decimal(0) },
    { text: ' 12.50 ', value: new Decimal('12.5') },
    { text: '007.10', value: new Decimal('7.1') },
    { text: '0.001', value: new Decimal('0.001') },
    { text: '123456789012345.67', value: new Decimal('123456789012345.67') },
  ),
);

/** Text that is no decimal amount: the parser must refuse it when it reads it, never guess. */
const invalidAmount: fc.Arbitrary<Amount> = fc.constantFrom<Amount>(
  { text: '1e3', invalid: true },
  { text: '1,234.56', invalid: true },
  { text: '$12.00', invalid: true },
  { text: 'NaN', invalid: true },
  { text: 'Infinity', invalid: true },
  { text: '--1', invalid: true },
  { text: '1.', invalid: true },
  { text: '.5', invalid: true },
  { text: '(12.00)', invalid: true },
  { text: 'abc', invalid: true },
);

const NAMES = ['Sales of Product Income', 'Consulting', 'Depreciation Expense', 'Amortization of intangibles', 'ACCUMULATED DEPRECIATION', 'Rent or Lease', 'Wages', 'Interest', ''];

type Leaf = { kind: 'leaf'; name: string; cells: Amount[] };
type Section = { kind: 'section'; name: string; children: Node[]; summary: Amount[] | null; group?: string };
type Node = Leaf | Section;

/** A random subtree with `cols` money cells per row. */
function treeArb(cols: number, amount: fc.Arbitrary<Amount>): fc.Arbitrary<Section> {
  const cells = fc.array(amount, { minLength: cols, maxLength: cols });
  const { section } = fc.letrec<{ node: Node; leaf: Leaf; section: Section }>((tie) => ({
    node: fc.oneof({ depthSize: 'small', maxDepth: 6 }, tie('leaf'), tie('section')),
    leaf: fc.record({ kind: fc.constant('leaf' as const), name: fc.constantFrom(...NAMES), cells }),
    section: fc.record({
      kind: fc.constant('section' as const),
      name: fc.constantFrom(...NAMES),
      children: fc.array(tie('node'), { maxLength: 4 }),
      summary: fc.option(cells, { nil: null }),
    }),
  }));
  return section;
}

/** ColData for a row: the account cell, then the money cells; `undefined` text → a cell without `value`; sometimes cut short. */
function colData(name: string, cells: Amount[], cut: boolean): QboColData[] {
  const out: QboColData[] = [{ value: name }, ...cells.map((c) => (c.text === undefined ? {} : { value: c.text }))];
  // A short row (missing trailing columns) reads as no amount there.
  if (cut) while (out.length > 1 && out.at(-1)!.value === undefined) out.pop();
  return out;
}

function toRow(node: Node): QboRow {
  if (node.kind === 'leaf') return { type: 'Data', ColData: colData(node.name, node.cells, true) };
  return {
    type: 'Section',
    ...(node.group ? { group: node.group } : {}),
    Header: { ColData: [{ value: node.name }] },
    Rows: { Row: node.children.map(toRow) },
    ...(node.summary ? { Summary: { ColData: colData(`Total ${node.name}`, node.summary, false) } } : {}),
  };
}

class Unreadable extends Error {}

/** The model: an amount's value, or Unreadable when the parser must refuse it. */
function valueOf(a: Amount | undefined): Decimal | null {
  if (!a) return null;
  if ('invalid' in a) throw new Unreadable(a.text);
  return a.value;
}
const add = (a: Decimal | null, b: Decimal | null) => (a === null ? b : b === null ? a : a.plus(b));
const diff = (a: Decimal | null, b: Decimal | null) => (a === null && b === null ? null : (a ?? new Decimal(0)).minus(b ?? 0));

function total(node: Node | undefined, c: number): Decimal | null {
  if (!node) return null;
  if (node.kind === 'leaf') return valueOf(node.cells[c]);
  if (node.summary) return valueOf(node.summary[c]);
  return node.children.reduce<Decimal | null>((sum, child) => add(sum, total(child, c)), null);
}

const DEPRECIATION = /depreciation|amortization|amortisation/i;
function depreciation(children: Node[], c: number): Decimal | null {
  let sum: Decimal | null = null;
  for (const child of children) {
    if (child.kind === 'leaf') sum = add(sum, DEPRECIATION.test(child.name) ? valueOf(child.cells[c]) : null);
    else sum = add(sum, DEPRECIATION.test(child.name) ? total(child, c) : depreciation(child.children, c));
  }
  return sum;
}

const PNL_GROUPS = ['Income', 'COGS', 'GrossProfit', 'Expenses', 'NetOperatingIncome', 'OtherIncome', 'OtherExpenses', 'NetOtherIncome', 'NetIncome'] as const;
const BS_GROUPS = ['TotalAssets', 'Liabilities', 'Equity', 'BankAccounts'] as const;

interface Generated {
  report: QboReport;
  /** Each money column's cell position → its month, 'YYYY-MM'; the total column is left out. */
  months: Array<{ cell: number; month: string }>;
  sections: Partial<Record<string, Section>>;
}

/**
 * A report: the account column, then `months` month columns and maybe Intuit's Total
 * column in a random order; the groups present each a random subtree, some of them
 * wrapped in an ungrouped section (the parser searches every level).
 */
function reportArb(name: 'ProfitAndLoss' | 'BalanceSheet', groups: readonly string[], amount: fc.Arbitrary<Amount>): fc.Arbitrary<Generated> {
  return fc
    .record({ months: fc.integer({ min: 1, max: 4 }), withTotal: fc.boolean(), startMonth: fc.integer({ min: 0, max: 11 }), seed: fc.integer() })
    .chain(({ months, withTotal, startMonth, seed }) => {
      const money = months + (withTotal ? 1 : 0);
      return fc.record({
        order: fc.shuffledSubarray([...Array(money).keys()], { minLength: money, maxLength: money }),
        present: fc.subarray([...groups]),
        trees: fc.array(treeArb(money, amount), { minLength: groups.length, maxLength: groups.length }),
        wrap: fc.array(fc.boolean(), { minLength: groups.length, maxLength: groups.length }),
      }).map(({ order, present, trees, wrap }) => {
        // order[k] = which logical column (0..months-1 a month, months = Total) sits at money cell k.
        const monthOf = (logical: number) => {
          const d = new Date(Date.UTC(2025, startMonth + logical, 1));
          return d.toISOString().slice(0, 7);
        };
        const columns = [
          { ColTitle: '', ColType: 'Account', MetaData: [{ Name: 'ColKey', Value: 'account' }] },
          ...order.map((logical) => {
            if (logical === months) return { ColTitle: 'Total', ColType: 'Money', MetaData: [{ Name: 'ColKey', Value: 'total' }] };
            const m = monthOf(logical);
            const last = new Date(Date.UTC(Number(m.slice(0, 4)), Number(m.slice(5, 7)), 0)).toISOString().slice(0, 10);
            return { ColTitle: `Title ${seed % 7} ${logical}`, ColType: 'Money', MetaData: [{ Name: 'StartDate', Value: `${m}-01` }, { Name: 'EndDate', Value: last }, { Name: 'ColKey', Value: String(logical) }] };
          }),
        ];
        const sections: Partial<Record<string, Section>> = {};
        const rows: QboRow[] = [];
        groups.forEach((group, g) => {
          if (!present.includes(group)) return;
          const section: Section = { ...trees[g]!, group };
          sections[group] = section;
          const row = toRow(section);
          rows.push(wrap[g] ? { type: 'Section', Header: { ColData: [{ value: 'Wrapper' }] }, Rows: { Row: [row] } } : row);
        });
        const report: QboReport = {
          Header: { ReportName: name, StartPeriod: `${monthOf(0)}-01`, EndPeriod: `${monthOf(months - 1)}-28`, SummarizeColumnsBy: 'Month', Currency: 'USD' },
          Columns: { Column: columns },
          Rows: { Row: rows },
        };
        const monthCells = order.map((logical, cell) => ({ cell, logical })).filter((x) => x.logical !== months).map((x) => ({ cell: x.cell, month: monthOf(x.logical) }));
        return { report, months: monthCells, sections };
      });
    });
}

/** The model's ProfitAndLoss figures for one money cell (0-based among the money cells). */
function expectedPnl(s: Generated['sections'], c: number) {
  const revenue = total(s.Income, c);
  const cogs = total(s.COGS, c);
  const operatingExpenses = total(s.Expenses, c);
  const grossProfit = s.GrossProfit ? total(s.GrossProfit, c) : diff(revenue, cogs);
  const netOperatingIncome = s.NetOperatingIncome ? total(s.NetOperatingIncome, c) : diff(grossProfit, operatingExpenses);
  const dep = depreciation(s.Expenses?.children ?? [], c);
  const ebitda = netOperatingIncome === null ? null : netOperatingIncome.plus(dep ?? 0);
  const netOther = s.NetOtherIncome ? total(s.NetOtherIncome, c) : diff(total(s.OtherIncome, c), total(s.OtherExpenses, c));
  const netIncome = s.NetIncome ? total(s.NetIncome, c) : netOperatingIncome === null ? null : netOperatingIncome.plus(netOther ?? 0);
  return { revenue, cogs, grossProfit, operatingExpenses, netOperatingIncome, ebitda, netIncome };
}

const text = (d: Decimal | null) => (d === null ? null : d.toFixed());
const same = (actual: Decimal | null, expected: Decimal | null, what: string) => expect(text(actual), what).to.equal(text(expected));

/** Runs `fn`; when the model met an unreadable amount the parser must throw QuickBooksParseError, else agree. */
function agree<T>(model: () => T, parse: () => unknown, compare: (parsed: never, expected: T) => void): void {
  let expected: T;
  try {
    expected = model();
  } catch (err) {
    if (!(err instanceof Unreadable)) throw err;
    expect(parse, `an unreadable amount (${err.message}) must be refused`).to.throw(QuickBooksParseError);
    return;
  }
  compare(parse() as never, expected);
}

describe('QuickBooks report parser (properties)', function () {
  this.timeout(30_000);

  it('ProfitAndLoss: every figure of every month column follows from the sections, at any nesting depth', () => {
    fc.assert(
      fc.property(reportArb('ProfitAndLoss', PNL_GROUPS, validAmount), (g) => {
        const parsed = parseProfitAndLoss(g.report);
        expect(parsed.map((p) => p.start.slice(0, 7)).sort()).to.deep.equal(g.months.map((m) => m.month).sort());
        for (const col of parsed) {
          const c = col.index - 1; // money cell position: ColData[0] is the account
          const e = expectedPnl(g.sections, c);
          for (const k of Object.keys(e) as Array<keyof typeof e>) same(col.figures[k], e[k], k);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('ProfitAndLoss: revenue of a month is the Income section total, and gross profit is income - COGS when GrossProfit is absent', () => {
    // The same facts stated directly, without the model: the Income Summary when it has one.
    fc.assert(
      fc.property(reportArb('ProfitAndLoss', PNL_GROUPS, validAmount), reportArb('BalanceSheet', BS_GROUPS, validAmount), (pnl, bs) => {
        const months = monthlyFigures(pnl.report, bs.report);
        for (const { cell, month } of pnl.months) {
          const row = months.find((m) => m.periodStart === `${month}-01`);
          const income = pnl.sections.Income;
          const cogs = pnl.sections.COGS;
          const revenue = income?.summary ? valueOf(income.summary[cell]) : total(income, cell);
          if (!row) {
            // A month is left out only when both reports say nothing about it.
            expect(revenue, `month ${month} dropped although it has revenue`).to.equal(null);
            continue;
          }
          same(row.revenue, revenue, `revenue ${month}`);
          if (!pnl.sections.GrossProfit) {
            const expected = row.revenue === null && row.cogs === null ? null : (row.revenue ?? new Decimal(0)).minus(row.cogs ?? 0);
            same(row.grossProfit, expected, `gross profit ${month}`);
            same(row.cogs, total(cogs, cell), `cogs ${month}`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('BalanceSheet: assets, liabilities, equity and cash are their sections totals in every column', () => {
    fc.assert(
      fc.property(reportArb('BalanceSheet', BS_GROUPS, validAmount), (g) => {
        for (const col of parseBalanceSheet(g.report)) {
          const c = col.index - 1;
          same(col.figures.totalAssets, total(g.sections.TotalAssets, c), 'totalAssets');
          same(col.figures.totalLiabilities, total(g.sections.Liabilities, c), 'totalLiabilities');
          same(col.figures.equity, total(g.sections.Equity, c), 'equity');
          same(col.figures.cash, total(g.sections.BankAccounts, c), 'cash');
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses an unreadable amount it has to read ("1e3", "1,234.56", "$12.00"...) with QuickBooksParseError, and reads the rest', () => {
    const mixed = fc.oneof({ weight: 12, arbitrary: validAmount }, { weight: 1, arbitrary: invalidAmount });
    fc.assert(
      fc.property(reportArb('ProfitAndLoss', PNL_GROUPS, mixed), (g) => {
        agree(
          () => g.months.map(({ cell }) => expectedPnl(g.sections, cell)),
          () => parseProfitAndLoss(g.report),
          (parsed: ReturnType<typeof parseProfitAndLoss>, expected) => {
            for (const col of parsed) {
              const e = expected[g.months.findIndex((m) => m.cell === col.index - 1)]!;
              for (const k of Object.keys(e) as Array<keyof typeof e>) same(col.figures[k], e[k], k);
            }
          },
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('the sync\'s path (integers of hundredths) gives the stored text of the decimal figures, or the same error', () => {
    // Amounts up to 15 digits (exact in hundredths) and beyond, whose sums can pass 2^53: the
    // path must fall back to decimal.js there and still give toFixed(2) of the exact figure.
    const wide: fc.Arbitrary<Amount> = fc.bigInt({ min: -(10n ** 17n), max: 10n ** 17n }).map((cents) => {
      const d = new Decimal(cents.toString()).div(100);
      return { text: d.toFixed(2), value: d };
    });
    const amounts = fc.oneof({ weight: 8, arbitrary: validAmount }, { weight: 3, arbitrary: wide }, { weight: 1, arbitrary: invalidAmount });
    const outcome = (read: () => Array<{ index: number; figures: object }>, text: (v: never) => string | null) => {
      try {
        return read().map((col) => [col.index, Object.entries(col.figures).map(([k, v]) => [k, v === null ? null : text(v as never)])]);
      } catch (err) {
        return { error: (err as Error).constructor.name, message: (err as Error).message };
      }
    };
    fc.assert(
      fc.property(reportArb('ProfitAndLoss', PNL_GROUPS, amounts), reportArb('BalanceSheet', BS_GROUPS, amounts), (pnl, bs) => {
        expect(outcome(() => profitAndLossAsStored(pnl.report), (v: string) => v)).to.deep.equal(outcome(() => parseProfitAndLoss(pnl.report), (v: Decimal) => v.toFixed(2)));
        expect(outcome(() => balanceSheetAsStored(bs.report), (v: string) => v)).to.deep.equal(outcome(() => parseBalanceSheet(bs.report), (v: Decimal) => v.toFixed(2)));
      }),
      { numRuns: RUNS * 4 },
    );
  });

  /** Replaces one random node of a JSON value with another JSON value (a report Intuit never documented). */
  const mutate = (value: unknown, path: number[], replacement: unknown): unknown => {
    if (path.length === 0 || value === null || typeof value !== 'object') return replacement;
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return replacement;
    const [k, v] = entries[path[0]! % entries.length]!;
    const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...(value as Record<string, unknown>) };
    (copy as Record<string, unknown>)[k] = mutate(v, path.slice(1), replacement);
    return copy;
  };

  // Well-typed shapes only (every `value` a string, every list a list): what Intuit's
  // JSON schema allows. Never anything but QuickBooksParseError.
  it('throws nothing but QuickBooksParseError on reports missing sections, columns, metadata or rows', () => {
    const damaged = fc.record({
      g: reportArb('ProfitAndLoss', PNL_GROUPS, fc.oneof(validAmount, invalidAmount)),
      drop: fc.constantFrom('Columns', 'Rows', 'Header', 'MetaData', 'ColType', 'none', 'dates', 'all-total'),
    });
    fc.assert(
      fc.property(damaged, ({ g, drop }) => {
        const r = structuredClone(g.report) as QboReport & Record<string, unknown>;
        if (drop === 'Columns' || drop === 'Rows' || drop === 'Header') delete r[drop];
        for (const col of r.Columns?.Column ?? []) {
          if (drop === 'MetaData') delete col.MetaData;
          if (drop === 'ColType') delete col.ColType;
          if (drop === 'dates') col.MetaData = col.MetaData?.map((m) => (m.Name === 'EndDate' ? { ...m, Value: '31/12/2025' } : m));
          if (drop === 'all-total' && col.ColType === 'Money') col.MetaData = [{ Name: 'ColKey', Value: 'total' }];
        }
        try {
          parseProfitAndLoss(r);
          monthlyFigures(r, { ...r, Header: { ...r.Header, ReportName: 'BalanceSheet' } });
        } catch (err) {
          expect(err, String(err)).to.be.instanceOf(QuickBooksParseError);
        }
      }),
      { numRuns: RUNS },
    );
  });

  // JSON that breaks the documented shape (`Columns.Column: [null]`, `Rows.Row: 5`, a
  // number for a ColData value...) is a handled sync failure, never a TypeError (exit 1).
  it('throws nothing but QuickBooksParseError on arbitrary JSON in place of any part of a report', () => {
    fc.assert(
      fc.property(reportArb('ProfitAndLoss', PNL_GROUPS, validAmount), fc.array(fc.nat(), { maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), (g, path, junk) => {
        const r = mutate(g.report, path, junk) as QboReport;
        try {
          parseProfitAndLoss(r);
        } catch (err) {
          expect(err, String(err)).to.be.instanceOf(QuickBooksParseError);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
