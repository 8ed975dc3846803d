/**
 * The image, built by a real container engine (podman; `.ci/run` builds it) and run
 * the way a CronJob's pod runs it: read-only root filesystem, /tmp the only writable
 * place, as its own user under tini. Inside it: --help, migrate on an empty
 * PostgreSQL database, each job dry and real against PostgreSQL with the loopback
 * SendGrid and QuickBooks, the demo, and a job stopped by `podman stop`. After each
 * run, `podman diff` must show nothing written outside /tmp.
 *
 * Skipped, with a message, when podman or the image is missing; under CI=true that
 * is a failure instead. EXITOSX_IMAGE names the image (default
 * localhost/exitosx-cron:test), EXITOSX_BASE_IMAGE its base, for the size report.
 *
 * podman is only ever called asynchronously: a synchronous child process would block
 * this event loop, where the loopback servers answer the job in the container.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { openPostgresUrl, type Database } from '../../lib/db/connect.ts';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { counts } from '../faults/support.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, qbEnv } from '../quickbooks/support.ts';
import { adminQuery, urlFor } from '../support/db.ts';
import { anOwnedCompany } from '../support/factories.ts';
import { NOW, ROOT } from '../support/run.ts';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';

const IMAGE = process.env.EXITOSX_IMAGE ?? 'localhost/exitosx-cron:test';
const BASE_IMAGE = process.env.EXITOSX_BASE_IMAGE ?? 'localhost/node-standin:24-slim';
const IN_CI = process.env.CI === 'true';
/** The chart's terminationGracePeriodSeconds is larger; this is what the test allows. */
const GRACE_SECONDS = 30;

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs podman asynchronously (never spawnSync: see the header). */
function podman(args: string[], timeoutMs = 120_000): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`podman ${args.slice(0, 3).join(' ')} … timed out after ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The runtime flags of containers.md: runc, ulimits the machine allows, host network (PostgreSQL and loopbacks on 127.0.0.1). */
const ENGINE = ['--runtime', 'runc', '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', '--network', 'host'];
/**
 * As in the pod (readOnlyRootFilesystem, an emptyDir on /tmp): nothing writable but
 * /tmp. --read-only-tmpfs=false because podman's --read-only otherwise also mounts
 * writable tmpfs on /var/tmp and /run, which a pod does not have.
 */
const POD = ['--read-only', '--read-only-tmpfs=false', '--tmpfs', '/tmp'];

let seq = 0;
const containerName = () => `exitosx-test-${process.pid}-${++seq}`;

/** The last stdout line as JSON (the run's summary). */
function summaryOf(stdout: string): Record<string, unknown> {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new Error(`no JSON summary on stdout: ${stdout.slice(-500)}`);
  }
}

describe('the image, run by podman as in a pod', function () {
  this.timeout(300_000);
  /** Paths podman itself changes in every container (mount points), from a container that runs nothing. */
  let engineBaseline: Set<string>;
  let dbName: string;
  let url: string;
  let database: Database;
  let sendgrid: SendGridServer;
  let qbo: LoopbackQuickBooks;

  /** Paths written in the container's own layer, minus the engine's baseline. */
  const writtenBy = async (name: string): Promise<string[]> => {
    const diff = await podman(['diff', '--format', 'json', name]);
    expect(diff.code, diff.stderr).to.equal(0);
    const changes = JSON.parse(diff.stdout || '{}') as Record<string, string[] | undefined>;
    return [...(changes.changed ?? []), ...(changes.added ?? []), ...(changes.deleted ?? [])].filter((p) => !engineBaseline.has(p));
  };

  /**
   * `podman run` of the image with `args`, as in a pod; checks with `podman diff` that
   * nothing outside /tmp was written, then removes the container.
   */
  const runInPod = async (args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 180_000): Promise<Proc & { summary: () => Record<string, unknown> }> => {
    const name = containerName();
    const envFlags = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : ['-e', `${k}=${v}`]));
    try {
      const r = await podman(['run', '--name', name, ...ENGINE, ...POD, ...envFlags, IMAGE, ...args], timeoutMs);
      expect((await writtenBy(name)).filter((p) => !/^\/tmp(\/|$)/.test(p)), 'written outside /tmp').to.deep.equal([]);
      return { ...r, summary: () => summaryOf(r.stdout) };
    } finally {
      await podman(['rm', '-f', name]);
    }
  };

  before(async function () {
    const skip = async (why: string) => {
      if (IN_CI) throw new Error(`${why}: CI must build and test the image (.ci/run builds it with podman)`);
      console.log(`      (skipped: ${why}; \`bash .ci/run\` installs podman and builds ${IMAGE})`);
      this.skip();
    };
    const version = await podman(['--version']).catch(() => undefined);
    if (!version || version.code !== 0) return skip('podman is not installed');
    if ((await podman(['image', 'exists', IMAGE])).code !== 0) return skip(`no image ${IMAGE}`);

    const name = containerName();
    const probe = await podman(['run', '--name', name, ...ENGINE, ...POD, '--entrypoint', '/bin/true', IMAGE]);
    expect(probe.code, probe.stderr).to.equal(0);
    const diff = await podman(['diff', '--format', 'json', name]);
    const changes = JSON.parse(diff.stdout || '{}') as Record<string, string[] | undefined>;
    engineBaseline = new Set([...(changes.changed ?? []), ...(changes.added ?? []), ...(changes.deleted ?? [])]);
    await podman(['rm', '-f', name]);

    // An empty database: `migrate` in the image creates the product schema and the suite's tables.
    dbName = `exitosx_img_${process.pid}_${Date.now().toString(36)}`;
    await adminQuery(`create database ${dbName}`);
    url = urlFor(dbName);
    sendgrid = await startSendGridServer();
    qbo = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  });

  after(async () => {
    await database?.close();
    await sendgrid?.close();
    await qbo?.close();
    if (dbName) await adminQuery(`drop database if exists ${dbName} with (force)`);
  });

  it('runs as user 10001 with tini as the entrypoint, ships its SBOM and no source maps or type declarations; prints its size', async () => {
    const inspect = await podman(['image', 'inspect', IMAGE, '--format', '{{json .Config}}']);
    const config = JSON.parse(inspect.stdout) as { User: string; Entrypoint: string[] };
    expect(config.User).to.equal('10001:10001');
    expect(config.Entrypoint).to.deep.equal(['/usr/bin/tini', '--', 'exitosx-cron']);

    const sbom = await podman(['run', '--rm', ...ENGINE, ...POD, '--entrypoint', 'cat', IMAGE, '/app/sbom.cdx.json']);
    expect(sbom.code, sbom.stderr).to.equal(0);
    const bom = JSON.parse(sbom.stdout) as { bomFormat: string; components: Array<{ name: string; version: string; scope?: string }> };
    expect(bom.bomFormat).to.equal('CycloneDX');
    const byName = new Map(bom.components.map((c) => [c.name, c]));
    expect(byName.get('jsonpath-plus')?.version).to.match(/^11\./);
    for (const dep of ['knex', 'pg', '@kubernetes/client-node', 'intuit-oauth']) expect(byName.has(dep), dep).to.equal(true);
    for (const dev of ['mocha', 'typescript', 'eslint']) expect(byName.has(dev), dev).to.equal(false);
    // Every production package of the lock file, those a dev tool also uses included (npm/cli#7909).
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; dev?: boolean }> };
    const prodIds = new Set(Object.entries(lock.packages).filter(([p, v]) => p && !v.dev).map(([p, v]) => `${p.replace(/.*node_modules\//, '')}@${v.version}`));
    const bomIds = new Set(bom.components.map((c) => `${c.name}@${c.version}`));
    expect([...prodIds].filter((id) => !bomIds.has(id)), 'production packages missing from the SBOM').to.deep.equal([]);
    expect(bomIds.size).to.equal(prodIds.size);

    const leftovers = await podman(['run', '--rm', ...ENGINE, ...POD, '--entrypoint', 'find', IMAGE, '/app', '(', '-name', '*.map', '-o', '-name', '*.d.ts', '-o', '-name', '*.md', ')', '-print']);
    expect(leftovers.code, leftovers.stderr).to.equal(0);
    expect(leftovers.stdout.trim()).to.equal('');

    const size = Number((await podman(['image', 'inspect', IMAGE, '--format', '{{.Size}}'])).stdout.trim());
    const base = await podman(['image', 'inspect', BASE_IMAGE, '--format', '{{.Size}}']);
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const baseSize = base.code === 0 ? Number(base.stdout.trim()) : undefined;
    console.log(`      image ${IMAGE}: ${mb(size)}${baseSize ? `, ${mb(size - baseSize)} on top of ${BASE_IMAGE} (${mb(baseSize)})` : ''}`);
    // The target of issue 14: at most 150 MB on top of the Node base.
    if (baseSize) expect(size - baseSize).to.be.at.most(150e6);
  });

  it('--help lists the commands', async () => {
    const r = await runInPod(['--help']);
    expect(r.code, r.stderr).to.equal(0);
    for (const c of ['generate-drift-reports', 'detect-inactivity', 'sync-quickbooks', 'migrate', 'trigger', 'demo']) expect(r.stdout).to.include(c);
  });

  it('migrate creates the product schema and the suite\'s tables on an empty PostgreSQL database', async () => {
    const r = await runInPod(['migrate'], { DATABASE_URL: url });
    expect(r.code, r.stderr).to.equal(0);
    database = await openPostgresUrl(url, 'exitosx-test');
    for (const table of ['companies', 'users', 'email_log', 'quickbooks_integrations', 'exitosx_cron.runs']) {
      const [schema, name] = table.includes('.') ? table.split('.') : ['public', table];
      const found = await database.knex('information_schema.tables').where({ table_schema: schema, table_name: name }).first();
      expect(found, table).to.not.equal(undefined);
    }
  });

  describe('each job against PostgreSQL and the loopback SendGrid and QuickBooks, dry then real', () => {
    const env = () => ({ DATABASE_URL: url, SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url, ...qbEnv(qbo) });
    const now = ['--now', NOW.toISOString()];

    before(async function () {
      if (!database) this.skip();
      for (let i = 0; i < 6; i++) await anOwnedCompany(database.knex, { daysInactive: 30 });
      for (let i = 0; i < 3; i++) await anIntegration(database.knex, qbo);
    });

    it('detect-inactivity', async () => {
      const before = await counts(database.knex);
      const dry = await runInPod(['detect-inactivity', '--dry-run', ...now], env());
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.summary()).to.include({ success: true, dryRun: true, signalsCreated: 6, emailsSent: 6 });
      expect((await counts(database.knex)).signals).to.equal(before.signals);
      expect(sendgrid.accepted()).to.have.length(0);

      const real = await runInPod(['detect-inactivity', ...now], env());
      expect(real.code, real.stderr).to.equal(0);
      expect(real.summary()).to.include({ success: true, dryRun: false, signalsCreated: 6, emailsSent: 6 });
      const after = await counts(database.knex);
      expect(after.openSignals).to.equal(6);
      expect(after.emails).to.deep.equal({ SENT: 6 });
      expect(sendgrid.accepted()).to.have.length(6);
    });

    it('generate-drift-reports', async () => {
      const sent = sendgrid.accepted().length;
      const dry = await runInPod(['generate-drift-reports', '--dry-run', ...now], env());
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.summary()).to.include({ success: true, dryRun: true, generated: 6, emailsSent: 6 });
      expect((await counts(database.knex)).reports).to.equal(0);
      expect(sendgrid.accepted()).to.have.length(sent);

      const real = await runInPod(['generate-drift-reports', ...now], env());
      expect(real.code, real.stderr).to.equal(0);
      expect(real.summary()).to.include({ success: true, dryRun: false, generated: 6, emailsSent: 6 });
      expect((await counts(database.knex)).reports).to.equal(6);
      expect(sendgrid.accepted()).to.have.length(sent + 6);
    });

    it('sync-quickbooks', async () => {
      const dry = await runInPod(['sync-quickbooks', '--dry-run', ...now], env());
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.summary()).to.include({ success: true, dryRun: true, integrationsChecked: 3 });
      expect(qbo.tokenStats.requests).to.equal(0); // a dry run never calls Intuit
      expect((await counts(database.knex)).periods).to.equal(0);

      const real = await runInPod(['sync-quickbooks', ...now], env());
      expect(real.code, real.stderr).to.equal(0);
      expect(real.summary()).to.include({ success: true, dryRun: false, integrationsChecked: 3, synced: 3, failed: 0 });
      expect((await counts(database.knex)).periods).to.equal(3 * 25);
    });
  });

  // mocha runs a suite's own tests before its nested suites: these come after the jobs.
  describe('the demo', () => {
    it('demo: sample data in the embedded database under /tmp, then every job', async () => {
      const r = await runInPod(['demo'], {}, 300_000);
      expect(r.code, r.stderr.slice(-2000)).to.equal(0);
      const summaries = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(summaries.map((s) => [s.job, s.success]).sort()).to.deep.equal([
        ['detect-inactivity', true],
        ['generate-drift-reports', true],
        ['sync-quickbooks', true],
      ]);
    });
  });

  describe('podman stop', () => {
    it('podman stop mid-run: tini is PID 1 and forwards SIGTERM; exit 143 within the grace period, the summary printed, nothing PENDING', async function () {
      if (!database) this.skip();
      await database.knex.raw('truncate email_log, drift_reports, value_ledger_entries, signals, exitosx_cron.runs cascade');
      for (let i = 0; i < 40; i++) await anOwnedCompany(database.knex);
      sendgrid.requests.length = 0;
      // 40 companies: chunks of 16 (8 × EMAIL_CONCURRENCY), each chunk's reports in one
      // request (one shape), each answered after 5 s: ~15 s of run to stop in.
      sendgrid.delay(5000);
      const name = containerName();
      const env = ['-e', `DATABASE_URL=${url}`, '-e', `SENDGRID_API_KEY=${sendgrid.apiKey}`, '-e', `SENDGRID_API_URL=${sendgrid.url}`, '-e', 'EMAIL_CONCURRENCY=2'];
      try {
        const started = await podman(['run', '-d', '--name', name, ...ENGINE, ...POD, ...env, IMAGE, 'generate-drift-reports', '--now', NOW.toISOString()]);
        expect(started.code, started.stderr).to.equal(0);
        // Wait until emails are going out (the job is mid-run).
        const deadline = Date.now() + 120_000;
        while (sendgrid.requests.length < 1) {
          if (Date.now() > deadline) throw new Error(`the job sent nothing: ${(await podman(['logs', name])).stderr.slice(-2000)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const pid1 = await podman(['exec', name, 'cat', '/proc/1/cmdline']);
        expect(pid1.stdout.split('\0').filter(Boolean)).to.deep.equal(['/usr/bin/tini', '--', 'exitosx-cron', 'generate-drift-reports', '--now', NOW.toISOString()]);
        const uid = await podman(['exec', name, 'id', '-u']);
        expect(uid.stdout.trim()).to.equal('10001');

        const t0 = Date.now();
        const stop = await podman(['stop', '-t', String(GRACE_SECONDS), name]);
        const stoppedInMs = Date.now() - t0;
        expect(stop.code, stop.stderr).to.equal(0);
        const exit = await podman(['inspect', name, '--format', '{{.State.ExitCode}}']);
        expect(exit.stdout.trim()).to.equal('143');
        expect(stoppedInMs).to.be.below(GRACE_SECONDS * 1000); // not the SIGKILL at the end of the grace period
        const logs = await podman(['logs', name]);
        expect(summaryOf(logs.stdout)).to.include({ success: false, interrupted: true, job: 'generate-drift-reports' });
        const end = await counts(database.knex);
        expect(end.emails.PENDING ?? 0).to.equal(0);
        expect(end.emails.SENT).to.be.at.least(1);
        expect(await database.knex('exitosx_cron.runs').pluck('status')).to.deep.equal(['interrupted']);
        expect((await writtenBy(name)).filter((p) => !/^\/tmp(\/|$)/.test(p)), 'written outside /tmp').to.deep.equal([]);
      } finally {
        sendgrid.delay(0);
        await podman(['rm', '-f', name]);
      }
    });
  });

});
