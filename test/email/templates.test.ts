/**
 * The templates: the nudge's subject, content and plain-text twin; the shared
 * layout's footer and escaping; markup that mail clients render (tables, inline
 * styles, a viewport, no scripts).
 */
import { expect } from 'chai';
import { renderInactivityNudge, type NudgeData } from '../../lib/email/templates/inactivity-nudge.ts';
import { fill, Values } from '../../lib/email/substitution.ts';
import { button, escapeHtml, renderLayout, renderLayoutSubstituted } from '../../lib/email/templates/layout.ts';

const APP = 'https://app.example.test';
/** The product app's notification settings, opened on the nudges' unsubscribe (written out: not built by the code under test). */
const UNSUBSCRIBE_NUDGES = 'https://app.example.test/settings/notifications?unsubscribe=inactivity_nudges';
const data = (over: Partial<NudgeData> = {}): NudgeData => ({
  userName: 'Ava Chen',
  daysInactive: 23,
  companies: [{ name: 'Harbor Dental Co.', briScore: '64.25', pendingTaskCount: 5, pendingTaskTitles: ['Reconcile 24 months of books', 'Train a second-in-command', 'Register trademarks'] }],
  ...over,
});

describe('email templates', () => {
  describe('inactivity nudge', () => {
    it('says "We haven\'t seen you in N weeks" with N = floor(days / 7)', () => {
      expect(renderInactivityNudge(data({ daysInactive: 21 }), APP).subject).to.equal("We haven't seen you in 3 weeks");
      expect(renderInactivityNudge(data({ daysInactive: 27 }), APP).subject).to.equal("We haven't seen you in 3 weeks");
      expect(renderInactivityNudge(data({ daysInactive: 45 }), APP).subject).to.equal("We haven't seen you in 6 weeks");
      expect(renderInactivityNudge(data({ daysInactive: 7 }), APP).subject).to.equal("We haven't seen you in 1 week");
    });

    it('shows each company with its last BRI score, pending task count and up to three titles, in HTML and text', () => {
      const { html, text } = renderInactivityNudge(data(), APP);
      for (const body of [html, text]) {
        expect(body).to.contain('Harbor Dental Co.').and.contain('64.3 / 100').and.contain('5 pending tasks');
        expect(body).to.contain('Reconcile 24 months of books').and.contain('Register trademarks').and.contain('and 2 more');
        expect(body).to.contain('Get Back on Track').and.contain('Unsubscribe');
      }
      expect(text).to.contain(`Get Back on Track: ${APP}\n`);
      expect(text).to.contain('Hi Ava,');
      expect(text).to.contain(`Unsubscribe: ${UNSUBSCRIBE_NUDGES}\n`);
      expect(text).not.to.match(/<[a-z]/i);
    });

    it('says "not assessed yet" and "No pending tasks" when there is nothing to show', () => {
      const { html, text } = renderInactivityNudge(data({ companies: [{ name: 'New Co', briScore: null, pendingTaskCount: 0, pendingTaskTitles: [] }] }), APP);
      for (const body of [html, text]) expect(body).to.contain('not assessed yet').and.contain('No pending tasks');
    });

    it('names every company of an owner of several', () => {
      const { text } = renderInactivityNudge(data({ companies: [data().companies[0]!, { name: 'Summit HVAC LLC', briScore: '40.00', pendingTaskCount: 1, pendingTaskTitles: ['Write a competitor overview'] }] }), APP);
      expect(text).to.contain('Harbor Dental Co.').and.contain('Summit HVAC LLC').and.contain('1 pending task:').and.contain('your companies');
    });

    it('escapes names and titles that contain markup', () => {
      const { html } = renderInactivityNudge(data({ userName: '<b>Eve</b>', companies: [{ name: 'A&B <script>alert(1)</script>', briScore: '1', pendingTaskCount: 1, pendingTaskTitles: ['"quoted" <img src=x>'] }] }), APP);
      expect(html).not.to.contain('<script>').and.not.to.contain('<img').and.not.to.contain('<b>Eve');
      expect(html).to.contain('A&amp;B &lt;script&gt;').and.contain('&quot;quoted&quot; &lt;img');
    });

    it('is mobile-friendly email markup: tables, inline styles, a viewport, a 600px column, no scripts', () => {
      const { html } = renderInactivityNudge(data(), APP);
      expect(html).to.match(/^<!DOCTYPE html>/);
      expect(html).to.contain('name=\'viewport\'').and.contain('role=\'presentation\'').and.contain('max-width:600px');
      expect(html).to.contain(`href='${APP}'`);
      expect(html).to.contain(`href='${UNSUBSCRIBE_NUDGES}'`);
      expect(html).to.match(/<a href='https:\/\/app\.example\.test\/settings\/notifications\?unsubscribe=inactivity_nudges'[^>]*>Unsubscribe<\/a>/);
      expect(html).not.to.match(/<script|<link|class='[^']*'\s*>\s*$/);
    });
  });

  describe('layout', () => {
    it('puts the body between the header and the footer, escaping what it is given', () => {
      const { html, text } = renderLayout({ title: 'T & T', preheader: 'pre', bodyHtml: '<p>body {{title}}</p>', bodyText: 'body', appBaseUrl: APP, unsubscribeUrl: `${APP}/u?a=1&b=2`, reason: 'Because.' });
      expect(html).to.contain('<title>T &amp; T</title>').and.contain('<p>body {{title}}</p>').and.contain('href=\'https://app.example.test/u?a=1&amp;b=2\'');
      expect(html.indexOf('Exit OSx</a>')).to.be.lessThan(html.indexOf('<p>body')).and.lessThan(html.indexOf('Unsubscribe'));
      expect(text).to.contain('T & T').and.contain('body').and.contain(`Unsubscribe: ${APP}/u?a=1&b=2`).and.contain('Because.');
    });

    it('as one shared template and each email\'s values (SendGrid substitutions), fills in to exactly what renderLayout gives', () => {
      // The body's own value (`body`) is markup with a tag in the shared form, and in place in the whole one.
      const content = (title: string, body: string) => ({ title, preheader: 'pre <b>', bodyHtml: `<p>body of ${body} {{title}}</p>`, bodyText: ' body\n', appBaseUrl: APP, unsubscribeUrl: `${APP}/u?a=1&b=2`, reason: 'Because.' });
      const substituted = (title: string) => {
        const shape = new Values();
        return renderLayoutSubstituted(content(title, shape.put(escapeHtml(title))), shape);
      };
      const one = substituted('T & T');
      const two = substituted('Ünïcode 50%');
      expect(two.template).to.equal(one.template);
      for (const [s, title] of [[one, 'T & T'], [two, 'Ünïcode 50%']] as const) {
        const whole = renderLayout(content(title, escapeHtml(title)));
        expect(fill(s.template.html, s.values)).to.equal(whole.html);
        expect(fill(s.template.text, s.values)).to.equal(whole.text);
      }
      expect(one.template.html).to.contain('%%title%%').and.not.contain('T &amp; T');
    });

    it('draws buttons as tables with an escaped link', () => {
      // Attributes are quoted with ': both quotes in a value are escaped.
      expect(button(`https://x.test/?a=1&b="2"&c='3'`, 'Go')).to.contain(`href='https://x.test/?a=1&amp;b=&quot;2&quot;&amp;c=&#39;3&#39;'`).and.contain(`<table role='presentation'`);
    });
  });
});
