/**
 * The monthly drift report email (generate-drift-reports): the company and month,
 * the BRI with its change (colour and arrow), the six categories start → end as
 * table-drawn bars (no images, no scripts: Gmail, Outlook and Apple Mail draw them
 * alike), the top movers, tasks and signals, valuation and financials when there
 * are any, the narrative, and a button to the app; plus the plain-text twin.
 * Rendered from the stored report JSON alone, so an email still owed for an older
 * report renders the same as it would have on the day.
 */
import { abs, fixed2, formatDelta, formatMoney, formatMoneyChange, formatPercent, formatScore, parseDecimal } from '../../drift/decimal.ts';
import { CATEGORY_LABELS } from '../../drift/narrative.ts';
import { monthName, previousMonthName } from '../../drift/period.ts';
import type { CategoryMovement, Direction, DriftReport } from '../../drift/report.ts';
import { shapedMarkup, substitutedEmail, Values, type SubstitutedEmail } from '../substitution.ts';
import { button, card, escapeHtml, muted, paragraph, renderLayoutSubstituted, THEME, unsubscribeUrl } from './layout.ts';

/*
 * How the markup takes what comes from the report: `put(html)` (Values.put) turns
 * an escaped fragment into a tag, so the markup keeps only the report's shape
 * (which cards, rows and bars it has) and reports of one shape share a template and
 * a SendGrid request (lib/email/substitution.ts). A fragment whose markup varies
 * (a change, the movers) is one value, so that its branches make no shapes of their
 * own. Each section puts its values first, then takes its markup from
 * `shapedMarkup` under a key that decides it (its first tag and its branches), so
 * the markup of a shape is built once, not per report. Helpers that escape what
 * they are given (paragraph, button) take a tag unchanged: a tag has no character
 * escapeHtml rewrites.
 */

/** Template version, recorded with the email (bump when the wording changes). */
export const DRIFT_REPORT_TEMPLATE_VERSION = 'drift-report/v1';

export interface DriftEmailRecipient {
  name: string | null;
}

const COLORS = { up: '#2f7d5b', down: '#c0392b', flat: THEME.muted, startBar: '#c5cdd6', track: '#eef1f4' } as const;
const BAR_WIDTH = 160;
/**
 * Arrows and dashes as character references: the HTML stays Latin-1, which V8
 * keeps one byte per character, so serializing and sending it costs about half
 * of what one ▲ in 22 kB of markup made it cost (bench/FINDINGS.md, round two).
 */
const HTML = { up: '&#9650;', down: '&#9660;', flat: '&rarr;', dash: '&mdash;' } as const;

/** The link to the report in the app. */
export function reportUrl(appBaseUrl: string, report: DriftReport): string {
  return `${appBaseUrl}/companies/${encodeURIComponent(report.company.id)}/drift-reports/${report.period.month}`;
}

function tone(delta: string | null, direction?: Direction): { color: string; arrow: string; word: string } {
  if (direction === 'NO_DATA') return { color: COLORS.flat, arrow: '', word: 'Not scored yet' };
  const d = direction ? null : parseDecimal(delta);
  if (direction === 'IMPROVING' || (d !== null && d > 0n)) return { color: COLORS.up, arrow: HTML.up, word: 'Improving' };
  if (direction === 'DECLINING' || (d !== null && d < 0n)) return { color: COLORS.down, arrow: HTML.down, word: 'Declining' };
  return { color: COLORS.flat, arrow: HTML.flat, word: 'Stable' };
}

function subjectOf(r: DriftReport): string {
  const month = monthName(r.period.month);
  const { bri } = r;
  const lead = `${r.company.name}: your ${month} drift report`;
  if (bri.direction === 'NO_DATA' || bri.end === null) return lead;
  if (bri.start === null) return `${lead} (first BRI score: ${formatScore(bri.end)})`;
  const delta = fixed2(abs(parseDecimal(bri.delta) ?? 0n))!;
  if (bri.direction === 'IMPROVING') return `${lead} (BRI up ${formatScore(delta)} to ${formatScore(bri.end)})`;
  if (bri.direction === 'DECLINING') return `${lead} (BRI down ${formatScore(delta)} to ${formatScore(bri.end)})`;
  return `${lead} (BRI steady at ${formatScore(bri.end)})`;
}

/** Cells of BAR_WIDTH filled for a score of 0 to 100 (hundredths): score × BAR_WIDTH / 100, rounded half up, within the bar. */
function barCells(score: bigint): number {
  if (score <= 0n) return 0;
  // score / 100 (hundredths) × BAR_WIDTH / 100, i.e. score × BAR_WIDTH / 10000, half up.
  const cells = Number((score * BigInt(BAR_WIDTH) * 2n + 10_000n) / 20_000n);
  return Math.min(BAR_WIDTH, cells);
}

/** The cells of a bar filled `filled` of BAR_WIDTH: the widths of its one or two cells (an empty or full bar has one). */
function barWidths(filled: number): number[] {
  return filled === 0 || filled === BAR_WIDTH ? [BAR_WIDTH] : [filled, BAR_WIDTH - filled];
}

/**
 * A horizontal bar drawn with table cells, `filled` of BAR_WIDTH in `color` (markup,
 * or a tag when it varies), the rest in the track colour; `widths` are the tags of
 * its cells' widths (barWidths). An empty or full bar (a score within 0.3 of 0 or
 * 100, rare) has one cell, a shape of its own.
 */
function bar(widths: string[], filled: number, color: string, height: number): string {
  // Size and colour as attributes only: every client honours width, height and
  // bgcolor on a cell, and the same again in style doubled the bars' bytes.
  const cell = (w: string, c: string) => `<td width='${w}' height='${height}' bgcolor='${c}' style='font-size:0;line-height:0;'>&nbsp;</td>`;
  const cells = filled === 0 ? cell(widths[0]!, COLORS.track) : filled === BAR_WIDTH ? cell(widths[0]!, color) : cell(widths[0]!, color) + cell(widths[1]!, COLORS.track);
  return `<table role='presentation' width='${BAR_WIDTH}' cellpadding='0' cellspacing='0' border='0'><tr>${cells}</tr></table>`;
}

/** Cells of BAR_WIDTH filled for a score (decimal text; none: empty). */
function filledOf(score: string | null): number {
  return score === null ? 0 : barCells(parseDecimal(score) ?? 0n);
}

/** A bar's kind, for a shape's key: empty, full, or both cells. */
function barKind(filled: number): string {
  return filled === 0 ? 'e' : filled === BAR_WIDTH ? 'f' : 'm';
}

/** A fragment of the body: its markup, and the key that decides it (see shapedMarkup). */
interface Shaped {
  key: string;
  html: string;
}

/** The fragment whose markup `key` decides: built by `build` the first time only. */
function shaped(key: string, build: () => string): Shaped {
  return { key, html: shapedMarkup(key, build) };
}

function heroHtml(shape: Values, r: DriftReport): Shaped {
  const { bri } = r;
  const t = tone(bri.delta, bri.direction);
  const prev = previousMonthName(r.period.month);
  let score: string;
  let change: string;
  if (bri.end === null) {
    score = `<span style='font-size:28px;line-height:36px;font-weight:700;color:${THEME.muted};'>Not scored yet</span>`;
    change = muted('Complete a BRI assessment to see where you stand.');
  } else {
    score = `<span style='font-size:44px;line-height:48px;font-weight:700;color:${THEME.brand};'>${escapeHtml(formatScore(bri.end))}</span><span style='font-size:16px;color:${THEME.muted};'> / 100</span>`;
    change = bri.start === null
      ? `<span style='font-weight:700;color:${t.color};'>${t.arrow} First assessment</span>`
      : `<span style='font-weight:700;color:${t.color};'>${t.arrow} ${escapeHtml(formatDelta(bri.delta!))} points</span> <span style='color:${THEME.muted};font-size:14px;'>from ${escapeHtml(formatScore(bri.start))} at the end of ${escapeHtml(prev)}</span>`;
  }
  const badge = bri.end === null ? '' : `<span style='display:inline-block;padding:2px 10px;border-radius:10px;background-color:${t.color};color:#ffffff;font-size:12px;font-weight:700;letter-spacing:0.5px;text-transform:uppercase;'>${escapeHtml(t.word)}</span>`;
  const key = `hero${shape.next}`;
  const [scoreTag, changeTag, badgeTag] = [shape.put(score), shape.put(change), shape.put(badge)];
  return shaped(key, () =>
    card(`<div style='font-size:13px;color:${THEME.muted};text-transform:uppercase;letter-spacing:0.5px;margin:0 0 4px 0;'>Buyer Readiness Index</div>
<div style='margin:0 0 6px 0;'>${scoreTag}</div>
<div style='margin:0 0 10px 0;'>${changeTag}</div>
${badgeTag}`),
  );
}

/** A category's row, and its key (which bars it draws, from which tag): the same key, the same markup. */
function categoryRow(shape: Values, c: CategoryMovement): Shaped {
  const { put } = shape;
  const t = tone(c.delta);
  const first = shape.next;
  // The values, in the order of their tags in the row's markup.
  const startFilled = c.start === null ? -1 : filledOf(c.start);
  const startWidths = startFilled < 0 ? [] : barWidths(startFilled).map((w) => put(String(w)));
  const endColor = put(c.delta !== null && parseDecimal(c.delta) !== 0n ? t.color : THEME.brand);
  const endFilled = filledOf(c.end);
  const endWidths = barWidths(endFilled).map((w) => put(String(w)));
  const label = put(escapeHtml(CATEGORY_LABELS[c.key]));
  const values = put(c.end === null ? HTML.dash : c.start === null ? escapeHtml(formatScore(c.end)) : `${escapeHtml(formatScore(c.start))} ${HTML.flat} ${escapeHtml(formatScore(c.end))}`);
  const delta = put(c.delta === null ? '' : `<span style='color:${t.color};font-weight:700;'>${t.arrow} ${escapeHtml(formatDelta(c.delta))}</span>`);
  return shaped(`row${first}${startFilled < 0 ? 'n' : barKind(startFilled)}${barKind(endFilled)}`, () => {
    const bars = (startFilled >= 0 ? `<div style='margin:0 0 3px 0;'>${bar(startWidths, startFilled, COLORS.startBar, 6)}</div>` : '') + bar(endWidths, endFilled, endColor, 10);
    // The font comes from the card's cell (see NESTED_FONT in layout.ts).
    const td = `font-size:14px;line-height:20px;color:${THEME.text};padding:7px 0;border-bottom:1px solid ${THEME.border};vertical-align:middle;`;
    return `<tr>
  <td style='${td}padding-right:8px;'>${label}</td>
  <td width='${BAR_WIDTH}' style='${td}width:${BAR_WIDTH}px;'>${bars}</td>
  <td align='right' style='${td}padding-left:8px;white-space:nowrap;'>${values}</td>
  <td align='right' width='64' style='${td}width:64px;white-space:nowrap;'>${delta}</td>
</tr>`;
  });
}

function categoriesHtml(shape: Values, r: DriftReport): Shaped {
  const { put } = shape;
  if (r.categories.every((c) => c.end === null)) return { key: '', html: '' };
  const legend = r.categories.some((c) => c.start !== null)
    ? `<div style='margin:8px 0 0 0;font-size:12px;color:${THEME.muted};'><span style='display:inline-block;width:12px;height:6px;background-color:${COLORS.startBar};'></span> start of month &nbsp; <span style='display:inline-block;width:12px;height:10px;background-color:${THEME.brand};'></span> end of month (<span style='color:${COLORS.up};'>green</span> up, <span style='color:${COLORS.down};'>red</span> down)</div>`
    : '';
  const movers = r.topMovers.length
    ? `<div style='margin:12px 0 0 0;font-size:14px;'><strong>Biggest movers:</strong> ${r.topMovers.map((m) => `${escapeHtml(CATEGORY_LABELS[m.key])} <span style='color:${tone(m.delta).color};font-weight:700;'>${tone(m.delta).arrow}&nbsp;${escapeHtml(formatDelta(m.delta!))}</span>`).join(' &middot; ')}</div>`
    : '';
  const rows = r.categories.map((c) => categoryRow(shape, c));
  const moversTag = put(movers);
  // The card's markup is its rows' and the legend's: built once per key.
  return shaped(`cat${rows.map((row) => row.key).join('')}${legend ? 'l' : ''}${moversTag}`, () =>
    card(`<div style='font-size:17px;font-weight:700;margin:0 0 8px 0;'>Categories</div>
<table role='presentation' width='100%' cellpadding='0' cellspacing='0' border='0' style='border-collapse:collapse;'>
${rows.map((row) => row.html).join('\n')}
</table>${legend}${moversTag}`),
  );
}

/** A figure of the work card: its colour and value are tags. */
function stat(colorTag: string, valueTag: string, label: string): string {
  return `<td align='center' width='33%' style='padding:4px;'>
  <div style='font-size:26px;line-height:32px;font-weight:700;color:${colorTag};'>${valueTag}</div>
  <div style='font-size:13px;line-height:18px;color:${THEME.muted};'>${escapeHtml(label)}</div>
</td>`;
}

function signalsLine(r: DriftReport): string {
  const { opened, resolved } = r.signals;
  const parts = (['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'] as const).filter((s) => opened[s] > 0).map((s) => `${opened[s]} ${s.toLowerCase()}`);
  const raised = opened.total ? `${opened.total} new ${opened.total === 1 ? 'signal' : 'signals'} (${parts.join(', ')})` : 'No new signals';
  return `${raised} · ${resolved ? `${resolved} resolved` : 'none resolved'}`;
}

function workHtml(shape: Values, r: DriftReport): Shaped {
  const { put } = shape;
  const { completed, pending, overdue } = r.tasks;
  const key = `work${shape.next}`;
  const tags = [put(completed ? COLORS.up : THEME.text), put(String(completed)), put(THEME.text), put(String(pending)), put(overdue ? COLORS.down : THEME.text), put(String(overdue)), put(escapeHtml(signalsLine(r)))];
  return shaped(key, () =>
    card(`<div style='font-size:17px;font-weight:700;margin:0 0 8px 0;'>Tasks and signals</div>
<table role='presentation' width='100%' cellpadding='0' cellspacing='0' border='0'><tr>
${stat(tags[0]!, tags[1]!, 'completed this month')}
${stat(tags[2]!, tags[3]!, 'still open')}
${stat(tags[4]!, tags[5]!, 'overdue')}
</tr></table>
<div style='margin:10px 0 0 0;font-size:14px;color:${THEME.text};'>${tags[6]}</div>`),
  );
}

function moneyChangeHtml(change: string | null, percent: string | null, currency: string): string {
  if (change === null) return '';
  const t = tone(change);
  const pct = percent !== null ? `, ${formatPercent(percent)}` : '';
  return ` <span style='color:${t.color};font-weight:700;'>${t.arrow} ${escapeHtml(formatMoneyChange(change, currency))}${escapeHtml(pct)}</span>`;
}

function valueRow(label: string, value: string, extra: string): string {
  return `<tr><td style='font-size:14px;line-height:22px;color:${THEME.muted};padding:3px 0;'>${escapeHtml(label)}</td>
<td align='right' style='font-size:15px;line-height:22px;color:${THEME.text};padding:3px 0;'><strong>${escapeHtml(value)}</strong>${extra}</td></tr>`;
}

function moneyHtml(shape: Values, r: DriftReport): Shaped {
  const rows: string[] = [];
  const v = r.valuation;
  if (v.end) rows.push(valueRow('Valuation estimate', formatMoney(v.end.amount, v.end.currency), moneyChangeHtml(v.change?.amount ?? null, v.changePercent, v.end.currency)));
  const f = r.financials;
  if (f) {
    const month = monthName(f.latest.month);
    if (f.latest.revenue !== null) rows.push(valueRow(`Revenue, ${month}`, formatMoney(f.latest.revenue), moneyChangeHtml(f.revenueChange, f.revenueChangePercent, 'USD')));
    if (f.latest.ebitda !== null) rows.push(valueRow(`EBITDA, ${month}`, formatMoney(f.latest.ebitda), moneyChangeHtml(f.ebitdaChange, f.ebitdaChangePercent, 'USD')));
  }
  if (!rows.length) return { key: '', html: '' };
  const note = f?.previous ? `<div style='margin:6px 0 0 0;'>${muted(`Financial changes compare with ${monthName(f.previous.month)}.`)}</div>` : '';
  const key = `money${shape.next}`;
  const [rowsTag, noteTag] = [shape.put(rows.join('\n')), shape.put(note)];
  return shaped(key, () =>
    card(`<div style='font-size:17px;font-weight:700;margin:0 0 8px 0;'>Value and financials</div>
<table role='presentation' width='100%' cellpadding='0' cellspacing='0' border='0'>${rowsTag}</table>${noteTag}`),
  );
}

function textOf(r: DriftReport, greeting: string, url: string): string {
  const lines: string[] = [greeting, ''];
  const { bri } = r;
  if (bri.end === null) lines.push('Buyer Readiness Index: not scored yet');
  else if (bri.start === null) lines.push(`Buyer Readiness Index: ${formatScore(bri.end)} / 100 (first assessment)`);
  else lines.push(`Buyer Readiness Index: ${formatScore(bri.end)} / 100 (${formatDelta(bri.delta!)} from ${formatScore(bri.start)}, ${tone(bri.delta, bri.direction).word.toLowerCase()})`);
  if (r.categories.some((c) => c.end !== null)) {
    lines.push('', 'Categories (start -> end):');
    for (const c of r.categories) {
      const values = c.end === null ? 'not scored' : c.start === null ? formatScore(c.end) : `${formatScore(c.start)} -> ${formatScore(c.end)} (${formatDelta(c.delta!)})`;
      lines.push(`  ${CATEGORY_LABELS[c.key]}: ${values}`);
    }
    if (r.topMovers.length) lines.push(`Biggest movers: ${r.topMovers.map((m) => `${CATEGORY_LABELS[m.key]} ${formatDelta(m.delta!)}`).join(', ')}`);
  }
  lines.push('', `Tasks: ${r.tasks.completed} completed this month, ${r.tasks.pending} still open, ${r.tasks.overdue} overdue`);
  lines.push(`Signals: ${signalsLine(r).replace(' · ', ', ')}`);
  const v = r.valuation;
  if (v.end) lines.push('', `Valuation estimate: ${formatMoney(v.end.amount, v.end.currency)}${v.change ? ` (${formatMoneyChange(v.change.amount, v.change.currency)}${v.changePercent ? `, ${formatPercent(v.changePercent)}` : ''})` : ''}`);
  const f = r.financials;
  if (f) {
    const month = monthName(f.latest.month);
    const chg = (c: string | null, p: string | null) => (c === null ? '' : ` (${formatMoneyChange(c)}${p ? `, ${formatPercent(p)}` : ''})`);
    if (!v.end) lines.push('');
    if (f.latest.revenue !== null) lines.push(`Revenue, ${month}: ${formatMoney(f.latest.revenue)}${chg(f.revenueChange, f.revenueChangePercent)}`);
    if (f.latest.ebitda !== null) lines.push(`EBITDA, ${month}: ${formatMoney(f.latest.ebitda)}${chg(f.ebitdaChange, f.ebitdaChangePercent)}`);
  }
  lines.push('', r.narrative, '', `See your full report: ${url}`);
  return lines.join('\n');
}

/**
 * Renders a drift report for one recipient: as the layout's template with the
 * report's shape and this report's values, so that reports of one shape share a
 * SendGrid request; `html` and `text` are filled in when read.
 */
export function renderDriftReportEmail(report: DriftReport, recipient: DriftEmailRecipient, appBaseUrl: string): SubstitutedEmail {
  const month = monthName(report.period.month);
  const firstName = recipient.name?.trim().split(/\s+/)[0];
  const what = report.bri.end === null ? `the ${month} report for ${report.company.name}` : `how ${report.company.name} moved in ${month}`;
  const greeting = `${firstName ? `Hi ${firstName}, here` : 'Here'} is ${what}`.replace(/\.?$/, '.'); // "Co." ends it already
  const url = reportUrl(appBaseUrl, report);
  const shape = new Values();
  const { put } = shape;
  const greetingTag = put(escapeHtml(greeting));
  const sections = [heroHtml(shape, report), categoriesHtml(shape, report), workHtml(shape, report), moneyHtml(shape, report)];
  const [narrativeTag, urlTag] = [put(escapeHtml(report.narrative)), put(escapeHtml(url))];
  // The body's markup is decided by its sections' keys (and the tags around them):
  // built once per shape, and then the same string, found at once among the known shapes.
  const bodyHtml = shapedMarkup(`body${greetingTag}${sections.map((x) => `|${x.key}`).join('')}|${narrativeTag}${urlTag}`, () =>
    [
      paragraph(greetingTag),
      ...sections.map((x) => x.html),
      `<div style='font-size:17px;font-weight:700;margin:8px 0 6px 0;'>In short</div>`,
      paragraph(narrativeTag),
      button(urlTag, 'See your full report'),
    ]
      .filter(Boolean)
      .join('\n'),
  );
  const substituted = renderLayoutSubstituted(
    {
      title: `${report.company.name} · ${month}`,
      preheader: report.narrative.split(/(?<=\.)\s/)[0] ?? report.narrative,
      bodyHtml,
      bodyText: textOf(report, greeting, url),
      appBaseUrl,
      unsubscribeUrl: unsubscribeUrl(appBaseUrl, 'DRIFT_REPORT'),
      reason: `You get this monthly report because you own ${report.company.name} on Exit OSx.`,
    },
    shape,
  );
  // One line, whatever the company's name holds.
  return substitutedEmail(subjectOf(report).replace(/\s+/g, ' ').trim(), substituted);
}
