/**
 * The one-paragraph, plain-English summary of a drift report, built from the
 * report's own figures (so the words never disagree with the numbers).
 */
import { abs, fixed2, formatDelta, formatMoney, formatPercent, formatScore, parseDecimal } from './decimal.ts';
import { monthName } from './period.ts';
import type { CategoryKey, DriftReport } from './report.ts';

/** How each category is named to readers. */
export const CATEGORY_LABELS: Record<CategoryKey, string> = {
  FINANCIAL: 'Financial',
  TRANSFERABILITY: 'Transferability',
  OPERATIONAL: 'Operational',
  MARKET: 'Market',
  LEGAL_TAX: 'Legal & tax',
  PERSONAL: 'Personal',
};

/** "Acme's", but "Harbor Partners'". */
const possessive = (name: string) => (/s$/i.test(name) ? `${name}'` : `${name}'s`);

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

function listing(parts: string[]): string {
  if (parts.length <= 1) return parts.join('');
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

function briSentence(r: Omit<DriftReport, 'narrative'>, month: string): string {
  const name = r.company.name;
  const { bri } = r;
  if (bri.direction === 'NO_DATA' || bri.end === null) {
    return `${name} had no completed Buyer Readiness Index (BRI) assessment by the end of ${month}, so its readiness could not be scored yet.`;
  }
  if (bri.start === null) return `${name} completed its first Buyer Readiness Index (BRI) assessment in ${month}, scoring ${formatScore(bri.end)} out of 100.`;
  const delta = abs(parseDecimal(bri.delta) ?? 0n);
  const points = `${formatScore(fixed2(delta)!)} ${delta === 100n ? 'point' : 'points'}`;
  if (bri.direction === 'IMPROVING') return `${possessive(name)} Buyer Readiness Index (BRI) rose ${points} in ${month}, from ${formatScore(bri.start)} to ${formatScore(bri.end)}.`;
  if (bri.direction === 'DECLINING') return `${possessive(name)} Buyer Readiness Index (BRI) fell ${points} in ${month}, from ${formatScore(bri.start)} to ${formatScore(bri.end)}.`;
  const quiet = bri.assessmentsInPeriod === 0 ? ', with no new assessment this month' : '';
  if (delta === 0n) return `${possessive(name)} Buyer Readiness Index (BRI) held steady at ${formatScore(bri.end)} in ${month}${quiet}.`;
  return `${possessive(name)} Buyer Readiness Index (BRI) was stable in ${month}, moving from ${formatScore(bri.start)} to ${formatScore(bri.end)} (${formatDelta(bri.delta!)})${quiet}.`;
}

function moversSentence(r: Omit<DriftReport, 'narrative'>): string | null {
  const [first, ...rest] = r.topMovers.map((m) => `${CATEGORY_LABELS[m.key]} (${formatDelta(m.delta!)})`);
  if (!first) return null;
  return rest.length ? `The biggest category movement was ${first}, followed by ${listing(rest)}.` : `The only category that moved was ${first}.`;
}

function valuationSentence(r: Omit<DriftReport, 'narrative'>): string | null {
  const { start, end, change, changePercent } = r.valuation;
  if (!end) return null;
  const endText = formatMoney(end.amount, end.currency);
  if (!start || !change) return `The latest valuation estimate is ${endText}.`;
  if (parseDecimal(change.amount) === 0n) return `The valuation estimate held at ${endText}.`;
  const pct = changePercent ? ` (${formatPercent(changePercent)})` : '';
  return `The valuation estimate moved from ${formatMoney(start.amount, start.currency)} to ${endText}${pct}.`;
}

function tasksSentence(r: Omit<DriftReport, 'narrative'>): string {
  const { completed, pending, overdue } = r.tasks;
  const done = completed ? `${plural(completed, 'task was', 'tasks were')} completed during the month` : 'No tasks were completed during the month';
  if (!pending) return `${done}, and none remain open.`;
  const late = overdue ? ` (${overdue} overdue)` : '';
  return `${done}, and ${pending} ${pending === 1 ? 'remains' : 'remain'} open${late}.`;
}

function signalsSentence(r: Omit<DriftReport, 'narrative'>): string | null {
  const { opened, resolved } = r.signals;
  const bySeverity = (['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'] as const).filter((s) => opened[s] > 0).map((s) => `${opened[s]} ${s.toLowerCase()}`);
  if (opened.total === 0 && resolved === 0) return null;
  if (opened.total === 0) return `${plural(resolved, 'signal was', 'signals were')} resolved.`;
  const raised = `${plural(opened.total, 'new signal was', 'new signals were')} raised (${bySeverity.join(', ')})`;
  return resolved ? `${raised} and ${resolved} resolved.` : `${raised}.`;
}

function financialsSentence(r: Omit<DriftReport, 'narrative'>): string | null {
  const f = r.financials;
  if (!f) return null;
  const parts: string[] = [];
  const against = f.previous ? ` on ${monthName(f.previous.month)}` : '';
  if (f.latest.revenue !== null) parts.push(`revenue was ${formatMoney(f.latest.revenue)}${f.revenueChangePercent ? ` (${formatPercent(f.revenueChangePercent)}${against})` : ''}`);
  if (f.latest.ebitda !== null) parts.push(`EBITDA ${f.latest.revenue !== null ? '' : 'was '}${formatMoney(f.latest.ebitda)}${f.ebitdaChangePercent ? ` (${formatPercent(f.ebitdaChangePercent)})` : ''}`);
  if (!parts.length) return null;
  return `In ${monthName(f.latest.month)}, ${listing(parts)}.`;
}

/** One paragraph that sums up the report. */
export function writeNarrative(r: Omit<DriftReport, 'narrative'>): string {
  const month = monthName(r.period.month);
  return [briSentence(r, month), moversSentence(r), valuationSentence(r), tasksSentence(r), signalsSentence(r), financialsSentence(r)]
    .filter((s): s is string => Boolean(s))
    .join(' ');
}
