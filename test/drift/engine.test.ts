/**
 * The drift engine on its own: no database, hand-computed expectations.
 */
import { expect } from 'chai';
import { computeDriftReport, directionOf, topMovers, type CompanyFacts } from '../../lib/drift/engine.ts';
import { someFacts } from './helpers.ts';
import { parseDecimal } from '../../lib/drift/decimal.ts';
import { periodOf, reportingPeriod } from '../../lib/drift/period.ts';
import { CATEGORY_KEYS, DRIFT_REPORT_VERSION } from '../../lib/drift/report.ts';
import { ConfigError } from '../../lib/errors.ts';

const FEB = periodOf('2026-02');
const AT = new Date('2026-03-01T06:00:00Z');

const facts = (over: Partial<CompanyFacts> = {}): CompanyFacts => someFacts(over, { id: 'cmp_1', name: 'Harbor Dental LLC' });

const cats = (FINANCIAL: unknown, TRANSFERABILITY: unknown, OPERATIONAL: unknown, MARKET: unknown, LEGAL_TAX: unknown, PERSONAL: unknown) => ({ FINANCIAL, TRANSFERABILITY, OPERATIONAL, MARKET, LEGAL_TAX, PERSONAL });

describe('drift engine', () => {
  describe('a month with every kind of fact', () => {
    const report = computeDriftReport(
      facts({
        bri: {
          start: { briScore: '58.25', categoryScores: cats('60', '55.5', '70', '40', '65', '50'), completedAt: new Date('2026-01-20T10:00:00Z') },
          end: { briScore: '61.75', categoryScores: cats('66', '55.5', '68', '44.25', '65', '49'), completedAt: new Date('2026-02-18T10:00:00Z') },
          completedInPeriod: 1,
        },
        valuation: {
          start: { valuation: '1200000.10', currency: 'USD', createdAt: new Date('2026-01-05T00:00:00Z') },
          end: { valuation: '1260000.30', currency: 'USD', createdAt: new Date('2026-02-05T00:00:00Z') },
        },
        tasks: { completed: 3, pending: 5, overdue: 2 },
        signals: { opened: { HIGH: 1, MEDIUM: 2 }, resolved: 1 },
        financials: {
          latest: { periodStart: '2026-02-01', revenue: '120000.00', ebitda: '25000.50' },
          previous: { periodStart: '2026-01-01', revenue: '100000.00', ebitda: '25500.50' },
        },
      }),
      FEB,
      AT,
    );

    it('is version 1 and names the company and the period', () => {
      expect(report.version).to.equal(DRIFT_REPORT_VERSION).and.equal(1);
      expect(report.company).to.deep.equal({ id: 'cmp_1', name: 'Harbor Dental LLC' });
      expect(report.period).to.deep.equal({ month: '2026-02', start: '2026-02-01T00:00:00.000Z', end: '2026-03-01T00:00:00.000Z' });
      expect(report.generatedAt).to.equal('2026-03-01T06:00:00.000Z');
    });

    it('takes BRI 58.25 → 61.75 as +3.50, IMPROVING', () => {
      expect(report.bri).to.include({ start: '58.25', end: '61.75', delta: '3.50', direction: 'IMPROVING', firstAssessment: false, assessmentsInPeriod: 1 });
    });

    it('moves every category exactly and ranks the three largest absolute movers', () => {
      expect(report.categories.map((c) => c.key)).to.deep.equal([...CATEGORY_KEYS]);
      expect(report.categories.map((c) => c.delta)).to.deep.equal(['6.00', '0.00', '-2.00', '4.25', '0.00', '-1.00']);
      expect(report.topMovers.map((c) => [c.key, c.start, c.end, c.delta])).to.deep.equal([
        ['FINANCIAL', '60.00', '66.00', '6.00'],
        ['MARKET', '40.00', '44.25', '4.25'],
        ['OPERATIONAL', '70.00', '68.00', '-2.00'],
      ]);
    });

    it('computes the valuation change without float drift (in floats, 1260000.30 - 1200000.10 = 60000.19999…)', () => {
      expect(report.valuation.start).to.deep.equal({ amount: '1200000.10', currency: 'USD' });
      expect(report.valuation.end).to.deep.equal({ amount: '1260000.30', currency: 'USD' });
      expect(report.valuation.change).to.deep.equal({ amount: '60000.20', currency: 'USD' });
      // 60000.20 / 1200000.10 × 100 = 5.0000162…
      expect(report.valuation.changePercent).to.equal('5.00');
    });

    it('carries tasks and counts signals by severity', () => {
      expect(report.tasks).to.deep.equal({ completed: 3, pending: 5, overdue: 2 });
      expect(report.signals).to.deep.equal({ opened: { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 0, total: 3 }, resolved: 1 });
    });

    it('compares the latest financial month with the one before', () => {
      expect(report.financials).to.deep.equal({
        latest: { month: '2026-02', revenue: '120000.00', ebitda: '25000.50' },
        previous: { month: '2026-01', revenue: '100000.00', ebitda: '25500.50' },
        revenueChange: '20000.00',
        revenueChangePercent: '20.00',
        ebitdaChange: '-500.00',
        // -500 / 25500.50 × 100 = -1.96074…
        ebitdaChangePercent: '-1.96',
      });
    });

    it('writes one paragraph from the same figures', () => {
      expect(report.narrative).to.equal(
        "Harbor Dental LLC's Buyer Readiness Index (BRI) rose 3.5 points in February 2026, from 58.25 to 61.75. " +
          'The biggest category movement was Financial (+6), followed by Market (+4.25) and Operational (-2). ' +
          'The valuation estimate moved from $1,200,000 to $1,260,000 (+5.0%). ' +
          '3 tasks were completed during the month, and 5 remain open (2 overdue). ' +
          '3 new signals were raised (1 high, 2 medium) and 1 resolved. ' +
          'In February 2026, revenue was $120,000 (+20.0% on January 2026) and EBITDA $25,001 (-2.0%).',
      );
      expect(report.narrative).not.to.include('\n');
    });
  });

  describe('direction', () => {
    const d = (a: string | null, b: string | null) => directionOf(parseDecimal(a), parseDecimal(b));
    it('is IMPROVING at exactly +1.0 and STABLE just below', () => {
      expect(d('60.00', '61.00')).to.equal('IMPROVING');
      expect(d('60.00', '60.99')).to.equal('STABLE');
    });
    it('is DECLINING at exactly -1.0 and STABLE just above', () => {
      expect(d('60.00', '59.00')).to.equal('DECLINING');
      expect(d('60.00', '59.01')).to.equal('STABLE');
    });
    it('is NO_DATA without an end score, even with a start', () => {
      expect(d(null, null)).to.equal('NO_DATA');
      expect(d('60.00', null)).to.equal('NO_DATA');
    });
    it('is IMPROVING for a first-ever assessment (an end score and no start)', () => {
      expect(d(null, '40.00')).to.equal('IMPROVING');
    });
  });

  it('keeps decimals exact: 33.10 → 33.20 is +0.10, STABLE', () => {
    const r = computeDriftReport(facts({
      bri: {
        start: { briScore: '33.10', categoryScores: null, completedAt: new Date('2026-01-01T00:00:00Z') },
        end: { briScore: '33.20', categoryScores: null, completedAt: new Date('2026-02-02T00:00:00Z') },
        completedInPeriod: 1,
      },
    }), FEB, AT);
    expect(r.bri).to.include({ delta: '0.10', direction: 'STABLE' });
    expect(r.categories.every((c) => c.start === null && c.end === null && c.delta === null)).to.equal(true);
    expect(r.topMovers).to.deep.equal([]);
  });

  it('reports a first-ever assessment with no start, no delta and no movers', () => {
    const r = computeDriftReport(facts({
      bri: { start: null, end: { briScore: '47.50', categoryScores: cats(50, 40, 45, 55, 60, 35), completedAt: new Date('2026-02-10T00:00:00Z') }, completedInPeriod: 1 },
    }), FEB, AT);
    expect(r.bri).to.include({ start: null, end: '47.50', delta: null, direction: 'IMPROVING', firstAssessment: true });
    expect(r.categories[0]).to.deep.equal({ key: 'FINANCIAL', start: null, end: '50.00', delta: null });
    expect(r.topMovers).to.deep.equal([]);
    expect(r.narrative).to.match(/^Harbor Dental LLC completed its first Buyer Readiness Index \(BRI\) assessment in February 2026, scoring 47.5 out of 100\./);
  });

  it('reports NO_DATA and no financials for a company with nothing yet', () => {
    const r = computeDriftReport(facts(), FEB, AT);
    expect(r.bri).to.include({ start: null, end: null, delta: null, direction: 'NO_DATA', firstAssessment: false });
    expect(r.financials).to.equal(null);
    expect(r.valuation).to.deep.equal({ start: null, end: null, change: null, changePercent: null });
    expect(r.narrative).to.equal(
      'Harbor Dental LLC had no completed Buyer Readiness Index (BRI) assessment by the end of February 2026, so its readiness could not be scored yet. No tasks were completed during the month, and none remain open.',
    );
  });

  it('ignores category scores that are missing or not numbers', () => {
    const r = computeDriftReport(facts({
      bri: {
        start: { briScore: '50.00', categoryScores: { FINANCIAL: '50', MARKET: 'n/a' }, completedAt: new Date('2026-01-01T00:00:00Z') },
        end: { briScore: '52.00', categoryScores: { FINANCIAL: '53.5', MARKET: '60', PERSONAL: true }, completedAt: new Date('2026-02-01T00:00:00Z') },
        completedInPeriod: 1,
      },
    }), FEB, AT);
    expect(r.categories.find((c) => c.key === 'FINANCIAL')).to.deep.equal({ key: 'FINANCIAL', start: '50.00', end: '53.50', delta: '3.50' });
    expect(r.categories.find((c) => c.key === 'MARKET')).to.deep.equal({ key: 'MARKET', start: null, end: '60.00', delta: null });
    expect(r.categories.find((c) => c.key === 'PERSONAL')).to.deep.equal({ key: 'PERSONAL', start: null, end: null, delta: null });
  });

  it('gives no valuation change across currencies, and no percent from a zero start', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    const mixed = computeDriftReport(facts({ valuation: { start: { valuation: '100.00', currency: 'EUR', createdAt: at }, end: { valuation: '120.00', currency: 'USD', createdAt: at } } }), FEB, AT);
    expect(mixed.valuation.change).to.equal(null);
    expect(mixed.valuation.changePercent).to.equal(null);
    const zero = computeDriftReport(facts({ valuation: { start: { valuation: '0.00', currency: 'USD', createdAt: at }, end: { valuation: '120.00', currency: 'USD', createdAt: at } } }), FEB, AT);
    expect(zero.valuation.change).to.deep.equal({ amount: '120.00', currency: 'USD' });
    expect(zero.valuation.changePercent).to.equal(null);
  });

  it('keeps financials without a previous month, and their changes null', () => {
    const r = computeDriftReport(facts({ financials: { latest: { periodStart: '2025-11-01', revenue: '9.99', ebitda: null }, previous: null } }), FEB, AT);
    expect(r.financials).to.deep.equal({
      latest: { month: '2025-11', revenue: '9.99', ebitda: null }, previous: null,
      revenueChange: null, revenueChangePercent: null, ebitdaChange: null, ebitdaChangePercent: null,
    });
    expect(r.narrative).to.include('In November 2025, revenue was $9.99.');
  });

  it('breaks ties among movers by category order', () => {
    const mk = (key: (typeof CATEGORY_KEYS)[number], delta: string) => ({ key, start: '50.00', end: '50.00', delta });
    const movers = topMovers([mk('FINANCIAL', '2.00'), mk('TRANSFERABILITY', '-3.00'), mk('OPERATIONAL', '3.00'), mk('MARKET', '0.00'), mk('LEGAL_TAX', '-2.00'), mk('PERSONAL', '1.00')]);
    expect(movers.map((m) => m.key)).to.deep.equal(['TRANSFERABILITY', 'OPERATIONAL', 'FINANCIAL']);
  });
});

describe('drift period', () => {
  it('is the calendar month before the clock by default', () => {
    const p = reportingPeriod(new Date('2026-03-15T08:00:00Z'));
    expect([p.month, p.start.toISOString(), p.end.toISOString()]).to.deep.equal(['2026-02', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
  });
  it('crosses the year from January back to December', () => {
    const p = reportingPeriod(new Date('2026-01-01T06:00:00Z'));
    expect([p.month, p.start.toISOString(), p.end.toISOString()]).to.deep.equal(['2025-12', '2025-12-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
  });
  it('accepts an earlier --period and a month that ended at the very instant of the clock', () => {
    expect(reportingPeriod(new Date('2026-03-15T08:00:00Z'), '2025-07').start.toISOString()).to.equal('2025-07-01T00:00:00.000Z');
    expect(reportingPeriod(new Date('2026-03-01T00:00:00Z'), '2026-02').month).to.equal('2026-02');
  });
  it('refuses a --period that has not ended, naming the flag', () => {
    expect(() => reportingPeriod(new Date('2026-03-15T08:00:00Z'), '2026-03')).to.throw(ConfigError, /--period 2026-03 has not ended/);
    expect(() => reportingPeriod(new Date('2026-03-15T08:00:00Z'), '2027-01')).to.throw(ConfigError);
    expect(() => reportingPeriod(new Date('2026-03-15T08:00:00Z'), '2026-13')).to.throw(ConfigError, /--period must be a month/);
  });
});
