/**
 * Property-based tests of the drift email as SendGrid substitutions
 * (lib/email/substitution.ts): for arbitrary reports, SendGrid's filling of the
 * shared template (tag by tag, as test/support/sendgrid-server.ts does it) gives
 * the email's own HTML and text, no tag is left, and reports fall into a handful
 * of shapes, so that they can share requests.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { computeDriftReport, type CompanyFacts } from '../../lib/drift/engine.ts';
import { periodOf } from '../../lib/drift/period.ts';
import { substitutable, type SubstitutionTemplate } from '../../lib/email/substitution.ts';
import { renderDriftReportEmail } from '../../lib/email/templates/drift-report.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const FEB = periodOf('2026-02');
const AT = new Date('2026-03-01T06:00:00Z');

const score = fc.integer({ min: 0, max: 10_000 }).map((c) => (c / 100).toFixed(2));
const categories = fc.option(fc.record({ FINANCIAL: score, TRANSFERABILITY: score, OPERATIONAL: score, MARKET: score, LEGAL_TAX: score, PERSONAL: score }), { nil: null });
const assessment = (at: string) => fc.option(fc.record({ briScore: score, categoryScores: categories as fc.Arbitrary<Record<string, unknown> | null>, completedAt: fc.constant(new Date(at)) }), { nil: null });
const money = fc.integer({ min: -100_000_000, max: 100_000_000 }).map((c) => (c / 100).toFixed(2));
const valuation = fc.option(fc.record({ valuation: money, currency: fc.constantFrom('USD', 'EUR'), createdAt: fc.constant(AT) }), { nil: null });
const month = (periodStart: string) => fc.record({ periodStart: fc.constant(periodStart), revenue: fc.option(money, { nil: null }), ebitda: fc.option(money, { nil: null }) });
const facts = fc.record({
  company: fc.record({ id: fc.string({ maxLength: 8 }), name: fc.string({ maxLength: 40 }) }),
  bri: fc.record({ start: assessment('2026-01-20T10:00:00Z'), end: assessment('2026-02-20T10:00:00Z'), completedInPeriod: fc.nat(3) }),
  valuation: fc.record({ start: valuation, end: valuation }),
  tasks: fc.record({ completed: fc.nat(20), pending: fc.nat(20), overdue: fc.nat(20) }),
  signals: fc.record({ opened: fc.record({ CRITICAL: fc.nat(2), HIGH: fc.nat(2), LOW: fc.nat(2) }, { requiredKeys: [] }), resolved: fc.nat(3) }),
  financials: fc.option(fc.record({ latest: month('2026-01-01'), previous: fc.option(month('2025-12-01'), { nil: null }) }), { nil: null }),
}) as fc.Arbitrary<CompanyFacts>;

/** SendGrid's filling, written apart from lib/email/substitution.ts: each tag replaced everywhere, one tag after another. */
const sendgridFill = (template: string, values: Record<string, string>) => Object.entries(values).reduce((out, [tag, value]) => out.split(tag).join(value), template);

describe('drift email as SendGrid substitutions (property-based)', () => {
  it('fills in to the email itself, leaves no tag, and fits in SendGrid\'s 10,000 bytes unless a value has %%', () => {
    fc.assert(
      fc.property(facts, fc.option(fc.string({ maxLength: 20 }), { nil: null }), (f, name) => {
        const email = renderDriftReportEmail(computeDriftReport(f, FEB, AT), { name }, 'https://app.exitosx.test');
        const { template, values } = email.substituted;
        expect(sendgridFill(template.html, values)).to.equal(email.html);
        expect(sendgridFill(template.text, values)).to.equal(email.text);
        if (Object.values(values).some((v) => v.includes('%%'))) return; // sent alone, filled in by us
        expect(email.html).not.to.match(/%%\w+%%/);
        expect(substitutable(values)).to.equal(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps reports to a handful of shapes (one template each), whatever their figures (but for bars empty or full)', () => {
    const shapes = new Set<SubstitutionTemplate>();
    // An empty or full bar (a score within 0.3 of 0 or 100) draws one cell, not two: a shape of its own.
    const inside = (f: CompanyFacts): boolean =>
      [f.bri.start, f.bri.end].every((a) => !a?.categoryScores || Object.values(a.categoryScores).every((v) => Number(v) > 0.5 && Number(v) < 99.5));
    fc.assert(
      fc.property(facts.filter(inside), (f) => {
        shapes.add(renderDriftReportEmail(computeDriftReport(f, FEB, AT), { name: 'Sam' }, 'https://app.exitosx.test').substituted.template);
      }),
      { numRuns: Math.max(RUNS, 300) },
    );
    // Which cards there are (scored or not, first assessment or not, valuation and financials or not).
    expect(shapes.size).to.be.within(2, 16);
  });
});
