/**
 * The alert rules and the dashboard, checked by the real promtool: the rules file
 * is valid, every alert passes its unit tests (firing and not firing), every
 * dashboard expression is valid PromQL, and every alert links to a runbook section.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ALERT_TEST_FILES, ALERTS_FILE, DASHBOARD_FILE, RUNBOOK_FILE, dashboardQueries, promtool, requireBinary, tempDir } from './support.ts';

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const groups = (YAML.parse(fs.readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups;
const alerts = groups.flatMap((g) => g.rules).filter((r) => r.alert);

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
const anchorsOf = (markdown: string) =>
  new Set(
    [...markdown.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\w\- ]/g, '')
        .replace(/ /g, '-'),
    ),
  );

describe('alert rules and dashboard (promtool)', function () {
  this.timeout(60_000);

  it('the rules file passes promtool check rules', async function () {
    requireBinary(this, 'promtool');
    const { code, output } = await promtool(['check', 'rules', ALERTS_FILE]);
    expect(code, output).to.equal(0);
    expect(output).to.match(/SUCCESS: \d+ rules found/);
  });

  it('every alert passes its promtool unit tests, firing and not firing', async function () {
    requireBinary(this, 'promtool');
    const { code, output } = await promtool(['test', 'rules', ...ALERT_TEST_FILES]);
    expect(code, output).to.equal(0);
    const tested = ALERT_TEST_FILES.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    for (const name of new Set(alerts.map((a) => a.alert!))) {
      expect(tested, `${name} has a firing test`).to.match(new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
      expect(tested, `${name} has a not-firing test`).to.match(new RegExp(`alertname: ${name}(,|\\n\\s+) ?exp_alerts: \\[\\]`));
    }
  });

  it('covers the alerts issue 6 asks for, each with summary, description, severity and a runbook anchor', () => {
    const names = new Set(alerts.map((a) => a.alert));
    for (const name of ['ExitosxCronRunFailed', 'ExitosxCronJobSilent', 'ExitosxCronRunSlow', 'ExitosxCronPushFailing', 'ExitosxCronItemErrorRatioHigh', 'ExitosxCronQuickBooksSyncFailures', 'ExitosxCronQuickBooksReauthNeeded', 'ExitosxCronEmailsFailing']) {
      expect(names, name).to.include(name);
    }
    const anchors = anchorsOf(fs.readFileSync(RUNBOOK_FILE, 'utf8'));
    for (const a of alerts) {
      expect(a.annotations?.summary, `${a.alert} summary`).to.be.a('string').and.not.empty;
      expect(a.annotations?.description, `${a.alert} description`).to.be.a('string').and.not.empty;
      expect(a.labels?.severity, `${a.alert} severity`).to.be.oneOf(['warning', 'critical']);
      const url = a.annotations?.runbook_url ?? '';
      expect(url, `${a.alert} runbook_url`).to.match(/RUNBOOK\.md#[a-z0-9-]+$/);
      expect(anchors, `RUNBOOK.md has a section for ${url}`).to.include(url.split('#')[1]);
    }
  });

  it('the silence thresholds are 26 h for the daily jobs and 32 days for the monthly one', () => {
    const silent = alerts.find((a) => a.alert === 'ExitosxCronJobSilent')!;
    expect(silent.expr).to.match(/cron_job=~"detect-inactivity\|sync-quickbooks"\}\) > 26 \* 3600/);
    expect(silent.expr).to.match(/cron_job="generate-drift-reports"\}\) > 32 \* 86400/);
  });

  it('every dashboard panel expression is valid PromQL (promtool, one throwaway rule each)', async function () {
    requireBinary(this, 'promtool');
    const queries = dashboardQueries();
    expect(queries.length).to.be.greaterThan(10);
    const dir = tempDir('dashboard-rules');
    try {
      const file = path.join(dir, 'dashboard-rules.yaml');
      const rules = queries.map((q, i) => ({ record: `dashboard:panel_${i}:${q.refId.toLowerCase()}`, expr: q.expr }));
      fs.writeFileSync(file, YAML.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const { code, output } = await promtool(['check', 'rules', file]);
      expect(code, output).to.equal(0);
      expect(output).to.include(`SUCCESS: ${queries.length} rules found`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard has the panels SREs need', () => {
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as { uid: string; panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    expect(dashboard.uid).to.equal('exitosx-cron');
    const all = dashboard.panels.map((p) => `${p.title}: ${p.targets.map((t) => t.expr).join(' ')}`).join('\n');
    for (const metric of [
      'exitosx_cron_last_success_timestamp_seconds',
      'exitosx_cron_run_duration_seconds',
      'exitosx_cron_items_total',
      'exitosx_cron_emails_failed',
      'exitosx_cron_signals_created',
      'exitosx_cron_failed',
      'exitosx_cron_needs_reauth',
      'push_failure_time_seconds',
    ]) {
      expect(all, metric).to.include(metric);
    }
  });
});
