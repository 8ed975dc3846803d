/**
 * The inactivity nudge (detect-inactivity): "We haven't seen you in N weeks", each
 * owned company's last known BRI score and its pending tasks (count, up to three
 * titles), and a "Get Back on Track" button to the app (APP_BASE_URL).
 */
import { substitutedEmail, Values, type SubstitutedEmail } from '../substitution.ts';
import { button, card, escapeHtml, muted, paragraph, renderLayoutSubstituted, THEME, unsubscribeUrl } from './layout.ts';

/** Template version, recorded with the email (bump when the wording changes). */
export const INACTIVITY_NUDGE_VERSION = 'inactivity-nudge/v1';

export interface NudgeCompany {
  name: string;
  /** Last known BRI score (0-100, decimal text), or null when never assessed. */
  briScore: string | null;
  pendingTaskCount: number;
  /** Up to three titles of pending tasks. */
  pendingTaskTitles: string[];
}

export interface NudgeData {
  userName: string | null;
  daysInactive: number;
  companies: NudgeCompany[];
}

/** "N weeks", with "1 week" in the singular. */
function weeks(days: number): string {
  const n = Math.floor(days / 7);
  return `${n} ${n === 1 ? 'week' : 'weeks'}`;
}

function score(briScore: string | null): string {
  if (briScore === null) return 'not assessed yet';
  const n = Number(briScore);
  return Number.isFinite(n) ? `${Math.round(n * 10) / 10} / 100` : briScore;
}

function tasksLine(c: NudgeCompany): string {
  if (c.pendingTaskCount === 0) return 'No pending tasks';
  return `${c.pendingTaskCount} pending ${c.pendingTaskCount === 1 ? 'task' : 'tasks'}`;
}

/** A company's card: its markup in the template, what comes from data as values (`put`, see drift-report.ts); the titles are one value, so that their count makes no shape of its own. */
function companyHtml(put: (html: string) => string, c: NudgeCompany): string {
  const more = c.pendingTaskCount - c.pendingTaskTitles.length;
  const titles = c.pendingTaskTitles.length
    ? `<ul style='margin:8px 0 0 0;padding:0 0 0 20px;'>${c.pendingTaskTitles.map((t) => `<li style='margin:0 0 4px 0;'>${escapeHtml(t)}</li>`).join('')}</ul>` +
      (more > 0 ? `<div style='margin:4px 0 0 0;'>${muted(`and ${more} more`)}</div>` : '')
    : '';
  // The font comes from the card's cell (see NESTED_FONT in layout.ts).
  return card(
    `<div style='font-size:17px;font-weight:700;margin:0 0 8px 0;'>${put(escapeHtml(c.name))}</div>
<table role='presentation' width='100%' cellpadding='0' cellspacing='0' border='0'>
  <tr>
    <td style='font-size:15px;line-height:22px;color:${THEME.muted};padding:0 0 4px 0;'>Buyer Readiness Index</td>
    <td align='right' style='font-size:15px;line-height:22px;font-weight:700;color:${THEME.brand};padding:0 0 4px 0;'>${put(escapeHtml(score(c.briScore)))}</td>
  </tr>
  <tr>
    <td colspan='2' style='font-size:15px;line-height:22px;color:${THEME.text};'>${put(escapeHtml(tasksLine(c)))}${put(titles)}</td>
  </tr>
</table>`,
  );
}

function companyText(c: NudgeCompany): string {
  const more = c.pendingTaskCount - c.pendingTaskTitles.length;
  return [
    `* ${c.name}`,
    `  Buyer Readiness Index: ${score(c.briScore)}`,
    `  ${tasksLine(c)}${c.pendingTaskTitles.length ? ':' : ''}`,
    ...c.pendingTaskTitles.map((t) => `    - ${t}`),
    ...(more > 0 ? [`    and ${more} more`] : []),
  ].join('\n');
}

/**
 * Renders the nudge for one user (all their owned active companies): as the
 * layout's template with the nudge's shape, and this user's values, so that
 * nudges of one shape share a SendGrid request; `html` and `text` are filled in
 * when read.
 */
export function renderInactivityNudge(data: NudgeData, appBaseUrl: string): SubstitutedEmail {
  const subject = `We haven't seen you in ${weeks(data.daysInactive)}`;
  const firstName = data.userName?.trim().split(/\s+/)[0];
  const greeting = firstName ? `Hi ${firstName},` : 'Hi,';
  const intro =
    data.companies.length === 1
      ? `It has been ${data.daysInactive} days since you last worked on ${data.companies[0]!.name} in Exit OSx. Buyers reward owners who keep their readiness moving; here is where you left off.`
      : `It has been ${data.daysInactive} days since you last worked on your companies in Exit OSx. Buyers reward owners who keep their readiness moving; here is where you left off.`;
  const cta = appBaseUrl;
  // The markup is the nudge's shape (how many companies), in the template; the
  // rest are values (paragraph escapes a tag unchanged).
  const shape = new Values();
  const { put } = shape;
  const bodyHtml = [
    paragraph(put(escapeHtml(greeting))),
    paragraph(put(escapeHtml(intro))),
    ...data.companies.map((c) => companyHtml(put, c)),
    button(cta, 'Get Back on Track'),
    paragraph('A few minutes on one task this week keeps your exit plan on course.'),
  ].join('\n');
  const bodyText = [greeting, '', intro, '', ...data.companies.map((c) => companyText(c) + '\n'), `Get Back on Track: ${cta}`, '', 'A few minutes on one task this week keeps your exit plan on course.'].join('\n');
  const substituted = renderLayoutSubstituted({
    title: subject,
    preheader: `Your ${data.companies.length === 1 ? 'company is' : 'companies are'} waiting: pick up where you left off.`,
    bodyHtml,
    bodyText,
    appBaseUrl,
    unsubscribeUrl: unsubscribeUrl(appBaseUrl, 'INACTIVITY_NUDGE'),
    reason: 'You get this email because you own a company on Exit OSx and have not signed in for a while.',
  }, shape);
  return substitutedEmail(subject, substituted);
}
