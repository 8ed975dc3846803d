/**
 * `exitosx-cron doctor` as an SRE and a `helm test` pod run it: one line per check,
 * the JSON summary last on stdout, exit 0 / 1 / 2, and no secret in anything it
 * prints, healthy or broken (where a leak is likeliest: the error paths).
 */
import { expect } from 'chai';
import { TOKEN as KUBE_TOKEN } from '../k8s/support/fake-kube-api.ts';
import { find, render, type K8sObject } from '../k8s/support/manifests.ts';
import { requireBinary } from '../observability/support.ts';
import { KEY, OLD_KEY } from '../quickbooks/support.ts';
import { runCli, type CliResult } from '../support/run.ts';
import { startInstallation, type Installation } from './support.ts';

const LINE = /^(ok|fail|not configured|skipped) +([a-z-]+) +(\S.*)$/;

/** Each check line parsed, and the summary; asserts the shape of stdout on the way. */
function parse(r: CliResult) {
  const lines = r.stdout.trimEnd().split('\n');
  const summary = JSON.parse(lines.pop()!) as { command: string; success: boolean; failed: string[]; checks: Record<string, { status: string; detail: string }> };
  const checks = lines.map((l) => {
    const m = LINE.exec(l);
    expect(m, `not a check line: ${l}`).to.not.equal(null);
    return { status: m![1]!, check: m![2]!, detail: m![3]! };
  });
  expect(summary.command).to.equal('doctor');
  expect(Object.keys(summary.checks)).to.deep.equal(checks.map((c) => c.check));
  for (const c of checks) expect(summary.checks[c.check]).to.deep.equal({ status: c.status, detail: c.detail });
  return { checks, summary };
}

/** Asserts none of `secrets` (nor their base64/base64url forms, for keys) is in the output. */
function expectNoSecrets(r: CliResult, secrets: string[]) {
  for (const s of secrets) {
    expect(r.stdout, 'stdout').not.to.include(s);
    expect(r.stderr, 'stderr').not.to.include(s);
  }
}

describe('exitosx-cron doctor (command line)', function () {
  this.timeout(180_000);
  let inst: Installation;
  const DB_PASSWORD = 'db-pass-7f3a9c21';

  before(async function () {
    inst = await startInstallation(requireBinary(this, 'pushgateway'));
  });
  after(async () => {
    await inst?.close();
  });

  /** The installation's URL with a password in it (trust auth: the server ignores it; doctor must not print it). */
  const withPassword = () => {
    const u = new URL(inst.db.url!);
    u.username = 'postgres';
    u.password = DB_PASSWORD;
    return u.toString();
  };
  const secrets = () => [inst.sendgrid.apiKey, 'qb-test-client-secret-0123456789', KEY.toString('base64'), KEY.toString('base64url'), OLD_KEY.toString('base64'), DB_PASSWORD, KUBE_TOKEN, ...inst.plainTokens];

  it('prints an ok line per check and the summary last, exits 0, and prints no secret', async () => {
    const r = await runCli(['doctor'], { env: inst.env({ DATABASE_URL: withPassword() }), timeoutMs: 170_000 });
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const { checks, summary } = parse(r);
    expect(checks.map((c) => c.status)).to.deep.equal(Array(10).fill('ok'));
    expect(summary).to.include({ success: true });
    expect(summary.failed).to.deep.equal([]);
    expectNoSecrets(r, secrets());
  });

  it('prints one fail line for each broken thing, exits 1, and prints no secret, not even the wrong ones', async () => {
    const wrong = { SENDGRID_API_KEY: 'SG.wrong-key-abcdef0123.abcdefghijklmnopq', QUICKBOOKS_CLIENT_SECRET: 'wrong-intuit-secret-55aa', TOKEN_ENCRYPTION_KEY: OLD_KEY.toString('base64') };
    const r = await runCli(['doctor'], { env: inst.env({ DATABASE_URL: withPassword(), ...wrong }), timeoutMs: 170_000 });
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    const { checks, summary } = parse(r);
    expect(summary.failed).to.deep.equal(['token-key', 'sendgrid', 'quickbooks']);
    expect(checks.filter((c) => c.status === 'fail').map((c) => c.check)).to.deep.equal(['token-key', 'sendgrid', 'quickbooks']);
    expectNoSecrets(r, [...secrets(), ...Object.values(wrong)]);
  });

  it('passes as the chart\'s helm test Pod: its args, its ConfigMap and Secret (envFrom) and downward API, values from helm', async () => {
    // The installation's settings given to the chart as an operator would (config and secret values).
    const e = inst.env();
    const config = ['SENDGRID_API_URL', 'QUICKBOOKS_TOKEN_URL', 'QUICKBOOKS_API_URL', 'QUICKBOOKS_TIMEOUT_MS', 'PUSHGATEWAY_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT'];
    const secret = ['DATABASE_URL', 'SENDGRID_API_KEY', 'QUICKBOOKS_CLIENT_ID', 'QUICKBOOKS_CLIENT_SECRET', 'TOKEN_ENCRYPTION_KEY'];
    const objects = render([...config.flatMap((k) => ['--set-string', `config.${k}=${e[k]}`]), ...secret.flatMap((k) => ['--set-string', `secret.values.${k}=${e[k]}`])], 'exitosx-cron', 'exitosx');
    const pod = find(objects, 'Pod', 'exitosx-cron-doctor');
    const container = pod.spec.containers[0] as K8sObject;
    // What the kubelet gives the container: envFrom (ConfigMap, then Secret), the downward API
    // (the Pod has no job-name label: JOB_NAME is empty), KUBERNETES_SERVICE_HOST; the kubeconfig
    // stands for the mounted ServiceAccount token.
    const env: Record<string, string> = {};
    for (const from of container.envFrom as K8sObject[]) {
      if (from.configMapRef) Object.assign(env, find(objects, 'ConfigMap', from.configMapRef.name).data);
      if (from.secretRef) Object.assign(env, find(objects, 'Secret', from.secretRef.name).stringData);
    }
    const fields: Record<string, string> = { 'metadata.name': pod.metadata.name, 'metadata.namespace': pod.metadata.namespace };
    for (const v of container.env as K8sObject[]) env[v.name] = v.value ?? fields[v.valueFrom?.fieldRef?.fieldPath] ?? '';
    Object.assign(env, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBECONFIG: inst.kubeconfig, EMBEDDED_DB_DIR: e.EMBEDDED_DB_DIR!, EMAIL_OUTBOX_DIR: e.EMAIL_OUTBOX_DIR! });
    expect(env.JOB_NAME).to.equal('');
    const r = await runCli(container.args, { env, timeoutMs: 170_000 });
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const { checks } = parse(r);
    expect(checks.map((c) => `${c.check} ${c.status}`)).to.deep.equal(['configuration', 'database', 'product-columns', 'suite-migrations', 'token-key', 'sendgrid', 'quickbooks', 'pushgateway', 'otlp', 'kubernetes'].map((n) => `${n} ok`));
    expectNoSecrets(r, secrets());
  });

  it('reports an invalid configuration as its failing line and exits 2 with one line on stderr', async () => {
    const r = await runCli(['doctor'], { env: inst.env({ TOKEN_ENCRYPTION_KEY: 'c2hvcnQ=', DATABASE_URL: withPassword() }) });
    expect(r.code).to.equal(2);
    const { checks, summary } = parse(r);
    expect(checks).to.deep.equal([{ status: 'fail', check: 'configuration', detail: 'TOKEN_ENCRYPTION_KEY must be 32 bytes of base64 (got 5); make one with: openssl rand -base64 32' }]);
    expect(summary.success).to.equal(false);
    expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'))).to.deep.equal(['exitosx-cron: TOKEN_ENCRYPTION_KEY must be 32 bytes of base64 (got 5); make one with: openssl rand -base64 32']);
    expectNoSecrets(r, [DB_PASSWORD]);
  });
});
