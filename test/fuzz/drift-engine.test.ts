/**
 * Property-based tests of the drift engine: arbitrary score histories (any BRI at
 * start and end within numeric(5,2), either missing, category scores as numbers,
 * text, garbage or absent) must always give the direction JOBS.md defines, an exact
 * decimal delta, and the three largest movers; and the reporting period of any
 * instant is the UTC calendar month before it.
 */
import { expect } from 'chai';
import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import { computeDriftReport, type AssessmentFact, type CompanyFacts } from '../../lib/drift/engine.ts';
import { periodOf, reportingPeriod } from '../../lib/drift/period.ts';
import { CATEGORY_KEYS } from '../../lib/drift/report.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

/** A BRI as PostgreSQL returns numeric(5,2): "0.00" to "100.00". */
const bri = fc.integer({ min: 0, max: 10_000 }).map((c) => new Decimal(c).div(100).toFixed(2));
/** A category score as the product may store it in jsonb: a number, numeric text, or something unusable. */
const categoryScore = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 10_000 }).map((c) => c / 100) },
  { weight: 3, arbitrary: bri },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, undefined, 'n/a', '', true, {}, Number.NaN) },
);
const categories = fc.option(fc.dictionary(fc.constantFrom(...CATEGORY_KEYS, 'UNKNOWN_KEY'), categoryScore), { nil: null });

const assessment = (completedAt: Date): fc.Arbitrary<AssessmentFact> =>
  fc.record({ briScore: bri, categoryScores: categories as fc.Arbitrary<Record<string, unknown> | null>, completedAt: fc.constant(completedAt) });

const PERIOD = periodOf('2026-02');
const AT = new Date('2026-03-01T06:00:00Z');

const facts: fc.Arbitrary<CompanyFacts> = fc.record({
  company: fc.record({ id: fc.constant('cmp_fuzz'), name: fc.string({ maxLength: 20 }) }),
  bri: fc.record({
    start: fc.option(assessment(new Date('2026-01-20T10:00:00Z')), { nil: null }),
    end: fc.option(assessment(new Date('2026-02-20T10:00:00Z')), { nil: null }),
    completedInPeriod: fc.nat(5),
  }),
  valuation: fc.constant({ start: null, end: null }),
  tasks: fc.record({ completed: fc.nat(20), pending: fc.nat(20), overdue: fc.nat(20) }),
  signals: fc.record({ opened: fc.constant({}), resolved: fc.nat(5) }),
  financials: fc.constant(null),
});

/** An end that is the start plus a small move (the interesting region around ±1.0), within 0..100. */
const nearThreshold: fc.Arbitrary<CompanyFacts> = fc
  .tuple(facts, fc.integer({ min: 0, max: 10_000 }), fc.oneof(fc.constantFrom(-101, -100, -99, 0, 99, 100, 101), fc.integer({ min: -150, max: 150 })))
  .map(([f, startCents, moveCents]) => {
    const endCents = Math.min(10_000, Math.max(0, startCents + moveCents));
    const at = (c: number, d: string): AssessmentFact => ({ briScore: new Decimal(c).div(100).toFixed(2), categoryScores: null, completedAt: new Date(d) });
    return { ...f, bri: { ...f.bri, start: at(startCents, '2026-01-20T10:00:00Z'), end: at(endCents, '2026-02-20T10:00:00Z') } };
  });

/** The score the engine must read from a category value: a finite number or numeric text, else none. */
function scoreOf(v: unknown): Decimal | null {
  if (typeof v === 'number') return Number.isFinite(v) ? new Decimal(v) : null;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return new Decimal(v.trim());
  return null;
}

describe('drift engine (properties)', function () {
  this.timeout(30_000);

  const check = (f: CompanyFacts) => {
    const r = computeDriftReport(f, PERIOD, AT);
    const start = f.bri.start ? new Decimal(f.bri.start.briScore) : null;
    const end = f.bri.end ? new Decimal(f.bri.end.briScore) : null;
    // Direction (JOBS.md): NO_DATA iff no end; IMPROVING iff delta >= 1.0 or a first score; DECLINING iff delta <= -1.0; else STABLE.
    const delta = start && end ? end.minus(start) : null;
    expect(r.bri.direction === 'NO_DATA', 'NO_DATA iff no end score').to.equal(end === null);
    expect(r.bri.direction === 'IMPROVING', 'IMPROVING').to.equal(Boolean((delta && delta.gte(1)) || (!start && end)));
    expect(r.bri.direction === 'DECLINING', 'DECLINING').to.equal(Boolean(delta && delta.lte(-1)));
    expect(r.bri.direction === 'STABLE', 'STABLE').to.equal(Boolean(delta && delta.gt(-1) && delta.lt(1)));
    // The delta is exact decimal arithmetic (no binary floating point), two places.
    expect(r.bri.delta).to.equal(delta === null ? null : delta.toFixed(2).replace(/^-0\.00$/, '0.00'));
    expect(r.bri.start).to.equal(start?.toFixed(2) ?? null);
    expect(r.bri.end).to.equal(end?.toFixed(2) ?? null);
    expect(r.bri.firstAssessment).to.equal(!start && end !== null);
    return r;
  };

  it('always gives the direction of JOBS.md and the exact delta, for any pair of scores', () => {
    fc.assert(fc.property(facts, (f) => void check(f)), { numRuns: RUNS });
  });

  it('puts the ±1.0 boundary exactly: +1.00 improves, +0.99 is stable, -1.00 declines', () => {
    fc.assert(fc.property(nearThreshold, (f) => void check(f)), { numRuns: RUNS });
  });

  it('lists all six categories with start, end and exact delta, and the top movers are the 3 largest absolute non-zero deltas', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const r = check(f);
        expect(r.categories.map((c) => c.key)).to.deep.equal([...CATEGORY_KEYS]);
        for (const c of r.categories) {
          const s = scoreOf(f.bri.start?.categoryScores?.[c.key]);
          const e = scoreOf(f.bri.end?.categoryScores?.[c.key]);
          expect(c.start, `${c.key} start`).to.equal(s === null ? null : s.toFixed(2));
          expect(c.end, `${c.key} end`).to.equal(e === null ? null : e.toFixed(2));
          // Inputs have two decimals, so the rounded delta is exactly end - start.
          expect(c.delta, `${c.key} delta`).to.equal(s && e ? e.minus(s).toFixed(2).replace(/^-0\.00$/, '0.00') : null);
        }
        const moved = r.categories.filter((c) => c.delta !== null && !new Decimal(c.delta).isZero());
        const abs = (c: { delta: string | null }) => new Decimal(c.delta!).abs();
        expect(r.topMovers.length).to.equal(Math.min(3, moved.length));
        // Largest first; nothing left out moved more than the smallest listed.
        for (let i = 1; i < r.topMovers.length; i++) expect(abs(r.topMovers[i - 1]!).gte(abs(r.topMovers[i]!))).to.equal(true);
        const listed = new Set(r.topMovers.map((c) => c.key));
        const smallest = r.topMovers.length ? abs(r.topMovers.at(-1)!) : null;
        for (const c of moved) if (!listed.has(c.key)) expect(smallest !== null && abs(c).lte(smallest), `${c.key} left out`).to.equal(true);
        for (const c of r.topMovers) expect(r.categories).to.deep.include(c);
      }),
      { numRuns: RUNS },
    );
  });

  it('reports on the UTC calendar month before any instant, whatever the hour', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('1970-02-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (now) => {
        const p = reportingPeriod(now);
        const thisMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
        expect(p.end.toISOString()).to.equal(thisMonth.toISOString());
        expect(p.start.getTime()).to.be.lessThan(p.end.getTime());
        expect(p.start.getUTCDate()).to.equal(1);
        expect(p.start.toISOString().slice(11)).to.equal('00:00:00.000Z');
        expect(p.month).to.equal(p.start.toISOString().slice(0, 7));
        // The month before: its next month is this one.
        expect(new Date(Date.UTC(p.start.getUTCFullYear(), p.start.getUTCMonth() + 1, 1)).getTime()).to.equal(p.end.getTime());
      }),
      { numRuns: RUNS },
    );
  });
});
