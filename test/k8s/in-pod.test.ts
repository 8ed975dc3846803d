/**
 * A run inside a pod of a CronJob's Job (downward-API environment, kubeconfig to a
 * loopback API): its clock is the Job's scheduled time, it annotates its Job with the
 * summary, emits a Warning Event when it fails, and none of it can fail the run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../lib/config.ts';
import { kubernetesRunDeps } from '../../lib/k8s/in-pod.ts';
import { boundedSummary } from '../../lib/k8s/job-publisher.ts';
import { isSummaryLine, manualJobName } from '../../lib/k8s/trigger.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import { runCli, type CliResult } from '../support/run.ts';
import { FakeKubeApi } from './support/fake-kube-api.ts';
import { find, render } from './support/manifests.ts';

const NS = 'exitosx';
const SCHEDULED = '2026-03-01T08:00:00Z';
const JOB = 'exitosx-cron-detect-inactivity-29538240';

const logLines = (r: CliResult) =>
  r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('a run in a pod (loopback Kubernetes API)', function () {
  this.timeout(60_000);
  let api: FakeKubeApi;
  let dir: string;
  let dbDir: string;
  let kubeconfig: string;
  let jobUid: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-inpod-'));
    dbDir = path.join(dir, 'db');
    const migrated = await runCli(['migrate'], { env: { EMBEDDED_DB_DIR: dbDir } });
    expect(migrated.code, migrated.stderr).to.equal(0);
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
    kubeconfig = api.kubeconfig(dir, NS);
    // The Job as the CronJob controller makes it from the chart's CronJob.
    const cronJob = find(render(), 'CronJob', 'exitosx-cron-detect-inactivity');
    const job = api.addJob({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: JOB,
        namespace: NS,
        labels: cronJob.spec.jobTemplate.metadata.labels,
        annotations: { 'batch.kubernetes.io/cronjob-scheduled-timestamp': SCHEDULED },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: cronJob.metadata.name, uid: 'cron-uid', controller: true, blockOwnerDeletion: true }],
      },
      spec: cronJob.spec.jobTemplate.spec,
    });
    jobUid = job.metadata.uid;
  });

  afterEach(() => api.close());

  const podEnv = (extra: Record<string, string> = {}) => ({
    EMBEDDED_DB_DIR: dbDir,
    EMAIL_OUTBOX_DIR: path.join(dir, 'outbox'),
    KUBECONFIG: kubeconfig,
    JOB_NAME: JOB,
    POD_NAME: `${JOB}-x7k2p`,
    POD_NAMESPACE: NS,
    LOG_LEVEL: 'debug',
    ...extra,
  });

  it("takes the Job's scheduled time as its clock and annotates the Job with its summary", async () => {
    const r = await runCli(['detect-inactivity'], { env: podEnv() });
    expect(r.code, r.stderr).to.equal(0);
    expect(logLines(r).find((l) => l.message === 'run:started')?.now).to.equal('2026-03-01T08:00:00.000Z');
    expect(api.patches).to.have.length(1);
    expect(api.patches[0]!.contentType).to.match(/^application\/merge-patch\+json/);
    const annotations = api.jobs.get(`${NS}/${JOB}`)!.metadata.annotations;
    expect(JSON.parse(annotations['exitosx.com/summary'])).to.deep.equal(r.summary);
    expect(annotations).to.include({ 'exitosx.com/exit-code': '0', 'exitosx.com/run-id': r.summary!.runId, 'batch.kubernetes.io/cronjob-scheduled-timestamp': SCHEDULED });
    expect(api.events).to.deep.equal([]);
  });

  it('lets --now win over the scheduled time', async () => {
    const r = await runCli(['detect-inactivity', '--now', '2026-04-02T09:30:00Z'], { env: podEnv() });
    expect(r.code, r.stderr).to.equal(0);
    expect(logLines(r).find((l) => l.message === 'run:started')?.now).to.equal('2026-04-02T09:30:00.000Z');
  });

  it('emits a Warning Event on its Job when the run fails, and annotates the exit code', async () => {
    const r = await runCli(['detect-inactivity'], { env: podEnv({ DATABASE_URL: 'postgres://cron@127.0.0.1:1/exitosx' }) });
    expect(r.code, r.stderr).to.equal(3);
    expect(api.jobs.get(`${NS}/${JOB}`)!.metadata.annotations['exitosx.com/exit-code']).to.equal('3');
    expect(api.events).to.have.length(1);
    const event = api.events[0]!;
    expect(event).to.deep.include({ type: 'Warning', reason: 'RunFailed', reportingComponent: 'exitosx.com/exitosx-cron', reportingInstance: `${JOB}-x7k2p` });
    expect(event.involvedObject).to.deep.equal({ apiVersion: 'batch/v1', kind: 'Job', name: JOB, namespace: NS, uid: jobUid });
    expect(event.message).to.match(/^detect-inactivity run [0-9a-f-]{36} failed with exit code 3: database unreachable/);
    expect(event.metadata.name).to.match(new RegExp(`^${JOB}\\.[0-9a-f]{16}$`));
  });

  it('keeps one annotation per shard in an Indexed Job', async () => {
    const r = await runCli(['detect-inactivity'], { env: podEnv({ SHARD_COUNT: '2', JOB_COMPLETION_INDEX: '1' }) });
    expect(r.code, r.stderr).to.equal(0);
    const annotations = api.jobs.get(`${NS}/${JOB}`)!.metadata.annotations;
    expect(annotations).to.include({ 'exitosx.com/exit-code-1': '0' });
    expect(annotations).not.to.have.property('exitosx.com/exit-code');
  });

  it('never fails the run when the API forbids or cannot be reached: it logs and goes on', async () => {
    api.forbidden.add('get jobs').add('patch jobs');
    const forbidden = await runCli(['detect-inactivity'], { env: podEnv() });
    expect(forbidden.code, forbidden.stderr).to.equal(0);
    const warnings = logLines(forbidden).filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.message)).to.include.members(['k8s:job-read-failed', 'k8s:annotate-failed']);
    expect(String(warnings.find((w) => w.message === 'k8s:annotate-failed')!.error)).to.include('is forbidden');
    // The clock falls back to the real time.
    expect(Date.parse(String(logLines(forbidden).find((l) => l.message === 'run:started')!.now))).to.be.closeTo(Date.now(), 120_000);

    await api.close();
    const unreachable = await runCli(['detect-inactivity'], { env: podEnv({ KUBERNETES_API_TIMEOUT_MS: '500' }) });
    expect(unreachable.code, unreachable.stderr).to.equal(0);
    expect(logLines(unreachable).map((l) => l.message)).to.include.members(['k8s:job-read-failed', 'k8s:annotate-failed']);
    expect(unreachable.summary).to.include({ success: true });
  });
});

describe('lib/k8s helpers', () => {
  it('does nothing outside a pod', async () => {
    const log = createLogger({ level: 'error', pretty: false });
    const deps = await kubernetesRunDeps(loadConfig({}), log);
    expect(deps).to.deep.equal({ publishers: [] });
    log.close();
  });

  it('drops the item lists of a summary too large for an annotation', () => {
    const big = { success: false, job: 'sync-quickbooks', runId: 'r1', errors: 100, errorDetails: Array.from({ length: 100 }, (_, i) => ({ id: `c${i}`, error: 'x'.repeat(500) })) };
    const text = boundedSummary(big);
    expect(Buffer.byteLength(text)).to.be.below(32 * 1024 + 1);
    expect(JSON.parse(text)).to.deep.equal({ success: false, job: 'sync-quickbooks', runId: 'r1', errors: 100, annotationTruncated: true });
    expect(boundedSummary({ success: true, job: 'x', runId: 'r' })).to.equal('{"success":true,"job":"x","runId":"r"}');
  });

  it('names manual Jobs within 63 characters and recognises summary lines', () => {
    expect(manualJobName('a'.repeat(52))).to.have.length.at.most(63).and.match(/-manual-[0-9a-f]{5}$/);
    expect(isSummaryLine('{"success":true,"job":"detect-inactivity","runId":"r1","errors":0}')).to.equal(true);
    expect(isSummaryLine('{"level":"info","message":"run:finished","success":true,"job":"x","runId":"r"}')).to.equal(false);
    expect(isSummaryLine('not json')).to.equal(false);
  });
});
