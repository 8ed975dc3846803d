/**
 * The command line as the CronJob controller and engineers see it: exit codes,
 * one-line errors on stderr naming the flag or variable, nothing on stdout but the
 * summary, and no secret anywhere.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { runCli } from '../support/run.ts';

describe('command line', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-cli-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const embedded = () => ({ EMBEDDED_DB_DIR: path.join(dir, 'db'), EMAIL_OUTBOX_DIR: path.join(dir, 'outbox') });

  it('prints help and exits 0 with --help', async () => {
    const r = await runCli(['--help']);
    expect(r.code).to.equal(0);
    for (const cmd of ['generate-drift-reports', 'detect-inactivity', 'sync-quickbooks', 'migrate', 'demo', 'runs', 'doctor']) expect(r.stdout).to.contain(cmd);
    const job = await runCli(['generate-drift-reports', '--help']);
    expect(job.code).to.equal(0);
    for (const flag of ['--dry-run', '--now', '--company', '--period']) expect(job.stdout).to.contain(flag);
  });

  const usage: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['an unknown command', ['frobnicate'], {}, /unknown command 'frobnicate'/],
    ['an unknown flag', ['detect-inactivity', '--bogus'], {}, /unknown option '--bogus'/],
    ['a month 13', ['generate-drift-reports', '--period', '2026-13'], {}, /--period.*2026-13/],
    ['a --now that is not ISO-8601', ['detect-inactivity', '--now', 'last tuesday'], {}, /--now.*ISO-8601/],
    ['--period on a job without it', ['detect-inactivity', '--period', '2026-01'], {}, /unknown option '--period'/],
    ['SHARD_INDEX >= SHARD_COUNT', ['detect-inactivity'], { SHARD_COUNT: '2', SHARD_INDEX: '2' }, /^exitosx-cron: SHARD_INDEX must be/],
    ['a bad LOG_LEVEL', ['detect-inactivity'], { LOG_LEVEL: 'chatty' }, /LOG_LEVEL must be/],
    ['a missing QuickBooks variable', ['sync-quickbooks'], {}, /QUICKBOOKS_CLIENT_ID is required/],
    ['a short encryption key', ['sync-quickbooks'], { TOKEN_ENCRYPTION_KEY: 'abc' }, /TOKEN_ENCRYPTION_KEY must be 32 bytes/],
  ];
  for (const [what, args, env, pattern] of usage) {
    it(`exits 2 with one line naming the problem for ${what}`, async () => {
      const r = await runCli(args, { env: { ...embedded(), ...env } });
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stdout).to.equal('');
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.match(pattern);
      expect(r.stderr).not.to.match(/\n\s+at /); // no stack trace
    });
  }

  it('exits 3 when the database is unreachable, without printing its password', async () => {
    const r = await runCli(['migrate'], { env: { DATABASE_URL: 'postgres://app:hunter2-very-secret@127.0.0.1:1/product' } });
    expect(r.code).to.equal(3);
    expect(r.stderr).to.match(/database unreachable at 127\.0\.0\.1:1\/product/);
    expect(r.stderr + r.stdout).not.to.contain('hunter2-very-secret');
  });

  it('migrates the embedded database, then lists an empty run history', async () => {
    const m = await runCli(['migrate'], { env: embedded() });
    expect(m.code, m.stderr).to.equal(0);
    expect(m.summary).to.include({ success: true, productSchema: 'created' });
    const again = await runCli(['migrate'], { env: embedded() });
    expect(again.summary).to.deep.include({ productSchema: 'present', applied: [] });
    const runs = await runCli(['runs', '--limit', '5'], { env: embedded() });
    expect(runs.code).to.equal(0);
    expect(runs.stdout).to.equal('');
  });

  it('rejects --limit out of range on runs', async () => {
    const r = await runCli(['runs', '--limit', '0'], { env: embedded() });
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--limit/);
  });
});
