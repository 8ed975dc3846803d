/**
 * The report scanner (lib/quickbooks/report-scan.ts): it reads what JSON.parse
 * reads, the same way, or gives up; and the sync's figures from a scanned report
 * are those from JSON.parse's tree, errors included. Property-based, on the
 * fixtures and on random JSON, valid and broken.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { balanceSheetAsStored, profitAndLossAsStored } from '../../lib/quickbooks/report-parser.ts';
import { Cells, scanReport } from '../../lib/quickbooks/report-scan.ts';
import { profitAndLossReport, balanceSheetReport } from '../../lib/stand-ins/quickbooks-reports.ts';
import { ROOT } from '../support/run.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const fixtures = fs.readdirSync(path.join(ROOT, 'test/fixtures/quickbooks')).filter((f) => f.endsWith('.json')).map((f) => fs.readFileSync(path.join(ROOT, 'test/fixtures/quickbooks', f), 'utf8'));
const generated = [JSON.stringify(profitAndLossReport('r1', '2024-03-01', '2026-03-31', 'Accrual', {})), JSON.stringify(balanceSheetReport('r1', '2024-03-01', '2026-03-31', 'Accrual', {}), null, 2)];

/** A tree with every ColData list as what the mapping reads of it: the cells' `value`s (Cells expanded, other keys dropped). */
function normal(value: unknown, key = ''): unknown {
  if (key === 'ColData') {
    if (value instanceof Cells) return Array.from({ length: value.length }, (_, i) => value.value(i));
    return Array.isArray(value) ? value.map((cell) => (cell as { value?: unknown }).value) : value;
  }
  if (Array.isArray(value)) return value.map((v) => normal(v));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normal(v, k)]));
  return value;
}

/** What the sync makes of a text: its stored figures, or the error it throws. */
function stored(read: (text: string) => unknown, text: string) {
  const report = read(text) as never;
  const run = (f: () => unknown) => {
    try {
      return f();
    } catch (err) {
      return { error: (err as Error).constructor.name, message: (err as Error).message };
    }
  };
  return [run(() => profitAndLossAsStored(report)), run(() => balanceSheetAsStored(report))];
}

function agreesWithJsonParse(text: string): void {
  let parsed: unknown;
  let invalid = false;
  try {
    parsed = JSON.parse(text);
  } catch {
    invalid = true;
  }
  const scanned = scanReport(text);
  if (invalid) return void expect(scanned, `scanned invalid JSON ${JSON.stringify(text.slice(0, 200))}`).to.equal(undefined);
  if (scanned === undefined) return;
  expect(normal(scanned.tree)).to.deep.equal(normal(parsed));
}

/** A report-like JSON text: random ColData cells (some with ids, odd values, escapes) in rows and sections. */
const cellArb = fc.oneof(
  fc.record({ value: fc.oneof(fc.constantFrom('', '12.50', '-0.10', '1300', ' 7.1 ', '0.001', '1e3', 'Wages', 'Dépenses', 'a"b', 'tab\there', 'back\\slash', '\u2028'), fc.string({ maxLength: 12 })) }),
  fc.record({ value: fc.constantFrom('10.00', 'Checking'), id: fc.constantFrom('4', '55') }),
  fc.record({ id: fc.constant('9') }),
  fc.constant({}),
  fc.record({ value: fc.oneof(fc.integer(), fc.constant(null)) }),
);
const rowArb = fc.letrec<{ row: unknown }>((tie) => ({
  row: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.record({ type: fc.constant('Data'), ColData: fc.array(cellArb, { maxLength: 5 }) }),
    fc.record({ type: fc.constant('Section'), group: fc.constantFrom('Income', 'COGS', 'Expenses', 'NetIncome', 'TotalAssets', 'Liabilities', 'Equity', 'BankAccounts'), Header: fc.record({ ColData: fc.array(cellArb, { maxLength: 2 }) }), Rows: fc.record({ Row: fc.array(tie('row'), { maxLength: 3 }) }), Summary: fc.record({ ColData: fc.array(cellArb, { maxLength: 5 }) }) }, { requiredKeys: ['type'] }),
  ),
}));
const reportArb = fc.record({
  Header: fc.record({ ReportName: fc.constantFrom('ProfitAndLoss', 'BalanceSheet'), StartPeriod: fc.constant('2026-01-01'), EndPeriod: fc.constant('2026-04-30') }),
  Columns: fc.constant({ Column: [{ ColType: 'Account' }, ...['01', '02', '03', '04'].map((m) => ({ ColType: 'Money', MetaData: [{ Name: 'StartDate', Value: `2026-${m}-01` }, { Name: 'EndDate', Value: `2026-${m}-28` }] }))] }),
  Rows: fc.record({ Row: fc.array(rowArb.row, { maxLength: 5 }) }),
});
/** The same text with whitespace between tokens, pretty-printed or not. */
const textArb = fc.tuple(reportArb, fc.constantFrom(undefined, 1, '\t', ' \r\n')).map(([r, indent]) => JSON.stringify(r, null, indent));

/** A valid text broken at one place: a character dropped, doubled or replaced. */
const brokenArb = fc.tuple(fc.oneof(textArb, fc.constantFrom(...fixtures, ...generated)), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom('', '"', '{', '}', ',', ':', '\\', '\u0001', 'x', '[', ']', ' ', '0', 'e')).map(([text, at, with_]) => {
  // Anywhere in the text (a small integer would mostly break the Header).
  const i = Math.floor(at * text.length);
  return text.slice(0, i) + with_ + text.slice(i + 1);
});

describe('QuickBooks report scanner', function () {
  this.timeout(60_000);

  it('scans the fixtures and the loopback\'s reports as JSON.parse reads them, and the sync gets the same figures', () => {
    for (const text of [...fixtures, ...generated]) {
      agreesWithJsonParse(text);
      if (text.includes('"Rows"')) expect(scanReport(text), text.slice(0, 80)).to.not.equal(undefined);
      expect(stored(scanReportOrParse, text)).to.deep.equal(stored(JSON.parse, text));
    }
  });

  it('reads random report-shaped JSON as JSON.parse does (or gives up), with the same figures or the same error', () => {
    fc.assert(fc.property(textArb, (text) => {
      agreesWithJsonParse(text);
      expect(stored(scanReportOrParse, text)).to.deep.equal(stored(JSON.parse, text));
    }), { numRuns: RUNS });
  });

  it('gives up on every text JSON.parse refuses', () => {
    fc.assert(fc.property(brokenArb, (text) => agreesWithJsonParse(text)), { numRuns: RUNS * 5 });
    fc.assert(fc.property(fc.json(), (text) => agreesWithJsonParse(text)), { numRuns: RUNS });
    for (const text of ['', ' ', '{', '{}x', '{"a":tru}', '{"a":01}', '{"a":1.}', '{"a":-}', '{"a":"\u0000"}', '{"ColData":[{"value":"1"}', '{"ColData":[{"value":"1",}]}', '{"a":"\\q"}', '\ufeff{}', '{"a":1e}', '{"ColData":[{"value":"1\u0001"}]}', '{"ColData":[{"value":"1\\n"}]}', '{"ColData":[{"id":"1\u0001"}]}']) agreesWithJsonParse(text);
  });

  it('reads a report of more cells than its first scratch array holds, and the next report after it', () => {
    const many = JSON.stringify({ Header: {}, Rows: { Row: Array.from({ length: 300 }, (_, r) => ({ type: 'Data', ColData: Array.from({ length: 30 }, (_, i) => ({ value: `${r}.${i % 10}` })) })) } });
    agreesWithJsonParse(many);
    expect(scanReport(many)).to.not.equal(undefined);
    for (const text of generated) agreesWithJsonParse(text);
  });

  it('keeps an own __proto__ key out of reach by giving up', () => {
    expect(scanReport('{"__proto__":{"polluted":1},"Rows":{}}')).to.equal(undefined);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });
});

/** What the client does with `scan`: the scanned report, else JSON.parse's. */
function scanReportOrParse(text: string): unknown {
  return scanReport(text) ?? JSON.parse(text);
}
