/**
 * Rendering the chart with the real Helm (from the kubectl layer, scripts/k8s-tools.ts)
 * and validating every object against the upstream Kubernetes JSON schemas in
 * test/fixtures/k8s-schemas/ (v1.32.2 standalone-strict, and the PrometheusRule CRD).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parseAllDocuments } from 'yaml';
import { toolPath } from '../../../scripts/k8s-tools.ts';
import { ROOT } from '../../support/run.ts';

export const CHART = path.join(ROOT, 'helm/exitosx-cron');
const SCHEMAS = path.join(ROOT, 'test/fixtures/k8s-schemas');

/** A rendered Kubernetes object (loosely typed: tests read fields by path). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type K8sObject = Record<string, any>;

/** Runs helm with `args`; returns stdout. Throws with helm's stderr on failure. */
export function helm(args: string[]): string {
  try {
    return execFileSync(toolPath('helm'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HELM_CACHE_HOME: '/tmp/helm-cache', HELM_CONFIG_HOME: '/tmp/helm-config', HELM_DATA_HOME: '/tmp/helm-data' } });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/** Parses a multi-document YAML stream into its non-empty objects. */
export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`invalid YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

/** `helm template <release> helm/exitosx-cron -n <namespace> …extra`, parsed. */
export function render(extra: string[] = [], release = 'exitosx-cron', namespace = 'exitosx'): K8sObject[] {
  return parseObjects(helm(['template', release, CHART, '--namespace', namespace, ...extra]));
}

const SCHEMA_FILES: Record<string, string> = {
  'batch/v1/CronJob': 'cronjob-batch-v1.json',
  'batch/v1/Job': 'job-batch-v1.json',
  'v1/ConfigMap': 'configmap-v1.json',
  'v1/Secret': 'secret-v1.json',
  'v1/ServiceAccount': 'serviceaccount-v1.json',
  'rbac.authorization.k8s.io/v1/Role': 'role-rbac-v1.json',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'rolebinding-rbac-v1.json',
  'networking.k8s.io/v1/NetworkPolicy': 'networkpolicy-networking-v1.json',
  'monitoring.coreos.com/v1/PrometheusRule': 'prometheusrule-monitoring-v1.json',
};

/**
 * Kinds without a file in the reference folder, built from one that has their
 * types. A Pod (the `helm test` hook) is ObjectMeta and PodSpec: exactly the
 * `metadata` and `spec` of a Job's pod template (PodTemplateSpec) in
 * job-batch-v1.json, the same OpenAPI types, so its schema is made of those two
 * (strict, as the rest), with apiVersion v1 and kind Pod.
 */
const DERIVED_SCHEMAS: Record<string, () => Record<string, unknown>> = {
  'v1/Pod': () => {
    const job = JSON.parse(fs.readFileSync(path.join(SCHEMAS, 'job-batch-v1.json'), 'utf8')) as K8sObject;
    const template = job.properties.spec.properties.template.properties;
    return {
      type: 'object',
      additionalProperties: false,
      required: ['apiVersion', 'kind', 'metadata', 'spec'],
      properties: { apiVersion: { enum: ['v1'] }, kind: { enum: ['Pod'] }, metadata: template.metadata, spec: template.spec, status: { type: 'object' } },
    };
  },
};

const validators = new Map<string, ValidateFunction>();
let ajv: Ajv | undefined;

function validatorFor(key: string): ValidateFunction {
  let v = validators.get(key);
  if (v) return v;
  const file = SCHEMA_FILES[key];
  if (!file && !DERIVED_SCHEMAS[key]) throw new Error(`no schema for ${key}: add it to test/fixtures/k8s-schemas and SCHEMA_FILES`);
  if (!ajv) {
    // The schemas carry x-kubernetes-* keywords (strict: false) and declare a draft ajv
    // does not know (the $schema key is dropped); int32/int64 are not in ajv-formats.
    // The PrometheusRule schema writes Go's case-insensitive flag inline ("^(?i)(abort|warn)?$").
    const goRegExp = Object.assign((pattern: string, flags: string) => (pattern.includes('(?i)') ? new RegExp(pattern.replaceAll('(?i)', ''), flags + 'i') : new RegExp(pattern, flags)), {
      code: 'new RegExp',
    });
    ajv = new Ajv({ strict: false, allErrors: true, code: { regExp: goRegExp } });
    const addFormats = addFormatsModule as unknown as (a: Ajv) => void;
    addFormats(ajv);
    ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
    ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  }
  const schema = file ? (JSON.parse(fs.readFileSync(path.join(SCHEMAS, file), 'utf8')) as Record<string, unknown>) : DERIVED_SCHEMAS[key]!();
  delete schema.$schema;
  v = ajv.compile(schema);
  validators.set(key, v);
  return v;
}

/** The schema errors of one object, as readable lines (empty when valid). */
export function schemaErrors(obj: K8sObject): string[] {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const validate = validatorFor(key);
  if (validate(obj)) return [];
  return (validate.errors ?? []).map((e) => `${key} ${String((obj as K8sObject).metadata?.name)}: ${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
}

/** The objects of `kind` (optionally named `name`). */
export function ofKind(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

/** The one object of `kind` named `name`; throws when absent. */
export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(', ')}`);
  return o;
}

/** Every pod template in the objects (CronJobs' and Jobs'), with its owner's name. */
export function podTemplates(objects: K8sObject[]): Array<{ owner: string; pod: K8sObject; jobSpec: K8sObject }> {
  const out: Array<{ owner: string; pod: K8sObject; jobSpec: K8sObject }> = [];
  for (const o of objects) {
    if (o.kind === 'CronJob') out.push({ owner: `CronJob/${o.metadata.name}`, pod: o.spec.jobTemplate.spec.template, jobSpec: o.spec.jobTemplate.spec });
    if (o.kind === 'Job') out.push({ owner: `Job/${o.metadata.name}`, pod: o.spec.template, jobSpec: o.spec });
  }
  return out;
}
