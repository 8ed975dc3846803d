/**
 * The drift report email rendered from report JSON alone: what a reader sees in
 * each situation, and the markup rules (escaped data, table bars, no scripts or
 * external images).
 */
import { expect } from 'chai';
import { computeDriftReport, type CompanyFacts } from '../../lib/drift/engine.ts';
import { someFacts } from './helpers.ts';
import { periodOf } from '../../lib/drift/period.ts';
import { renderDriftReportEmail } from '../../lib/email/templates/drift-report.ts';

const FEB = periodOf('2026-02');
const AT = new Date('2026-03-01T06:00:00Z');
const APP = 'https://app.exitosx.test';
const cats = (f: number, t: number, o: number, m: number, l: number, p: number) => ({ FINANCIAL: String(f), TRANSFERABILITY: String(t), OPERATIONAL: String(o), MARKET: String(m), LEGAL_TAX: String(l), PERSONAL: String(p) });

const facts = (over: Partial<CompanyFacts> = {}): CompanyFacts => someFacts(over, { id: 'cmp/1', name: 'Bluewater "Print" & Co.' });

const full = computeDriftReport(facts({
  bri: {
    start: { briScore: '64.00', categoryScores: cats(70, 50, 60, 65, 80, 55), completedAt: new Date('2026-01-15T00:00:00Z') },
    end: { briScore: '61.20', categoryScores: cats(62, 50, 61, 65, 80, 58), completedAt: new Date('2026-02-15T00:00:00Z') },
    completedInPeriod: 1,
  },
  valuation: { start: { valuation: '850000.00', currency: 'USD', createdAt: AT }, end: { valuation: '830000.00', currency: 'USD', createdAt: AT } },
  tasks: { completed: 2, pending: 4, overdue: 1 },
  signals: { opened: { CRITICAL: 1 }, resolved: 0 },
  financials: { latest: { periodStart: '2026-01-01', revenue: '40500.00', ebitda: '-1200.00' }, previous: null },
}), FEB, AT);

describe('drift report email', () => {
  const email = renderDriftReportEmail(full, { name: 'Priya Patel' }, APP);

  it('says in the subject what happened to the BRI', () => {
    expect(email.subject).to.equal('Bluewater "Print" & Co.: your February 2026 drift report (BRI down 2.8 to 61.2)');
  });

  it('shows the BRI with its change in red with a down arrow', () => {
    expect(email.html).to.include('61.2</span>');
    expect(email.html).to.match(/color:#c0392b;'>&#9660; -2\.8 points<\/span>/); // ▼
    expect(email.html).to.include('from 64 at the end of January 2026');
    expect(email.html).to.include('Declining');
  });

  it('keeps its own markup Latin-1 (arrows and dashes as character references), so the HTML is one byte per character', () => {
    for (const c of ['▲', '▼', '→', '—']) expect(email.html).not.to.include(c);
    expect(Buffer.from(email.html, 'latin1').toString('latin1') === email.html, 'a character outside Latin-1').to.equal(true);
  });

  it('draws the six categories as table bars, start and end, without images or scripts', () => {
    for (const label of ['Financial', 'Transferability', 'Operational', 'Market', 'Legal &amp; tax', 'Personal']) expect(email.html).to.include(`>${label}</td>`);
    // Financial 70 → 62 on a 160px bar: 112px then 99px (62 × 1.6 = 99.2).
    expect(email.html).to.include('<td width=\'112\' height=\'6\' bgcolor=\'#c5cdd6\'');
    expect(email.html).to.include('<td width=\'99\' height=\'10\' bgcolor=\'#c0392b\'');
    expect(email.html).to.include('70 &rarr; 62'); // →
    expect(email.html).not.to.match(/<script|<img|\bsrc=|url\(/i);
    expect(email.html).to.include('<strong>Biggest movers:</strong> Financial');
  });

  it('escapes the data it shows', () => {
    expect(email.html).to.include('Bluewater &quot;Print&quot; &amp; Co.');
    expect(email.html).not.to.include('"Print"');
  });

  it('shows tasks, signals, valuation and financials, and links to the report in the app', () => {
    expect(email.html).to.include('1 new signal (1 critical) · none resolved');
    expect(email.html).to.include('Valuation estimate');
    expect(email.html).to.include('$830,000</strong>');
    expect(email.html).to.include('-$20,000, -2.4%');
    expect(email.html).to.include('Revenue, January 2026');
    expect(email.html).to.include('-$1,200');
    expect(email.html).to.include('href=\'https://app.exitosx.test/companies/cmp%2F1/drift-reports/2026-02\'');
  });

  it('links "Unsubscribe" to the product app\'s notification settings, on drift reports, in HTML and text', () => {
    // Written out here, not built by the code under test: the URL the product app serves.
    const url = 'https://app.exitosx.test/settings/notifications?unsubscribe=drift_reports';
    expect(email.html).to.include(`href='${url}'`);
    expect(email.html).to.match(/<a href='https:\/\/app\.exitosx\.test\/settings\/notifications\?unsubscribe=drift_reports'[^>]*>Unsubscribe<\/a>/);
    expect(email.text).to.include(`Unsubscribe: ${url}\n`);
  });

  it('has a plain-text part with the same figures and the narrative', () => {
    expect(email.text).to.include('Hi Priya, here is how Bluewater "Print" & Co. moved in February 2026.');
    expect(email.text).to.include('Buyer Readiness Index: 61.2 / 100 (-2.8 from 64, declining)');
    expect(email.text).to.include('  Financial: 70 -> 62 (-8)');
    expect(email.text).to.include('Tasks: 2 completed this month, 4 still open, 1 overdue');
    expect(email.text).to.include('Valuation estimate: $830,000 (-$20,000, -2.4%)');
    expect(email.text).to.include(full.narrative);
    expect(email.text).to.include('See your full report: https://app.exitosx.test/companies/cmp%2F1/drift-reports/2026-02');
    expect(email.text).not.to.match(/<[a-z]/i);
  });

  it('tells an owner without any assessment that the company is not scored yet, and leaves out empty sections', () => {
    const r = renderDriftReportEmail(computeDriftReport(facts(), FEB, AT), { name: null }, APP);
    expect(r.subject).to.equal('Bluewater "Print" & Co.: your February 2026 drift report');
    expect(r.html).to.include('Not scored yet');
    expect(r.html).not.to.include('>Categories<');
    expect(r.html).not.to.include('Value and financials');
    expect(r.text).to.match(/^EXIT OSX\n\nBluewater "Print" & Co\. · February 2026\n\nHere is the February 2026 report for Bluewater "Print" & Co\.\n/);
    expect(r.html.match(/Not scored yet/g)).to.have.length(1);
  });

  it('celebrates a first assessment, with end bars only', () => {
    const r = renderDriftReportEmail(computeDriftReport(facts({ bri: { start: null, end: { briScore: '48.00', categoryScores: cats(40, 45, 50, 55, 60, 38), completedAt: AT }, completedInPeriod: 1 } }), FEB, AT), { name: 'Sam' }, APP);
    expect(r.subject).to.include('(first BRI score: 48)');
    expect(r.html).to.include('First assessment');
    expect(r.html).not.to.include('height=\'6\'');
  });
});
