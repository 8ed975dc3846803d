/**
 * `exitosx-cron trigger` against a loopback Kubernetes API serving the chart's real
 * CronJobs: the Job it creates (compared with the real kubectl's), --wait on runs that succeed and fail (the pods run
 * the real CLI, or a scripted log), and its one-line errors.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { toolPath } from '../../scripts/k8s-tools.ts';
import { runCli } from '../support/run.ts';
import { FakeKubeApi, TOKEN, type PodScript } from './support/fake-kube-api.ts';
import { ofKind, render, type K8sObject } from './support/manifests.ts';

const NS = 'exitosx';

/** Drops null fields (kubectl prints `creationTimestamp: null` and empty status). */
function withoutNulls(o: K8sObject): K8sObject {
  for (const [k, v] of Object.entries(o)) {
    if (v === null) delete o[k];
    else if (typeof v === 'object') withoutNulls(v as K8sObject);
  }
  return o;
}

function summaryLine(job: string, success: boolean, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ success, job, runId: `run-${Math.random().toString(16).slice(2, 8)}`, dryRun: false, errors: success ? 0 : 2, errorDetails: [], durationMs: 12, ...extra });
}

describe('exitosx-cron trigger (loopback Kubernetes API)', function () {
  this.timeout(60_000);
  let api: FakeKubeApi;
  let dir: string;
  let kubeconfig: string;
  let dbDir: string;
  let cronJobs: K8sObject[];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-trigger-'));
    dbDir = path.join(dir, 'db');
    const migrated = await runCli(['migrate'], { env: { EMBEDDED_DB_DIR: dbDir } });
    expect(migrated.code, migrated.stderr).to.equal(0);
    cronJobs = ofKind(render(['--set', 'jobs.detect-inactivity.indexed.enabled=true', '--set', 'jobs.detect-inactivity.indexed.shards=2']), 'CronJob').concat(
      ofKind(render(), 'CronJob').filter((c) => c.metadata.name !== 'exitosx-cron-detect-inactivity'),
    );
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
    for (const c of cronJobs) api.addCronJob(c);
    kubeconfig = api.kubeconfig(dir, NS);
  });

  afterEach(() => api.close());

  const trigger = (args: string[]) => runCli(['trigger', ...args], { env: { KUBECONFIG: kubeconfig }, timeoutMs: 45_000 });
  const cliPod = (): PodScript => ({ cli: { env: { EMBEDDED_DB_DIR: dbDir, EMAIL_OUTBOX_DIR: path.join(dir, 'outbox'), KUBECONFIG: kubeconfig, LOG_LEVEL: 'debug' } } });

  it('creates a Job like kubectl create job --from=cronjob/…, with the job flags appended', async () => {
    const r = await trigger(['sync-quickbooks', '--', '--company', 'c-42', '--force']);
    expect(r.code, r.stderr).to.equal(0);
    const cronJob = api.cronJobs.get(`${NS}/exitosx-cron-sync-quickbooks`)!;
    const [job] = [...api.jobs.values()];
    expect(job!.metadata.name).to.match(/^exitosx-cron-sync-quickbooks-manual-[0-9a-f]{5}$/);
    expect(r.summary).to.deep.equal({ created: job!.metadata.name, namespace: NS, cronJob: 'exitosx-cron-sync-quickbooks' });
    expect(job!.metadata.annotations).to.include({ 'cronjob.kubernetes.io/instantiate': 'manual' });
    expect(job!.metadata.ownerReferences).to.deep.equal([{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'exitosx-cron-sync-quickbooks', uid: cronJob.metadata.uid, controller: true }]);
    expect(job!.metadata.labels).to.deep.equal(cronJob.spec.jobTemplate.metadata.labels);
    // The template is copied whole; only the container's args grow.
    const expected = structuredClone(cronJob.spec.jobTemplate.spec);
    expected.template.spec.containers[0].args = ['sync-quickbooks', '--company', 'c-42', '--force'];
    expect(job!.spec).to.deep.equal(expected);
    expect(r.stderr).to.include(`job.batch/${job!.metadata.name} created in namespace ${NS}`);
  });

  it('authenticates with a kubeconfig whose auth-provider runs a command (token read by JSONPath: jsonpath-plus, overridden to 11.x)', async () => {
    // Older GKE kubeconfigs: the client runs cmd-path and picks the token out of its
    // JSON output with the token-key JSONPath (jsonpath-plus, package.json "overrides").
    const helper = path.join(dir, 'token-helper.sh');
    const credential = JSON.stringify({ credential: { access_token: TOKEN, token_expiry: '2999-01-01T00:00:00Z' }, decoy: { access_token: 'wrong' } });
    fs.writeFileSync(helper, `#!/bin/sh\necho '${credential}'\n`, { mode: 0o755 });
    const withProvider = (tokenKey: string) => {
      const file = path.join(dir, `kubeconfig-gcp-${tokenKey.length}.yaml`);
      const user = `    user: { auth-provider: { name: gcp, config: { cmd-path: "${helper}", token-key: "${tokenKey}", expiry-key: "{.credential.token_expiry}" } } }`;
      fs.writeFileSync(file, fs.readFileSync(kubeconfig, 'utf8').replace(/^ {4}user: \{ token: .*$/m, user));
      return file;
    };
    const ok = await runCli(['trigger', 'detect-inactivity'], { env: { KUBECONFIG: withProvider('{.credential.access_token}') }, timeoutMs: 45_000 });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(api.jobs.size).to.equal(1);
    // The JSONPath is really evaluated: another path gives another token, refused.
    const refused = await runCli(['trigger', 'detect-inactivity'], { env: { KUBECONFIG: withProvider('{.decoy.access_token}') }, timeoutMs: 45_000 });
    expect(refused.code, refused.stderr).to.not.equal(0);
    expect(refused.stderr).to.match(/401|Unauthorized|unauthori[sz]ed/i);
    expect(api.jobs.size).to.equal(1);
  });

  it('makes the same Job as the real kubectl create job --from=cronjob/… (apart from its name)', async () => {
    api.anonymous = true; // kubectl sends no token over plain http
    const kubectl = await promisify(execFile)(toolPath('kubectl'), ['--kubeconfig', kubeconfig, '-n', NS, 'create', 'job', 'by-kubectl', '--from=cronjob/exitosx-cron-sync-quickbooks', '--dry-run=client', '-o', 'json'], { encoding: 'utf8' });
    const expected = withoutNulls(JSON.parse(kubectl.stdout) as K8sObject);
    const r = await trigger(['sync-quickbooks']);
    expect(r.code, r.stderr).to.equal(0);
    const job = withoutNulls(structuredClone([...api.jobs.values()][0]!));
    expect(job.spec).to.deep.equal(expected.spec);
    for (const field of ['labels', 'annotations', 'ownerReferences', 'namespace']) expect(job.metadata[field], field).to.deep.equal(expected.metadata[field]);
  });

  it('--wait follows a run that succeeds: the pod log on stderr, its summary on stdout, exit 0; the run annotates its Job', async () => {
    api.kubelet = () => cliPod();
    const r = await trigger(['generate-drift-reports', '--wait', '--poll-ms', '100', '--', '--period', '2026-01']);
    expect(r.code, r.stderr).to.equal(0);
    const [job] = [...api.jobs.values()];
    expect(job!.spec.template.spec.containers[0].args).to.deep.equal(['generate-drift-reports', '--period', '2026-01']);
    expect(r.summary).to.include({ success: true, job: 'generate-drift-reports', periodStart: '2026-01-01T00:00:00.000Z' });
    expect(r.stdout.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.include('run:finished');
    expect(r.stderr).to.include(`job ${job!.metadata.name} completed`);
    // The pod, a manual Job (no scheduled time), ran on the real clock and annotated its Job.
    const annotations = api.jobs.get(`${NS}/${job!.metadata.name}`)!.metadata.annotations;
    expect(JSON.parse(annotations['exitosx.com/summary'])).to.deep.equal(r.summary);
    expect(annotations['exitosx.com/exit-code']).to.equal('0');
    expect(api.events).to.deep.equal([]);
  });

  it('--wait on a run that keeps failing: retried to backoffLimit, prints the last attempt\'s summary, exits with its code', async () => {
    const attempts: number[] = [];
    api.kubelet = (_job, attempt) => {
      attempts.push(attempt);
      return { lines: ['{"level":"info","message":"run:started"}', '{"level":"error","message":"item:failed","companyId":"c1"}', summaryLine('detect-inactivity', false, { attempt })], exitCode: 1 };
    };
    api.cronJobs.get(`${NS}/exitosx-cron-detect-inactivity`)!.spec.jobTemplate.spec.completionMode = undefined;
    const cron = api.cronJobs.get(`${NS}/exitosx-cron-detect-inactivity`)!;
    delete cron.spec.jobTemplate.spec.completionMode;
    delete cron.spec.jobTemplate.spec.completions;
    delete cron.spec.jobTemplate.spec.parallelism;
    const r = await trigger(['detect-inactivity', '--wait', '--poll-ms', '100']);
    expect(r.code, r.stderr).to.equal(1);
    const backoffLimit = cron.spec.jobTemplate.spec.backoffLimit as number;
    expect(attempts).to.deep.equal([...Array(backoffLimit + 1).keys()]);
    expect(r.summary).to.include({ success: false, job: 'detect-inactivity', attempt: backoffLimit });
    expect(r.stdout.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/failed: BackoffLimitExceeded/);
    expect(r.stderr.match(/item:failed/g)).to.have.length(backoffLimit + 1);
  });

  it('--wait rides out API blips and a log stream cut short: the summary is read from the whole log', async () => {
    api.kubelet = () => ({ lines: ['{"level":"info","message":"run:started"}', '{"level":"info","message":"progress"}', summaryLine('detect-inactivity', true)], exitCode: 0, delayMs: 30 });
    api.cutFollowAfter = 1;
    api.blips.set('get jobs', 2).set('list pods', 1);
    const cron = api.cronJobs.get(`${NS}/exitosx-cron-detect-inactivity`)!;
    for (const k of ['completionMode', 'completions', 'parallelism']) delete cron.spec.jobTemplate.spec[k];
    const r = await trigger(['detect-inactivity', '--wait', '--poll-ms', '100']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.summary).to.include({ success: true, job: 'detect-inactivity' });
    expect(r.stderr).to.include('trigger:poll-failed');
    expect(api.requests.some((q) => /\/log\?/.test(q) && !q.includes('follow=true'))).to.equal(true);
  });

  it('--wait on a usage error: the podFailurePolicy fails the Job at once and trigger exits 2', async () => {
    let pods = 0;
    api.kubelet = () => {
      pods++;
      return cliPod();
    };
    const r = await trigger(['generate-drift-reports', '--wait', '--poll-ms', '100', '--', '--period', '2026-13']);
    expect(r.code, r.stderr).to.equal(2);
    expect(pods).to.equal(1);
    expect(r.stderr).to.include('--period');
    expect(r.stderr).to.match(/failed: PodFailurePolicy/);
    expect(r.stdout).to.equal('');
  });

  it('--wait on an Indexed Job prints one summary per shard, in index order', async () => {
    api.kubelet = (_job, _attempt, index) => ({ lines: [summaryLine('detect-inactivity', true, { shard: index })], exitCode: 0, delayMs: index === 0 ? 60 : 5 });
    const r = await trigger(['detect-inactivity', '--wait', '--poll-ms', '100']);
    expect(r.code, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.shard)).to.deep.equal([0, 1]);
  });

  it('says in one line that the CronJob does not exist (404), exit 2', async () => {
    const r = await trigger(['detect-inactivity', '--release', 'staging']);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.deep.equal(['exitosx-cron: CronJob staging-detect-inactivity not found in namespace exitosx (CronJobs are named <release>-<job>: check --release and --namespace)']);
    expect(api.jobs.size).to.equal(0);
  });

  it('says in one line that RBAC forbids it (403), exit 2, naming the Role to bind', async () => {
    api.forbidden.add('create jobs');
    const r = await trigger(['detect-inactivity', '--namespace', NS]);
    expect(r.code).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^exitosx-cron: create job from cronjob exitosx-cron-detect-inactivity in namespace exitosx: jobs\.batch is forbidden: User "alice@example.com" cannot create resource "jobs"/);
    expect(lines[0]).to.include('exitosx-cron-trigger Role');
    api.forbidden.add('get cronjobs');
    const r2 = await trigger(['detect-inactivity']);
    expect(r2.code).to.equal(2);
    expect(r2.stderr).to.match(/^exitosx-cron: get cronjob exitosx-cron-detect-inactivity in namespace exitosx: cronjobs\.batch "exitosx-cron-detect-inactivity" is forbidden/);
  });

  it('says in one line that the API is unreachable, exit 3', async () => {
    await api.close();
    const r = await trigger(['detect-inactivity']);
    expect(r.code).to.equal(3);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^exitosx-cron: get cronjob exitosx-cron-detect-inactivity in namespace exitosx: .*unreachable/);
  });
});
