/**
 * The three jobs as the bench sees them: how to read their items and emails from
 * the summary line.
 */
export type JobName = 'detect-inactivity' | 'generate-drift-reports' | 'sync-quickbooks';
export const JOB_NAMES: JobName[] = ['detect-inactivity', 'generate-drift-reports', 'sync-quickbooks'];

export interface BenchJob {
  name: JobName;
  /** What an item is, for the table. */
  itemLabel: string;
  /** Items from the summary. */
  items(summary: Record<string, unknown>): number;
  /** Emails sent, from the summary. */
  emails(summary: Record<string, unknown>): number;
  /** Extra CLI flags. */
  args: string[];
}

const n = (v: unknown) => (typeof v === 'number' ? v : 0);

export const BENCH_JOBS: Record<JobName, BenchJob> = {
  'detect-inactivity': {
    name: 'detect-inactivity',
    itemLabel: 'inactive owners',
    items: (s) => n(s.usersChecked),
    emails: (s) => n(s.emailsSent),
    args: [],
  },
  'generate-drift-reports': {
    name: 'generate-drift-reports',
    itemLabel: 'active companies',
    items: (s) => n(s.totalCompanies),
    emails: (s) => n(s.emailsSent),
    args: [],
  },
  'sync-quickbooks': {
    name: 'sync-quickbooks',
    itemLabel: 'integrations',
    items: (s) => n(s.integrationsChecked),
    emails: () => 0,
    args: [],
  },
};

/** The summary without its long lists (errorDetails, results), for the JSON. */
export function shortSummary(s: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!s) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (Array.isArray(v)) out[k] = v.length > 3 ? [...v.slice(0, 3), `… ${v.length - 3} more`] : v;
    else out[k] = v;
  }
  return out;
}
