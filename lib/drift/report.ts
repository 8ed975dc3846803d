/**
 * The drift report: what one company's month looked like, as stored in
 * `drift_reports.report` (jsonb) and rendered in the email. This file is the one
 * definition of that JSON shape. Every decimal (scores, money, percentages) is a
 * string in plain decimal notation, never a JSON number, so nothing drifts through
 * floating point on the way in or out; timestamps are ISO-8601 UTC strings.
 *
 * Versioning: `version` changes whenever a field is renamed, removed or changes
 * meaning; adding an optional field does not. Readers (the email of an older
 * report that is still owed) switch on it.
 */

/** The six BRI categories, in the order they are shown. */
export const CATEGORY_KEYS = ['FINANCIAL', 'TRANSFERABILITY', 'OPERATIONAL', 'MARKET', 'LEGAL_TAX', 'PERSONAL'] as const;
export type CategoryKey = (typeof CATEGORY_KEYS)[number];

/** How the BRI moved over the month (thresholds ±1.0 point). */
export type Direction = 'IMPROVING' | 'STABLE' | 'DECLINING' | 'NO_DATA';

export type SignalSeverity = 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export const SEVERITIES: readonly SignalSeverity[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];

/** Current version of the report JSON. */
export const DRIFT_REPORT_VERSION = 1;

/** A decimal as text, e.g. "61.50" or "-3.25". */
export type DecimalText = string;

export interface CategoryMovement {
  key: CategoryKey;
  /** Score at the start of the month (from the assessment that set the BRI at start); null when unknown. */
  start: DecimalText | null;
  end: DecimalText | null;
  /** end - start; null when either is unknown. */
  delta: DecimalText | null;
}

export interface Money {
  amount: DecimalText;
  /** ISO 4217 code. */
  currency: string;
}

export interface FinancialMonth {
  /** The calendar month, `YYYY-MM`. */
  month: string;
  revenue: DecimalText | null;
  ebitda: DecimalText | null;
}

/** Version 1 of the drift report. */
export interface DriftReportV1 {
  version: 1;
  company: { id: string; name: string };
  period: {
    /** `YYYY-MM`. */
    month: string;
    /** First instant of the month (inclusive). */
    start: string;
    /** First instant of the next month (exclusive). */
    end: string;
  };
  generatedAt: string;
  bri: {
    /** BRI of the latest COMPLETED assessment with completed_at < period start. */
    start: DecimalText | null;
    /** The same with completed_at < period end. */
    end: DecimalText | null;
    /** end - start; null when either is missing. */
    delta: DecimalText | null;
    direction: Direction;
    /** True when the company's first assessment was completed in this month. */
    firstAssessment: boolean;
    startAssessedAt: string | null;
    endAssessedAt: string | null;
    /** COMPLETED assessments with completed_at inside the month. */
    assessmentsInPeriod: number;
  };
  /** The six categories, always in CATEGORY_KEYS order. */
  categories: CategoryMovement[];
  /** Up to three categories with the largest absolute non-zero movement, largest first. */
  topMovers: CategoryMovement[];
  valuation: {
    /** Latest snapshot created before the period start / end. */
    start: Money | null;
    end: Money | null;
    /** end - start, in the same currency; null unless both are known in one currency. */
    change: Money | null;
    /** change / start × 100, two decimals; null when change is null or start is zero. */
    changePercent: DecimalText | null;
  };
  tasks: {
    /** completed_at inside the month. */
    completed: number;
    /** Created before the period end and now PENDING or IN_PROGRESS (today's status: history is not kept). */
    pending: number;
    /** Pending with due_at before the period end. */
    overdue: number;
  };
  signals: {
    /** Signals created inside the month, by severity. */
    opened: Record<SignalSeverity, number> & { total: number };
    /** Signals resolved inside the month. */
    resolved: number;
  };
  /** Absent (null) when the company has no monthly financials ending before the period end. */
  financials: {
    /** The latest month ending before the period end. */
    latest: FinancialMonth;
    /** The calendar month before `latest`, when stored. */
    previous: FinancialMonth | null;
    revenueChange: DecimalText | null;
    revenueChangePercent: DecimalText | null;
    ebitdaChange: DecimalText | null;
    ebitdaChangePercent: DecimalText | null;
  } | null;
  /** One plain-English paragraph summing up the above. */
  narrative: string;
}

/** The drift report as stored: a union of versions (only v1 so far). */
export type DriftReport = DriftReportV1;
