/**
 * The shared email layout: a header with the brand, the body, and a footer with
 * the unsubscribe and preferences links, in the markup that common mail clients
 * render alike (Gmail, Outlook, Apple Mail): nested tables, inline styles, a
 * 600px column that shrinks to the screen on phones, no web fonts, no scripts.
 * Each email has a plain-text twin.
 *
 * "Compiled once": the static shell (everything but the content) is built when this
 * module loads; rendering an email only fills its slots. Every value that came from
 * data goes through `escapeHtml` here or in the template that uses these helpers.
 */
import escapeHtml from 'escape-html';
import { tag, type Substituted, type SubstitutionTemplate, type Values } from '../substitution.ts';

export { escapeHtml };

/** Colours and fonts, in one place. */
export const THEME = {
  brand: '#1f3a5f',
  accent: '#2f7d5b',
  text: '#1f2933',
  muted: '#616e7c',
  border: '#e4e7eb',
  background: '#f5f7fa',
  card: '#ffffff',
  // Unquoted family names (valid CSS): the markup quotes its attributes with ', so that
  // the mail/send JSON needs no escapes for them (bench/FINDINGS.md, round four).
  font: '-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, Helvetica, Arial, sans-serif',
} as const;

/** What an email puts into the layout. */
export interface LayoutContent {
  /** The <title> and the heading. */
  title: string;
  /** The preview line mail clients show next to the subject (hidden in the body). */
  preheader: string;
  /** Body HTML, already escaped (build it with the helpers below). */
  bodyHtml: string;
  /** Body as plain text. */
  bodyText: string;
  /** APP_BASE_URL. */
  appBaseUrl: string;
  /** Where "Unsubscribe" goes (see `unsubscribeUrl`). */
  unsubscribeUrl: string;
  /** Why the reader gets this email, one sentence (footer). */
  reason: string;
}

/** The page in the app where a user turns an email type off (and everything off). */
export function unsubscribeUrl(appBaseUrl: string, type: 'DRIFT_REPORT' | 'INACTIVITY_NUDGE'): string {
  return `${appBaseUrl}/settings/notifications?unsubscribe=${type === 'DRIFT_REPORT' ? 'drift_reports' : 'inactivity_nudges'}`;
}

/** Where users manage all their email preferences. */
export function preferencesUrl(appBaseUrl: string): string {
  return `${appBaseUrl}/settings/notifications`;
}

const SLOT = /\{\{(\w+)\}\}/g;

/** Splits a template once into literal parts and slot names, so filling it is a join. */
function compile(template: string): (values: Record<string, string>) => string {
  const parts: Array<string | { slot: string }> = [];
  let last = 0;
  for (const m of template.matchAll(SLOT)) {
    parts.push(template.slice(last, m.index));
    parts.push({ slot: m[1]! });
    last = m.index + m[0].length;
  }
  parts.push(template.slice(last));
  return (values) => parts.map((p) => (typeof p === 'string' ? p : (values[p.slot] ?? ''))).join('');
}

/**
 * The font of cells inside nested tables, for Outlook on Windows only (Word's
 * engine does not inherit a font into a nested table; every other client does,
 * from the section's cell, which sets THEME.font). Repeating the font stack on
 * every inner cell made a fifth of a drift report's bytes.
 */
const NESTED_FONT = `td{font-family:${THEME.font};}`;

const SHELL = compile(`<!DOCTYPE html>
<html lang='en' xmlns='http://www.w3.org/1999/xhtml'>
<head>
<meta charset='utf-8'>
<meta name='viewport' content='width=device-width, initial-scale=1'>
<meta name='x-apple-disable-message-reformatting'>
<meta name='color-scheme' content='light'>
<title>{{title}}</title>
<!--[if mso]><style>${NESTED_FONT}</style><![endif]-->
<style>
  @media only screen and (max-width: 620px) {
    .container { width: 100% !important; }
    .px { padding-left: 20px !important; padding-right: 20px !important; }
  }
</style>
</head>
<body style='margin:0;padding:0;background-color:${THEME.background};'>
<div style='display:none;max-height:0;overflow:hidden;mso-hide:all;font-size:1px;line-height:1px;color:${THEME.background};'>{{preheader}}</div>
<table role='presentation' width='100%' cellpadding='0' cellspacing='0' border='0' style='background-color:${THEME.background};'>
  <tr>
    <td align='center' style='padding:24px 12px;'>
      <table role='presentation' class='container' width='600' cellpadding='0' cellspacing='0' border='0' style='width:600px;max-width:600px;'>
        <tr>
          <td class='px' style='background-color:${THEME.brand};padding:20px 32px;border-radius:8px 8px 0 0;'>
            <a href='{{appBaseUrl}}' style='font-family:${THEME.font};font-size:20px;font-weight:700;color:#ffffff;text-decoration:none;'>Exit OSx</a>
          </td>
        </tr>
        <tr>
          <td class='px' style='background-color:${THEME.card};padding:32px;font-family:${THEME.font};font-size:16px;line-height:24px;color:${THEME.text};'>
            <h1 style='margin:0 0 16px 0;font-family:${THEME.font};font-size:24px;line-height:32px;font-weight:700;color:${THEME.text};'>{{title}}</h1>
{{body}}
          </td>
        </tr>
        <tr>
          <td class='px' style='background-color:${THEME.card};border-top:1px solid ${THEME.border};padding:20px 32px;border-radius:0 0 8px 8px;font-family:${THEME.font};font-size:12px;line-height:18px;color:${THEME.muted};'>
            {{reason}}<br>
            <a href='{{unsubscribeUrl}}' style='color:${THEME.muted};text-decoration:underline;'>Unsubscribe</a>
            &nbsp;&middot;&nbsp;
            <a href='{{preferencesUrl}}' style='color:${THEME.muted};text-decoration:underline;'>Email preferences</a><br>
            Exit OSx &middot; helping owners build a business buyers want.
          </td>
        </tr>
      </table>
    </td>
  </tr>
</table>
</body>
</html>
`);

const TEXT_SHELL = compile(`EXIT OSX

{{title}}

{{body}}

--
{{reason}}
Unsubscribe: {{unsubscribeUrl}}
Email preferences: {{preferencesUrl}}
`);

/**
 * Puts content into the layout, whole; returns the HTML and plain-text versions.
 * The jobs render with `renderLayoutSubstituted`; this is what its filling must
 * give (test/email/templates.test.ts).
 */
export function renderLayout(c: LayoutContent): { html: string; text: string } {
  const html = SHELL({ title: escapeHtml(c.title), preheader: escapeHtml(c.preheader), body: c.bodyHtml, ...htmlConstants(c) });
  const text = TEXT_SHELL({ title: c.title, body: c.bodyText.trim(), ...textConstants(c) });
  return { html, text };
}

/** The HTML slots that are the same for every email of a kind in a run. */
function htmlConstants(c: LayoutContent): Record<string, string> {
  return { appBaseUrl: escapeHtml(c.appBaseUrl), unsubscribeUrl: escapeHtml(c.unsubscribeUrl), preferencesUrl: escapeHtml(preferencesUrl(c.appBaseUrl)), reason: escapeHtml(c.reason) };
}

/** The plain-text slots that are the same for every email of a kind in a run. */
function textConstants(c: LayoutContent): Record<string, string> {
  return { unsubscribeUrl: c.unsubscribeUrl, preferencesUrl: preferencesUrl(c.appBaseUrl), reason: c.reason };
}

/** The tags of what differs between two emails of one kind in the layout. */
const TAG = { title: tag('title'), preheader: tag('preheader'), reason: tag('reason'), textTitle: tag('text.title'), textBody: tag('text.body'), textReason: tag('text.reason') } as const;

/**
 * Shared templates by kind (app and unsubscribe link; at most 16), then by the body's shape:
 * at most SHAPES_MAX shapes a kind, the oldest forgotten first (an email whose
 * shape was forgotten gets a template of its own and is sent alone). A shape is
 * found by comparing the markup with each known one, which for strings of
 * different lengths costs nothing: hashing 13 kB of markup per email cost more
 * than the request it saved (bench/FINDINGS.md, round five).
 */
const SHAPES_MAX = 64;
const kinds = new Map<string, Array<{ body: string; template: SubstitutionTemplate }>>();

function sharedTemplate(c: LayoutContent, body: string): SubstitutionTemplate {
  const kind = `${c.appBaseUrl}\n${c.unsubscribeUrl}`;
  let shapes = kinds.get(kind);
  if (!shapes && kinds.size < 16) kinds.set(kind, (shapes = []));
  for (const known of shapes ?? []) if (known.body === body) return known.template;
  const template = {
    html: SHELL({ ...htmlConstants(c), title: TAG.title, preheader: TAG.preheader, body, reason: TAG.reason }),
    text: TEXT_SHELL({ ...textConstants(c), title: TAG.textTitle, body: TAG.textBody, reason: TAG.textReason }),
  };
  if (shapes) {
    if (shapes.length >= SHAPES_MAX) shapes.shift();
    shapes.push({ body, template });
  }
  return template;
}

/**
 * `renderLayout`'s content as a shared template and this email's values, so that
 * emails of one kind can share a SendGrid request (lib/email/substitution.ts);
 * filling the template gives exactly what `renderLayout` gives. The body is markup
 * with tags (`shape.put`) and goes into the template: emails whose bodies have the
 * same shape share it.
 */
export function renderLayoutSubstituted(c: LayoutContent, shape: Values): Substituted {
  const { values } = shape;
  values[TAG.title] = escapeHtml(c.title);
  values[TAG.preheader] = escapeHtml(c.preheader);
  values[TAG.reason] = escapeHtml(c.reason);
  values[TAG.textTitle] = c.title;
  values[TAG.textBody] = c.bodyText.trim();
  values[TAG.textReason] = c.reason;
  return { template: sharedTemplate(c, c.bodyHtml), values };
}

/** A paragraph of escaped text. */
export function paragraph(text: string): string {
  return `<p style='margin:0 0 16px 0;'>${escapeHtml(text)}</p>`;
}

/** A call-to-action button (a table, so Outlook draws it too). */
export function button(href: string, label: string): string {
  return `<table role='presentation' cellpadding='0' cellspacing='0' border='0' style='margin:24px 0;'>
  <tr>
    <td align='center' bgcolor='${THEME.accent}' style='border-radius:6px;background-color:${THEME.accent};'>
      <a href='${escapeHtml(href)}' style='display:inline-block;padding:14px 28px;font-family:${THEME.font};font-size:16px;font-weight:700;line-height:20px;color:#ffffff;text-decoration:none;border-radius:6px;'>${escapeHtml(label)}</a>
    </td>
  </tr>
</table>`;
}

/** A bordered card (one per company, per section). `innerHtml` is already escaped. */
export function card(innerHtml: string): string {
  return `<table role='presentation' width='100%' cellpadding='0' cellspacing='0' border='0' style='margin:0 0 16px 0;border:1px solid ${THEME.border};border-radius:6px;'>
  <tr>
    <td style='padding:16px 20px;font-family:${THEME.font};font-size:15px;line-height:22px;color:${THEME.text};'>
${innerHtml}
    </td>
  </tr>
</table>`;
}

/** Muted small text. */
export function muted(text: string): string {
  return `<span style='color:${THEME.muted};font-size:14px;'>${escapeHtml(text)}</span>`;
}
