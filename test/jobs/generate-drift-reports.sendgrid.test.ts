/**
 * generate-drift-reports through the loopback SendGrid (the real wire format,
 * checked against SendGrid's schema): what owners receive, and the retry of a
 * report whose email failed.
 */
import { expect } from 'chai';
import job from '../../jobs/generate-drift-reports.ts';
import { eachBackend } from '../support/db.ts';
import { aMember, anAssessment, anOwnedCompany, aUser, preferences } from '../support/factories.ts';
import { runInProcess } from '../support/run.ts';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';
import { emailLog, ledger, reportOf, scores } from '../drift/helpers.ts';

describe('generate-drift-reports with SendGrid', function () {
  this.timeout(60_000);

  eachBackend((db) => {
    let sendgrid: SendGridServer;
    before(async () => {
      sendgrid = await startSendGridServer();
    });
    after(() => sendgrid.close());
    beforeEach(async () => {
      await db().truncate();
      sendgrid.recover();
      sendgrid.requests.length = 0;
    });

    const run = () =>
      runInProcess(job, {}, {
        database: db().database,
        env: { SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url, EMAIL_MAX_RETRIES: '1', APP_BASE_URL: 'https://app.example.test' },
      });

    it('sends each owner one valid SendGrid message with the HTML and text report', async () => {
      const { company, user } = await anOwnedCompany(db().knex, { companyOver: { name: 'Smith & Sons <Roofing>' }, userOver: { name: 'Grace Hughes' } });
      await db().knex('assessments').where({ company_id: company.id }).update({ completed_at: new Date('2026-01-10T00:00:00Z'), bri_score: '60.00', category_scores: scores(60, 60, 60, 60, 60, 60) });
      await anAssessment(db().knex, company.id, { completed_at: new Date('2026-02-20T00:00:00Z'), bri_score: '57.50', category_scores: scores(52, 60, 61, 60, 60, 60) });

      const { summary } = await run();
      expect(summary).to.include({ generated: 1, emailsSent: 1, emailsFailed: 0 });
      const [mail] = sendgrid.accepted();
      expect(sendgrid.requests).to.have.length(1);
      const body = mail!.body as { personalizations: Array<{ to: Array<{ email: string }> }>; subject: string; content: Array<{ type: string; value: string }>; custom_args: Record<string, string>; categories: string[] };
      expect(body.personalizations[0]!.to[0]!.email).to.equal(user.email);
      expect(body.subject).to.equal('Smith & Sons <Roofing>: your February 2026 drift report (BRI down 2.5 to 57.5)');
      expect(body.custom_args.idempotency_key).to.equal(`drift-report:${company.id}:2026-02:${user.id}`);
      expect(body.categories).to.deep.equal(['drift-report']);
      const text = body.content.find((c) => c.type === 'text/plain')!.value;
      const html = body.content.find((c) => c.type === 'text/html')!.value;
      expect(text).to.include('Hi Grace, here is how Smith & Sons <Roofing> moved in February 2026.');
      expect(text).to.include('Buyer Readiness Index: 57.5 / 100 (-2.5 from 60, declining)');
      expect(html).to.include('Smith &amp; Sons &lt;Roofing&gt;').and.not.include('<Roofing>');
      expect(html).to.include(`https://app.example.test/companies/${company.id}/drift-reports/2026-02`);
      // No scripts, no external images or styles; every link goes to the app.
      expect(html).not.to.match(/<script|<img|\bsrc=|url\(|<link/i);
      const hrefs = [...html.matchAll(/href=(['"])(.*?)\1/g)].map((m) => m[2]);
      expect(hrefs.length, 'links in the email').to.be.greaterThan(2);
      for (const href of hrefs) expect(href).to.match(/^https:\/\/app\.example\.test(\/|$)/);
    });

    it('retries, on the next run, only the emails a failed SendGrid left owed', async () => {
      const { company, user } = await anOwnedCompany(db().knex);
      const suppressed = await aUser(db().knex);
      await aMember(db().knex, company.id, suppressed.id, 'OWNER');
      await preferences(db().knex, suppressed.id, { unsubscribed_all: true });

      sendgrid.failAlways({ status: 500 });
      const first = await run();
      expect(first.exitCode).to.equal(1);
      expect(first.summary).to.include({ generated: 1, emailsSent: 0, emailsFailed: 1, emailsSuppressed: 1, reportsAwaitingEmail: 1 });
      expect(sendgrid.requests.length).to.equal(2); // one attempt and one retry
      expect((await reportOf(db().knex, company.id)).emailed_at).to.equal(null);

      sendgrid.recover();
      const second = await run();
      expect(second.exitCode).to.equal(0);
      expect(second.summary).to.include({ generated: 0, skipped: 1, emailsSent: 1, emailsFailed: 0, emailsSuppressed: 0, reportsAwaitingEmail: 0 });
      expect(sendgrid.accepted().map((m) => (m.body as { custom_args: Record<string, string> }).custom_args.idempotency_key)).to.deep.equal([`drift-report:${company.id}:2026-02:${user.id}`]);
      expect((await reportOf(db().knex, company.id)).emailed_at).to.be.instanceOf(Date);
      expect((await emailLog(db().knex)).map((e) => [e.user_id, e.status])).to.have.deep.members([[user.id, 'SENT'], [suppressed.id, 'SUPPRESSED']]);
      expect(await ledger(db().knex)).to.have.length(1);

      await run();
      expect(sendgrid.accepted()).to.have.length(1);
    });
  });
});
