/**
 * The README's first command: `exitosx-cron demo` on a fresh embedded database with
 * no services and no environment. Each job's summary is one JSON line on stdout.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { runCli } from '../support/run.ts';

describe('demo', function () {
  this.timeout(180_000);
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-demo-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('fills the embedded database and runs every job, one summary line each, emails in the outbox', async () => {
    const env = { EMBEDDED_DB_DIR: path.join(dir, 'db'), EMAIL_OUTBOX_DIR: path.join(dir, 'outbox') };
    const r = await runCli(['demo'], { env, timeoutMs: 170_000 });
    expect(r.code, r.stderr.slice(-3000)).to.equal(0);
    const summaries = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(summaries.map((s) => s.job)).to.deep.equal(['sync-quickbooks', 'detect-inactivity', 'generate-drift-reports']);
    for (const s of summaries) expect(s, JSON.stringify(s).slice(0, 500)).to.include({ success: true, errors: 0 });
    const [sync, inactivity, drift] = summaries as [Record<string, number>, Record<string, number>, Record<string, number>];
    expect(sync.synced).to.be.greaterThan(10);
    expect(inactivity.signalsCreated).to.be.greaterThan(10);
    expect(drift.generated).to.be.greaterThan(100);
    const files = fs.readdirSync(env.EMAIL_OUTBOX_DIR);
    expect(files.filter((f) => f.startsWith('drift-report') && f.endsWith('.html')).length).to.equal(drift.emailsSent);
    expect(files.some((f) => f.startsWith('inactivity') && f.endsWith('.eml'))).to.equal(true);
    expect(r.stderr).to.contain('Exit OSx demo');

    // Run it again: it starts afresh, with the same sample.
    const again = await runCli(['demo'], { env, timeoutMs: 170_000 });
    expect(again.code).to.equal(0);
    const second = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(second.map((s) => s.generated ?? s.signalsCreated ?? s.synced)).to.deep.equal(summaries.map((s) => s.generated ?? s.signalsCreated ?? s.synced));
  });
});
