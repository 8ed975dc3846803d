/**
 * The drift engine: a pure function from one company's facts for a month to its
 * drift report. No database, no clock of its own: the facts come from set-based
 * queries (lib/sql/drift.ts) and the caller passes the period and the time.
 */
import { abs, fixed2, parseDecimal, percentChange, type Hundredths } from './decimal.ts';
import { writeNarrative } from './narrative.ts';
import type { DriftPeriod } from './period.ts';
import {
  CATEGORY_KEYS,
  DRIFT_REPORT_VERSION,
  type CategoryMovement,
  type Direction,
  type DriftReport,
  type FinancialMonth,
  type Money,
  type SignalSeverity,
} from './report.ts';

/** A COMPLETED assessment as the queries return it. */
export interface AssessmentFact {
  /** numeric text. */
  briScore: string;
  /** Category key → score text (from `category_scores`); null when absent. */
  categoryScores: Record<string, unknown> | null;
  completedAt: Date;
}

export interface ValuationFact {
  valuation: string;
  currency: string;
  createdAt: Date;
}

export interface FinancialMonthFact {
  /** 'YYYY-MM-DD', the first day of the month. */
  periodStart: string;
  revenue: string | null;
  ebitda: string | null;
}

/** Everything the engine needs about one company and one month. */
export interface CompanyFacts {
  company: { id: string; name: string };
  bri: {
    /** Latest COMPLETED assessment with completed_at < period start. */
    start: AssessmentFact | null;
    /** Latest COMPLETED assessment with completed_at < period end. */
    end: AssessmentFact | null;
    /** COMPLETED assessments inside the month. */
    completedInPeriod: number;
  };
  valuation: { start: ValuationFact | null; end: ValuationFact | null };
  tasks: { completed: number; pending: number; overdue: number };
  signals: { opened: Partial<Record<SignalSeverity, number>>; resolved: number };
  financials: { latest: FinancialMonthFact; previous: FinancialMonthFact | null } | null;
}

/** A change of at least this many BRI points (up or down) is a direction: 1.00, in hundredths. */
export const DIRECTION_THRESHOLD: Hundredths = 100n;

/** The direction of a BRI movement (JOBS.md): NO_DATA without an end score; a first-ever score is IMPROVING. */
export function directionOf(start: Hundredths | null, end: Hundredths | null): Direction {
  if (end === null) return 'NO_DATA';
  if (start === null) return 'IMPROVING';
  const delta = end - start;
  if (delta >= DIRECTION_THRESHOLD) return 'IMPROVING';
  if (delta <= -DIRECTION_THRESHOLD) return 'DECLINING';
  return 'STABLE';
}

function categoryMovements(start: AssessmentFact | null, end: AssessmentFact | null): CategoryMovement[] {
  return CATEGORY_KEYS.map((key) => {
    const s = parseDecimal(start?.categoryScores?.[key]);
    const e = parseDecimal(end?.categoryScores?.[key]);
    return { key, start: fixed2(s), end: fixed2(e), delta: s !== null && e !== null ? fixed2(e - s) : null };
  });
}

/** The (up to) three largest absolute non-zero movements, largest first; ties keep category order. */
export function topMovers(categories: CategoryMovement[], count = 3): CategoryMovement[] {
  return categories
    .map((c, i) => ({ c, i, abs: abs(parseDecimal(c.delta) ?? 0n) }))
    .filter((m) => m.abs !== 0n)
    .sort((a, b) => (b.abs > a.abs ? 1 : b.abs < a.abs ? -1 : a.i - b.i))
    .slice(0, count)
    .map(({ c }) => c);
}

function money(v: ValuationFact | null): Money | null {
  const amount = parseDecimal(v?.valuation);
  return v && amount !== null ? { amount: fixed2(amount)!, currency: v.currency.trim().toUpperCase() } : null;
}

function financialMonth(f: FinancialMonthFact): FinancialMonth {
  return { month: f.periodStart.slice(0, 7), revenue: fixed2(parseDecimal(f.revenue)), ebitda: fixed2(parseDecimal(f.ebitda)) };
}

const change = (from: string | null | undefined, to: string | null | undefined) => {
  const a = parseDecimal(from);
  const b = parseDecimal(to);
  return { change: a !== null && b !== null ? fixed2(b - a) : null, percent: percentChange(a, b) };
};

/** Computes one company's drift report for `period`, as of `generatedAt`. */
export function computeDriftReport(facts: CompanyFacts, period: DriftPeriod, generatedAt: Date): DriftReport {
  const startScore = parseDecimal(facts.bri.start?.briScore);
  const endScore = parseDecimal(facts.bri.end?.briScore);
  const categories = categoryMovements(facts.bri.start, facts.bri.end);

  const valStart = money(facts.valuation.start);
  const valEnd = money(facts.valuation.end);
  const sameCurrency = valStart && valEnd && valStart.currency === valEnd.currency;
  const valChange = sameCurrency ? change(valStart.amount, valEnd.amount) : null;

  const opened = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, ...facts.signals.opened };
  const latest = facts.financials ? financialMonth(facts.financials.latest) : null;
  const previous = facts.financials?.previous ? financialMonth(facts.financials.previous) : null;
  const revenue = change(previous?.revenue, latest?.revenue);
  const ebitda = change(previous?.ebitda, latest?.ebitda);

  const report: Omit<DriftReport, 'narrative'> = {
    version: DRIFT_REPORT_VERSION,
    company: { id: facts.company.id, name: facts.company.name },
    period: { month: period.month, start: period.start.toISOString(), end: period.end.toISOString() },
    generatedAt: generatedAt.toISOString(),
    bri: {
      start: fixed2(startScore),
      end: fixed2(endScore),
      delta: startScore !== null && endScore !== null ? fixed2(endScore - startScore) : null,
      direction: directionOf(startScore, endScore),
      firstAssessment: startScore === null && endScore !== null,
      startAssessedAt: facts.bri.start?.completedAt.toISOString() ?? null,
      endAssessedAt: facts.bri.end?.completedAt.toISOString() ?? null,
      assessmentsInPeriod: facts.bri.completedInPeriod,
    },
    categories,
    topMovers: topMovers(categories),
    valuation: {
      start: valStart,
      end: valEnd,
      change: valChange?.change && valEnd ? { amount: valChange.change, currency: valEnd.currency } : null,
      changePercent: valChange?.percent ?? null,
    },
    tasks: { ...facts.tasks },
    signals: { opened: { ...opened, total: opened.CRITICAL + opened.HIGH + opened.MEDIUM + opened.LOW }, resolved: facts.signals.resolved },
    financials: latest
      ? { latest, previous, revenueChange: revenue.change, revenueChangePercent: revenue.percent, ebitdaChange: ebitda.change, ebitdaChangePercent: ebitda.percent }
      : null,
  };
  return { ...report, narrative: writeNarrative(report) };
}
