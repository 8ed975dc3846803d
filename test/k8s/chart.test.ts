/**
 * The Helm chart, rendered by the real Helm and validated against the upstream
 * Kubernetes schemas; promtool checks the alert rules it wraps.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { parse, stringify } from 'yaml';
import { RUNTIME_PERMISSIONS } from '../../lib/k8s/access.ts';
import { CHART, find, helm, ofKind, podTemplates, render, schemaErrors, type K8sObject } from './support/manifests.ts';

const JOBS = { 'generate-drift-reports': '0 6 1 * *', 'detect-inactivity': '0 8 * * *', 'sync-quickbooks': '0 2 * * *' };
const SECRET_KEYS = ['DATABASE_URL', 'SENDGRID_API_KEY', 'QUICKBOOKS_CLIENT_ID', 'QUICKBOOKS_CLIENT_SECRET', 'TOKEN_ENCRYPTION_KEY', 'TOKEN_ENCRYPTION_KEY_PREVIOUS'];
const MONITORING = ['--api-versions', 'monitoring.coreos.com/v1'];
const INDEXED = ['--set', 'jobDefaults.indexed.enabled=true', '--set', 'jobDefaults.indexed.shards=3'];
const hasAlerts = fs.existsSync(path.join(CHART, 'files/alerts.yaml'));
const hasDashboard = fs.existsSync(path.join(CHART, 'files/dashboard.json'));

function expectValid(objects: K8sObject[]) {
  const errors = objects.flatMap(schemaErrors);
  expect(errors, errors.join('\n')).to.deep.equal([]);
}

describe('helm chart helm/exitosx-cron', function () {
  this.timeout(60_000);
  let defaults: K8sObject[];
  let indexed: K8sObject[];
  let monitored: K8sObject[];

  before(() => {
    defaults = render();
    indexed = render(INDEXED);
    monitored = render(MONITORING);
  });

  it('passes helm lint --strict, with default values and as Indexed Jobs', () => {
    helm(['lint', '--strict', CHART]);
    helm(['lint', '--strict', CHART, ...INDEXED]);
  });

  it('renders objects that are valid against the upstream schemas (defaults, Indexed, with the Prometheus Operator, with an existing Secret)', () => {
    expectValid(defaults);
    expectValid(indexed);
    expectValid(monitored);
    expectValid(render(['--set', 'secret.existingSecret=exitosx-prod', '--set', 'rbac.trigger.subjects[0].kind=Group', '--set', 'rbac.trigger.subjects[0].name=sre', '--set', 'rbac.trigger.subjects[0].apiGroup=rbac.authorization.k8s.io']));
    expect(defaults.map((o) => o.kind)).to.include.members(['CronJob', 'ConfigMap', 'Secret', 'ServiceAccount', 'Role', 'RoleBinding', 'NetworkPolicy', 'Job', 'Pod']);
  });

  it('renders one CronJob per job, named <release>-<job>, with its schedule in UTC', () => {
    const cronJobs = ofKind(defaults, 'CronJob');
    expect(cronJobs.map((c) => c.metadata.name).sort()).to.deep.equal(Object.keys(JOBS).map((j) => `exitosx-cron-${j}`).sort());
    for (const [job, schedule] of Object.entries(JOBS)) {
      const c = find(defaults, 'CronJob', `exitosx-cron-${job}`);
      expect(c.spec).to.include({ schedule, timeZone: 'Etc/UTC', suspend: false, concurrencyPolicy: 'Forbid' });
      expect(c.spec.startingDeadlineSeconds).to.be.a('number');
      expect(c.spec.successfulJobsHistoryLimit).to.be.a('number');
      expect(c.spec.failedJobsHistoryLimit).to.be.a('number');
      const spec = c.spec.jobTemplate.spec;
      expect(spec.backoffLimit).to.be.a('number');
      expect(spec.activeDeadlineSeconds).to.be.a('number');
      expect(spec.ttlSecondsAfterFinished).to.be.a('number');
      expect(spec.template.spec.containers[0].args).to.deep.equal([job]);
      expect(c.spec.jobTemplate.metadata.labels['exitosx.com/job']).to.equal(job);
    }
  });

  it('takes a job setting from jobs.<name> over jobDefaults, and can suspend or drop a job', () => {
    const objects = render(['--set', 'jobs.detect-inactivity.suspend=true', '--set', 'jobs.sync-quickbooks.enabled=false', '--set', 'jobs.detect-inactivity.args={--company,c1}']);
    const c = find(objects, 'CronJob', 'exitosx-cron-detect-inactivity');
    expect(c.spec.suspend).to.equal(true);
    expect(c.spec.jobTemplate.spec.template.spec.containers[0].args).to.deep.equal(['detect-inactivity', '--company', 'c1']);
    expect(ofKind(objects, 'CronJob').map((o) => o.metadata.name)).not.to.include('exitosx-cron-sync-quickbooks');
    expect(find(defaults, 'CronJob', 'exitosx-cron-sync-quickbooks').spec.jobTemplate.spec.template.spec.terminationGracePeriodSeconds).to.equal(120);
  });

  it('fails the Job at once on exit code 2 (podFailurePolicy, restartPolicy Never) and does not count disruptions', () => {
    for (const { owner, pod, jobSpec } of podTemplates(defaults)) {
      expect(pod.spec.restartPolicy, owner).to.equal('Never');
      const rules = jobSpec.podFailurePolicy.rules as K8sObject[];
      expect(rules[0], owner).to.deep.equal({ action: 'FailJob', onExitCodes: { containerName: 'exitosx-cron', operator: 'In', values: [2] } });
      expect(rules.some((r) => r.action === 'Ignore' && r.onPodConditions?.[0]?.type === 'DisruptionTarget'), owner).to.equal(true);
    }
  });

  it('meets Pod Security Standards "restricted", with a writable /tmp on a read-only root', () => {
    for (const { owner, pod } of podTemplates(defaults)) {
      const spec = pod.spec;
      expect(spec.securityContext, owner).to.deep.include({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(spec.securityContext.runAsUser, owner).to.be.a('number').above(0);
      for (const c of spec.containers as K8sObject[]) {
        expect(c.securityContext, owner).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
        expect(c.securityContext.runAsUser).to.be.a('number').above(0);
        expect(c.volumeMounts).to.deep.include({ name: 'tmp', mountPath: '/tmp' });
        expect(c.resources.requests).to.have.keys('cpu', 'memory');
        expect(c.resources.limits).to.have.property('memory');
      }
      expect(spec.volumes.find((v: K8sObject) => v.name === 'tmp').emptyDir, owner).to.be.an('object');
      expect(spec.hostNetwork ?? false).to.equal(false);
      // Sized for the shutdown path: the item in hand, then the metrics push and span flush.
      expect(spec.terminationGracePeriodSeconds, owner).to.be.at.least(30);
    }
  });

  it('gives each CronJob pod POD_NAME, POD_NAMESPACE and JOB_NAME from the downward API, and its own ServiceAccount token', () => {
    for (const c of ofKind(defaults, 'CronJob')) {
      const spec = c.spec.jobTemplate.spec.template.spec;
      const env = Object.fromEntries((spec.containers[0].env as K8sObject[]).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
      expect(env).to.include({ POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', JOB_NAME: "metadata.labels['batch.kubernetes.io/job-name']" });
      expect(spec.serviceAccountName).to.equal('exitosx-cron');
      expect(spec.automountServiceAccountToken).to.equal(true);
    }
    expect(find(defaults, 'ServiceAccount', 'exitosx-cron').automountServiceAccountToken).to.equal(false);
  });

  it('runs as an Indexed Job when asked: completions = parallelism = shards, SHARD_COUNT to match', () => {
    for (const c of ofKind(defaults, 'CronJob')) expect(c.spec.jobTemplate.spec.completionMode).to.equal(undefined);
    for (const c of ofKind(indexed, 'CronJob')) {
      const spec = c.spec.jobTemplate.spec;
      expect(spec).to.include({ completionMode: 'Indexed', completions: 3, parallelism: 3 });
      expect(spec.template.spec.containers[0].env).to.deep.include({ name: 'SHARD_COUNT', value: '3' });
    }
    // One job alone can be sharded.
    const one = render(['--set', 'jobs.detect-inactivity.indexed.enabled=true']);
    expect(find(one, 'CronJob', 'exitosx-cron-detect-inactivity').spec.jobTemplate.spec.completions).to.equal(4);
    expect(find(one, 'CronJob', 'exitosx-cron-sync-quickbooks').spec.jobTemplate.spec.completionMode).to.equal(undefined);
  });

  it('takes configuration from a ConfigMap and secrets from a Secret, never inline in a pod spec', () => {
    const objects = render(['--set', 'secret.values.DATABASE_URL=postgres://cron:s3cret@db:5432/exitosx', '--set', 'secret.values.SENDGRID_API_KEY=SG.k3y']);
    const secret = find(objects, 'Secret', 'exitosx-cron');
    expect(secret.stringData).to.deep.equal({ DATABASE_URL: 'postgres://cron:s3cret@db:5432/exitosx', SENDGRID_API_KEY: 'SG.k3y' });
    expect(find(objects, 'ConfigMap', 'exitosx-cron').data).to.include({ APP_BASE_URL: 'https://app.exitosx.com', LOG_LEVEL: 'info' });
    for (const { owner, pod } of podTemplates(objects)) {
      const text = JSON.stringify(pod);
      expect(text, owner).not.to.include('s3cret');
      expect(text, owner).not.to.include('SG.k3y');
      const c = pod.spec.containers[0];
      for (const key of SECRET_KEYS) expect((c.env as K8sObject[]).map((e) => e.name), owner).not.to.include(key);
      expect(c.envFrom.map((e: K8sObject) => e.secretRef?.name).filter(Boolean), owner).to.have.length(1);
      expect(c.envFrom.map((e: K8sObject) => e.configMapRef?.name).filter(Boolean), owner).to.have.length(1);
    }
  });

  it('uses an existing Secret instead of making one', () => {
    const objects = render(['--set', 'secret.existingSecret=exitosx-prod']);
    expect(ofKind(objects, 'Secret')).to.deep.equal([]);
    for (const { owner, pod } of podTemplates(objects)) {
      expect(pod.spec.containers[0].envFrom, owner).to.deep.include({ secretRef: { name: 'exitosx-prod' } });
    }
  });

  it('rejects secret keys in config and unknown jobs (values.schema.json)', () => {
    expect(() => render(['--set', 'config.DATABASE_URL=postgres://x'])).to.throw(/DATABASE_URL/);
    expect(() => render(['--set', 'jobs.send-invoices.schedule=0 1 * * *'])).to.throw(/schema/);
    expect(() => render(['--set', 'jobDefaults.concurrencyPolicy=Sometimes'])).to.throw(/concurrencyPolicy/);
  });

  it('grants the jobs only what a run calls, and trigger users what trigger calls', () => {
    const rules = (name: string) => find(defaults, 'Role', name).rules.map((r: K8sObject) => `${r.apiGroups.join(',')}|${r.resources.join(',')}|${r.verbs.join(',')}`);
    expect(rules('exitosx-cron')).to.have.members(['batch|jobs|get,patch', '|events|create']);
    // What `doctor` asks the API server about (SelfSubjectAccessReviews) is exactly what the Role grants.
    const granted = (find(defaults, 'Role', 'exitosx-cron').rules as K8sObject[]).flatMap((r) => r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${v} ${res}.${g}`))));
    expect(granted).to.have.members(RUNTIME_PERMISSIONS.map((p) => `${p.verb} ${p.resource}.${p.group}`));
    expect(rules('exitosx-cron-trigger')).to.have.members(['batch|cronjobs|get', 'batch|jobs|create,get', '|pods|get,list', '|pods/log|get']);
    const binding = find(defaults, 'RoleBinding', 'exitosx-cron');
    expect(binding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'exitosx-cron', namespace: 'exitosx' }]);
    expect(ofKind(defaults, 'RoleBinding').map((b) => b.metadata.name)).not.to.include('exitosx-cron-trigger');
    const bound = render(['--set', 'rbac.trigger.subjects[0].kind=Group', '--set', 'rbac.trigger.subjects[0].name=sre', '--set', 'rbac.trigger.subjects[0].apiGroup=rbac.authorization.k8s.io']);
    expect(find(bound, 'RoleBinding', 'exitosx-cron-trigger').subjects[0]).to.include({ kind: 'Group', name: 'sre' });
  });

  it('allows egress only to DNS, PostgreSQL, the Kubernetes API, HTTPS (SendGrid, Intuit), the Pushgateway and OTLP', () => {
    const np = find(defaults, 'NetworkPolicy', 'exitosx-cron');
    expect(np.spec.policyTypes).to.have.members(['Ingress', 'Egress']);
    expect(np.spec.ingress).to.equal(undefined);
    expect(np.spec.podSelector.matchLabels).to.deep.equal({ 'app.kubernetes.io/name': 'exitosx-cron', 'app.kubernetes.io/instance': 'exitosx-cron' });
    const ports = new Set((np.spec.egress as K8sObject[]).flatMap((r) => r.ports.map((p: K8sObject) => `${p.protocol}/${p.port}`)));
    expect([...ports]).to.have.members(['UDP/53', 'TCP/53', 'TCP/5432', 'TCP/443', 'TCP/6443', 'TCP/9091', 'TCP/4318']);
    // Every pod the chart makes is selected by it.
    for (const { pod } of podTemplates(defaults)) expect(pod.metadata.labels).to.include(np.spec.podSelector.matchLabels);
    const custom = render(['--set', 'networkPolicy.egress.postgres.ports[0].port=6432', '--set', 'networkPolicy.egress.otlp.enabled=false']);
    const customPorts = (find(custom, 'NetworkPolicy', 'exitosx-cron').spec.egress as K8sObject[]).flatMap((r) => r.ports.map((p: K8sObject) => p.port));
    expect(customPorts).to.include(6432).and.not.include(5432).and.not.include(4318);
    expect(ofKind(render(['--set', 'networkPolicy.enabled=false']), 'NetworkPolicy')).to.deep.equal([]);
  });

  it('runs `exitosx-cron migrate` as a pre-install,pre-upgrade hook, after hook copies of its ConfigMap and Secret', () => {
    const job = find(defaults, 'Job', 'exitosx-cron-migrate');
    expect(job.metadata.annotations).to.include({ 'helm.sh/hook': 'pre-install,pre-upgrade', 'helm.sh/hook-weight': '0' });
    const spec = job.spec.template.spec;
    expect(spec.containers[0].args).to.deep.equal(['migrate']);
    expect(spec.automountServiceAccountToken).to.equal(false);
    expect(spec.serviceAccountName).to.equal(undefined);
    for (const kind of ['ConfigMap', 'Secret']) {
      const copy = find(defaults, kind, 'exitosx-cron-migrate');
      expect(copy.metadata.annotations['helm.sh/hook']).to.equal('pre-install,pre-upgrade');
      expect(Number(copy.metadata.annotations['helm.sh/hook-weight'])).to.be.below(0);
    }
    expect(find(defaults, 'ConfigMap', 'exitosx-cron-migrate').data).to.deep.equal(find(defaults, 'ConfigMap', 'exitosx-cron').data);
    expect(spec.containers[0].envFrom).to.deep.equal([{ configMapRef: { name: 'exitosx-cron-migrate' } }, { secretRef: { name: 'exitosx-cron-migrate' } }]);
    // As a plain Job (k8s/), it reads the release's own ConfigMap and Secret.
    const plain = render(['--set', 'migrations.helmHook=false']);
    const plainJob = find(plain, 'Job', 'exitosx-cron-migrate');
    expect(plainJob.metadata.annotations).to.equal(undefined);
    expect(plainJob.spec.template.spec.containers[0].envFrom).to.deep.equal([{ configMapRef: { name: 'exitosx-cron' } }, { secretRef: { name: 'exitosx-cron' } }]);
    expect(plain.filter((o) => o.metadata.name === 'exitosx-cron-migrate').map((o) => o.kind)).to.deep.equal(['Job']);
  });

  it('ships `exitosx-cron doctor` as a helm test hook Pod made like the jobs\' pods (security context, ConfigMap, Secret, ServiceAccount, NetworkPolicy labels)', () => {
    const pod = find(defaults, 'Pod', 'exitosx-cron-doctor');
    expect(pod.metadata.annotations).to.deep.equal({ 'helm.sh/hook': 'test', 'helm.sh/hook-delete-policy': 'before-hook-creation' });
    expect(pod.spec.containers[0].args).to.deep.equal(['doctor']);
    expect(pod.spec.activeDeadlineSeconds).to.be.a('number').above(0);
    expect(schemaErrors(pod)).to.deep.equal([]);
    // The same pod spec as a CronJob's pod, but for its args and resources.
    const job = find(defaults, 'CronJob', 'exitosx-cron-detect-inactivity').spec.jobTemplate.spec.template;
    const comparable = (spec: K8sObject) => ({ ...spec, activeDeadlineSeconds: undefined, containers: spec.containers.map((c: K8sObject) => ({ ...c, args: undefined, resources: undefined })) });
    expect(comparable(pod.spec)).to.deep.equal(comparable(job.spec));
    expect(pod.spec.serviceAccountName).to.equal('exitosx-cron');
    const np = find(defaults, 'NetworkPolicy', 'exitosx-cron');
    expect(pod.metadata.labels).to.include(np.spec.podSelector.matchLabels);
    // With an existing Secret, from it; and it can be turned off.
    const existing = find(render(['--set', 'secret.existingSecret=exitosx-prod']), 'Pod', 'exitosx-cron-doctor');
    expect(existing.spec.containers[0].envFrom).to.deep.include({ secretRef: { name: 'exitosx-prod' } });
    expect(ofKind(render(['--set', 'doctor.enabled=false']), 'Pod')).to.deep.equal([]);
    expect(() => render(['--set', 'doctor.schedule=hourly'])).to.throw(/schema/);
  });

  it('renders the PrometheusRule only when the cluster serves monitoring.coreos.com/v1, with the extra labels', function () {
    if (!hasAlerts) this.skip();
    expect(ofKind(defaults, 'PrometheusRule')).to.deep.equal([]);
    const rule = find(monitored, 'PrometheusRule', 'exitosx-cron');
    expect(rule.spec.groups).to.be.an('array').that.is.not.empty;
    expect(rule.spec.groups).to.deep.equal((parse(fs.readFileSync(path.join(CHART, 'files/alerts.yaml'), 'utf8')) as K8sObject).groups);
    const labelled = render([...MONITORING, '--set', 'prometheusRule.labels.release=kube-prometheus-stack', '--set', 'prometheusRule.ruleLabels.team=sre']);
    const r = find(labelled, 'PrometheusRule', 'exitosx-cron');
    expect(r.metadata.labels.release).to.equal('kube-prometheus-stack');
    const alerts = (r.spec.groups as K8sObject[]).flatMap((g) => g.rules).filter((x: K8sObject) => x.alert);
    expect(alerts).to.not.be.empty;
    for (const a of alerts) expect(a.labels.team).to.equal('sre');
    expect(ofKind(render([...MONITORING, '--set', 'prometheusRule.enabled=false']), 'PrometheusRule')).to.deep.equal([]);
  });

  it('wraps alert rules that promtool accepts, unchanged from files/alerts.yaml', function () {
    if (!hasAlerts) this.skip();
    if (spawnSync('promtool', ['--version']).status !== 0) throw new Error('promtool is not installed: apt-get install -y prometheus');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-rules-'));
    try {
      const file = path.join(dir, 'rules.yaml');
      fs.writeFileSync(file, stringify(find(monitored, 'PrometheusRule', 'exitosx-cron').spec));
      execFileSync('promtool', ['check', 'rules', file], { stdio: 'pipe' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders the Grafana dashboard ConfigMap with the sidecar label', function () {
    if (!hasDashboard) this.skip();
    const cm = find(defaults, 'ConfigMap', 'exitosx-cron-dashboard');
    expect(cm.metadata.labels.grafana_dashboard).to.equal('1');
    const dashboard = JSON.parse(cm.data['exitosx-cron.json']) as K8sObject;
    expect(dashboard).to.deep.equal(JSON.parse(fs.readFileSync(path.join(CHART, 'files/dashboard.json'), 'utf8')));
    expect(ofKind(render(['--set', 'dashboard.enabled=false']), 'ConfigMap').map((c) => c.metadata.name)).not.to.include('exitosx-cron-dashboard');
  });

  it('prints an ad-hoc run and a backfill in NOTES.txt', () => {
    const out = helm(['install', 'exitosx-cron', CHART, '--namespace', 'exitosx', '--dry-run=client']);
    const notes = out.slice(out.indexOf('NOTES:'));
    expect(notes).to.include('kubectl -n exitosx create job exitosx-cron-detect-inactivity-manual --from=cronjob/exitosx-cron-detect-inactivity');
    expect(notes).to.include('exitosx-cron trigger generate-drift-reports --release exitosx-cron --namespace exitosx --wait -- --period 2026-01');
  });

  it('refuses a release name that would make a CronJob name longer than 52 characters', () => {
    expect(() => render([], 'a-release-name-that-is-far-too-long')).to.throw(/longer than 52/);
  });
});
