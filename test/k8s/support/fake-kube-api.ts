/**
 * A loopback Kubernetes API server: the few endpoints the suite calls, in the real
 * JSON shapes (CronJob, Job, PodList, pod log, Event, SelfSubjectAccessReview, whose
 * verdict follows `forbidden`; errors as Status objects with
 * 401/403/404/409/415/422), bearer-token authentication, and a small "controller and
 * kubelet" that runs a created Job's pods from a script or as the real CLI, with the
 * downward-API environment a pod would have, and applies backoffLimit and the
 * podFailurePolicy to decide the Job's outcome.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { CLI } from '../../support/run.ts';
import { schemaErrors, type K8sObject } from './manifests.ts';

export const TOKEN = 'fake-token-0123456789';

/** What one pod does: print these lines and exit, or run the real CLI with its args. */
export type PodScript = { lines: string[]; exitCode: number; delayMs?: number } | { cli: { env: Record<string, string> } };

/** Decides each pod of a created Job: (job, attempt from 0, completion index) → script. */
export type Kubelet = (job: K8sObject, attempt: number, index: number) => PodScript;

interface PodState {
  pod: K8sObject;
  lines: string[];
  listeners: Set<() => void>;
  terminated: boolean;
}

type Group = 'batch' | '';

const RESOURCES: Record<string, { group: Group; kind: string }> = {
  cronjobs: { group: 'batch', kind: 'CronJob' },
  jobs: { group: 'batch', kind: 'Job' },
  pods: { group: '', kind: 'Pod' },
  events: { group: '', kind: 'Event' },
};

/** Discovery documents (kubectl reads them before anything else). */
const resource = (name: string, kind: string, verbs: string[], namespaced = true) => ({ name, singularName: kind.toLowerCase(), namespaced, kind, verbs });
const DISCOVERY: Record<string, K8sObject> = {
  '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }] },
  '/apis': {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [
      { name: 'batch', versions: [{ groupVersion: 'batch/v1', version: 'v1' }], preferredVersion: { groupVersion: 'batch/v1', version: 'v1' } },
      { name: 'authorization.k8s.io', versions: [{ groupVersion: 'authorization.k8s.io/v1', version: 'v1' }], preferredVersion: { groupVersion: 'authorization.k8s.io/v1', version: 'v1' } },
    ],
  },
  '/apis/authorization.k8s.io/v1': { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'authorization.k8s.io/v1', resources: [resource('selfsubjectaccessreviews', 'SelfSubjectAccessReview', ['create'], false)] },
  '/api/v1': { kind: 'APIResourceList', groupVersion: 'v1', resources: [resource('pods', 'Pod', ['get', 'list']), resource('pods/log', 'Pod', ['get']), resource('events', 'Event', ['create'])] },
  '/apis/batch/v1': { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'batch/v1', resources: [resource('cronjobs', 'CronJob', ['get']), resource('jobs', 'Job', ['create', 'get', 'patch'])] },
};

let resourceVersion = 1000;
const nextVersion = () => String(++resourceVersion);
const uid = () => crypto.randomUUID();

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): K8sObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: K8sObject, patch: K8sObject): K8sObject {
  const out: K8sObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (typeof v === 'object' && !Array.isArray(v)) out[k] = mergePatch(typeof out[k] === 'object' && out[k] ? out[k] : {}, v);
    else out[k] = v;
  }
  return out;
}

export class FakeKubeApi {
  readonly cronJobs = new Map<string, K8sObject>();
  readonly jobs = new Map<string, K8sObject>();
  readonly pods = new Map<string, PodState>();
  readonly events: K8sObject[] = [];
  readonly patches: Array<{ job: string; contentType: string; body: K8sObject }> = [];
  readonly requests: string[] = [];
  /** "verb resource" pairs answered 403, e.g. "create jobs" (and denied by a SelfSubjectAccessReview). */
  readonly forbidden = new Set<string>();
  /** The resourceAttributes of every SelfSubjectAccessReview asked. */
  readonly accessReviews: K8sObject[] = [];
  /** "verb resource" → how many of the next such requests fail with 500 (an API server blip). */
  readonly blips = new Map<string, number>();
  /** When set, a followed log stream is cut after this many lines (like a proxy closing it). */
  cutFollowAfter: number | undefined;
  /** Accept requests without the token (kubectl sends none over plain http). */
  anonymous = false;
  kubelet: Kubelet | undefined;
  private server: http.Server | undefined;
  private children = new Set<ReturnType<typeof spawn>>();
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(status(500, 'InternalError', String(err))));
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    for (const p of this.pods.values()) for (const l of p.listeners) l();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /**
   * Writes a kubeconfig for this server (context namespace `namespace`); returns its path.
   * The client refuses plain http unless TLS verification is off, hence insecure-skip-tls-verify.
   */
  kubeconfig(dir: string, namespace = 'exitosx'): string {
    const file = path.join(dir, 'kubeconfig.yaml');
    fs.writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `  - name: fake`,
        `    cluster: { server: "${this.url}", insecure-skip-tls-verify: true }`,
        'users:',
        `  - name: tester`,
        `    user: { token: "${TOKEN}" }`,
        'contexts:',
        `  - name: fake`,
        `    context: { cluster: fake, user: tester, namespace: ${namespace} }`,
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return file;
  }

  /** Stores a CronJob as the API server would (uid, resourceVersion, creationTimestamp). */
  addCronJob(cronJob: K8sObject): K8sObject {
    const stored = structuredClone(cronJob);
    stored.metadata = { ...stored.metadata, uid: uid(), resourceVersion: nextVersion(), generation: 1, creationTimestamp: new Date().toISOString() };
    this.cronJobs.set(`${stored.metadata.namespace}/${stored.metadata.name}`, stored);
    return stored;
  }

  /** Stores a Job as created by the CronJob controller (no pods run for it). */
  addJob(job: K8sObject): K8sObject {
    const stored = this.stamp(structuredClone(job));
    this.jobs.set(`${stored.metadata.namespace}/${stored.metadata.name}`, stored);
    return stored;
  }

  /** The log of a pod, as lines. */
  logOf(pod: string): string[] {
    return [...this.pods.values()].find((p) => p.pod.metadata.name === pod)?.lines ?? [];
  }

  private stamp(obj: K8sObject): K8sObject {
    obj.metadata = { ...obj.metadata, uid: uid(), resourceVersion: nextVersion(), creationTimestamp: new Date().toISOString() };
    return obj;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const send = (code: number, body: K8sObject) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}` && !this.anonymous) return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    const discovery = DISCOVERY[url.pathname];
    if (discovery) return send(200, discovery);
    if (url.pathname === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews') {
      if (req.method !== 'POST') return send(405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
      return send(...this.accessReview((await readJson(req)) as K8sObject));
    }
    const m = /^\/(?:api\/v1|apis\/batch\/v1)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/(log))?$/.exec(url.pathname);
    if (!m) return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const [, ns, resource, name, sub] = m as unknown as [string, string, string, string | undefined, string | undefined];
    const info = RESOURCES[resource];
    const group = url.pathname.startsWith('/apis/batch/') ? 'batch' : '';
    if (!info || info.group !== group) return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const verb = req.method === 'GET' ? (name ? 'get' : 'list') : req.method === 'POST' ? 'create' : req.method === 'PATCH' ? 'patch' : (req.method ?? '').toLowerCase();
    const resourceName = sub ? `${resource}/${sub}` : resource;
    if (this.forbidden.has(`${verb} ${resourceName}`)) {
      const what = `${resource}${group ? '.' + group : ''}${name ? ` "${name}"` : ''}`;
      return send(
        403,
        status(403, 'Forbidden', `${what} is forbidden: User "alice@example.com" cannot ${verb} resource "${resourceName}" in API group "${group}" in the namespace "${ns}"`, {
          ...(name ? { name } : {}),
          group,
          kind: resource,
        }),
      );
    }
    const blips = this.blips.get(`${verb} ${resourceName}`) ?? 0;
    if (blips > 0) {
      this.blips.set(`${verb} ${resourceName}`, blips - 1);
      return send(500, status(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out'));
    }
    const body = req.method === 'POST' || req.method === 'PATCH' ? await readJson(req) : undefined;
    const key = `${ns}/${name}`;
    const notFound = () => send(404, status(404, 'NotFound', `${resource}${group ? '.' + group : ''} "${name}" not found`, { name, group, kind: resource }));

    if (resource === 'cronjobs' && verb === 'get') return this.cronJobs.has(key) ? send(200, this.cronJobs.get(key)!) : notFound();
    if (resource === 'jobs' && verb === 'get') return this.jobs.has(key) ? send(200, this.jobs.get(key)!) : notFound();
    if (resource === 'jobs' && verb === 'create') {
      const job = body as K8sObject;
      const errors = schemaErrors(job);
      if (errors.length) return send(422, status(422, 'Invalid', `Job.batch "${job.metadata?.name}" is invalid: ${errors.join('; ')}`));
      const jobKey = `${ns}/${job.metadata.name}`;
      if (this.jobs.has(jobKey)) return send(409, status(409, 'AlreadyExists', `jobs.batch "${job.metadata.name}" already exists`, { name: job.metadata.name, group: 'batch', kind: 'jobs' }));
      const stored = this.stamp({ ...job, metadata: { ...job.metadata, namespace: ns } });
      stored.status = { active: 0, ready: 0, terminating: 0, uncountedTerminatedPods: {} };
      this.jobs.set(jobKey, stored);
      send(201, stored);
      if (this.kubelet) this.runJob(stored);
      return;
    }
    if (resource === 'jobs' && verb === 'patch') {
      const contentType = String(req.headers['content-type'] ?? '');
      if (!contentType.startsWith('application/merge-patch+json')) {
        return send(415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`));
      }
      const job = this.jobs.get(key);
      if (!job) return notFound();
      this.patches.push({ job: name!, contentType, body: body as K8sObject });
      // In place: the controller below holds this object.
      const patched = mergePatch(job, body as K8sObject);
      for (const k of Object.keys(job)) if (!(k in patched)) delete job[k];
      Object.assign(job, patched);
      job.metadata.resourceVersion = nextVersion();
      return send(200, job);
    }
    if (resource === 'pods' && verb === 'list') {
      const selector = url.searchParams.get('labelSelector') ?? '';
      const wanted = selector.split(',').filter(Boolean).map((s) => s.split('=') as [string, string]);
      const items = [...this.pods.values()].map((p) => p.pod).filter((p) => p.metadata.namespace === ns && wanted.every(([k, v]) => p.metadata.labels?.[k] === v));
      return send(200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: nextVersion() }, items });
    }
    if (resource === 'pods' && verb === 'get' && sub === 'log') return this.streamLog(ns, name!, url, res, send);
    if (resource === 'events' && verb === 'create') {
      const event = body as K8sObject;
      for (const field of ['involvedObject', 'reason', 'message', 'type']) if (!event[field]) return send(422, status(422, 'Invalid', `Event "${event.metadata?.name}" is invalid: ${field}: Required value`));
      if (event.metadata?.namespace && event.metadata.namespace !== ns) return send(422, status(422, 'Invalid', 'the namespace of the provided object does not match the namespace sent on the request'));
      const stored = this.stamp({ ...event, metadata: { ...event.metadata, namespace: ns } });
      this.events.push(stored);
      return send(201, stored);
    }
    return send(405, status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
  }

  /**
   * `kubectl auth can-i`: the review echoed back (201) with its status, as the API
   * server does (`allowed`, and a `reason` naming the binding when RBAC allows).
   */
  private accessReview(review: K8sObject): [number, K8sObject] {
    if (review?.apiVersion !== 'authorization.k8s.io/v1' || review.kind !== 'SelfSubjectAccessReview') {
      return [400, status(400, 'BadRequest', 'the API version in the data (%s) does not match the expected API version (authorization.k8s.io/v1)'.replace('%s', String(review?.apiVersion)))];
    }
    const attrs = review.spec?.resourceAttributes as K8sObject | undefined;
    if (!attrs === !review.spec?.nonResourceAttributes) {
      return [422, status(422, 'Invalid', 'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified')];
    }
    const body: K8sObject = { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec };
    if (!attrs) return [201, { ...body, status: { allowed: false } }];
    this.accessReviews.push(attrs);
    const allowed = !this.forbidden.has(`${attrs.verb} ${attrs.resource}${attrs.subresource ? `/${attrs.subresource}` : ''}`);
    const reason = `RBAC: allowed by RoleBinding "exitosx-cron/${attrs.namespace}" of Role "exitosx-cron" to ServiceAccount "exitosx-cron/${attrs.namespace}"`;
    return [201, { ...body, status: allowed ? { allowed: true, reason } : { allowed: false } }];
  }

  private streamLog(ns: string, name: string, url: URL, res: http.ServerResponse, send: (c: number, b: K8sObject) => void): void {
    const state = this.pods.get(`${ns}/${name}`);
    if (!state) return send(404, status(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' }));
    const container = url.searchParams.get('container');
    if (container && container !== state.pod.spec.containers[0].name) return send(400, status(400, 'BadRequest', `container ${container} is not valid for pod ${name}`));
    if (state.pod.status.phase === 'Pending') return send(400, status(400, 'BadRequest', `container "${container}" in pod "${name}" is waiting to start: ContainerCreating`));
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    let sent = 0;
    const follow = url.searchParams.get('follow') === 'true';
    const cut = follow ? this.cutFollowAfter : undefined;
    const flush = () => {
      while (sent < state.lines.length && (cut === undefined || sent < cut)) res.write(state.lines[sent++] + '\n');
      if (state.terminated || !follow || (cut !== undefined && sent >= cut)) {
        state.listeners.delete(flush);
        res.end();
      }
    };
    state.listeners.add(flush);
    flush();
  }

  /** The controller and kubelet: runs the Job's pods one attempt at a time per index. */
  private runJob(job: K8sObject): void {
    const indexed = job.spec.completionMode === 'Indexed';
    const completions = indexed ? job.spec.completions : 1;
    const results = new Map<number, number>();
    let failures = 0;
    let finished = false;
    const finish = (type: 'Complete' | 'Failed', reason: string, message: string) => {
      if (finished) return;
      finished = true;
      const now = new Date().toISOString();
      const conditions: K8sObject[] = [{ type, status: 'True', reason, message, lastProbeTime: now, lastTransitionTime: now }];
      if (type === 'Complete') conditions.unshift({ type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', lastProbeTime: now, lastTransitionTime: now });
      job.status = { ...job.status, conditions, active: 0, succeeded: [...results.values()].filter((c) => c === 0).length, failed: failures, ...(type === 'Complete' ? { completionTime: now } : {}) };
      job.metadata.resourceVersion = nextVersion();
    };
    const attempt = (index: number, n: number) => {
      const script = this.kubelet!(job, n, index);
      this.runPod(job, index, n, script, (exitCode) => {
        if (finished) return;
        results.set(index, exitCode);
        if (exitCode === 0) {
          if ([...results.values()].filter((c) => c === 0).length === completions) finish('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
          return;
        }
        failures++;
        const failJob = (job.spec.podFailurePolicy?.rules ?? []).find((r: K8sObject) => r.action === 'FailJob' && r.onExitCodes?.operator === 'In' && r.onExitCodes.values.includes(exitCode));
        if (failJob) return finish('Failed', 'PodFailurePolicy', `Container exitosx-cron for pod ${job.metadata.namespace}/${job.metadata.name} failed with exit code ${exitCode} matching FailJob rule at index 0`);
        if (failures > (job.spec.backoffLimit ?? 6)) return finish('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
        setTimeout(() => attempt(index, n + 1), 20);
      });
    };
    job.status = { ...job.status, startTime: new Date().toISOString(), active: completions };
    for (let i = 0; i < completions; i++) attempt(i, 0);
  }

  private runPod(job: K8sObject, index: number, attempt: number, script: PodScript, done: (exitCode: number) => void): void {
    const ns = job.metadata.namespace;
    const name = `${job.metadata.name}-${indexedSuffix(job, index)}${crypto.randomBytes(3).toString('hex').slice(0, 5)}`;
    const indexed = job.spec.completionMode === 'Indexed';
    const template = job.spec.template;
    const pod: K8sObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: ns,
        uid: uid(),
        resourceVersion: nextVersion(),
        creationTimestamp: new Date(Date.now() + attempt).toISOString(),
        labels: { ...template.metadata?.labels, 'batch.kubernetes.io/job-name': job.metadata.name, 'job-name': job.metadata.name, 'batch.kubernetes.io/controller-uid': job.metadata.uid, 'controller-uid': job.metadata.uid, ...(indexed ? { 'batch.kubernetes.io/job-completion-index': String(index) } : {}) },
        annotations: { ...template.metadata?.annotations, ...(indexed ? { 'batch.kubernetes.io/job-completion-index': String(index) } : {}) },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: structuredClone(template.spec),
      status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] },
    };
    const state: PodState = { pod, lines: [], listeners: new Set(), terminated: false };
    this.pods.set(`${ns}/${name}`, state);
    const container = pod.spec.containers[0];
    const startedAt = new Date().toISOString();
    const append = (line: string) => {
      state.lines.push(line);
      for (const l of [...state.listeners]) l();
    };
    const terminate = (exitCode: number) => {
      pod.status = {
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        startTime: startedAt,
        containerStatuses: [{ name: container.name, image: container.image, imageID: '', ready: false, restartCount: 0, started: false, state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt: new Date().toISOString(), containerID: 'containerd://' + crypto.randomBytes(8).toString('hex') } } }],
      };
      pod.metadata.resourceVersion = nextVersion();
      state.terminated = true;
      for (const l of [...state.listeners]) l();
      done(exitCode);
    };
    setTimeout(() => {
      pod.status = { phase: 'Running', startTime: startedAt, containerStatuses: [{ name: container.name, image: container.image, imageID: '', ready: true, restartCount: 0, started: true, state: { running: { startedAt } } }] };
      if ('lines' in script) {
        let i = 0;
        const tick = () => {
          if (i < script.lines.length) {
            append(script.lines[i++]!);
            setTimeout(tick, script.delayMs ?? 5);
          } else terminate(script.exitCode);
        };
        setTimeout(tick, script.delayMs ?? 5);
        return;
      }
      // The real CLI, with the environment the chart gives a pod (downward API included).
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: '/tmp', NODE_OPTIONS: '--disable-warning=ExperimentalWarning', POD_NAME: name, POD_NAMESPACE: ns, JOB_NAME: job.metadata.name, ...script.cli.env };
      for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
      if (indexed) env.JOB_COMPLETION_INDEX = String(index);
      const child = spawn(process.execPath, [CLI, ...container.args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.children.add(child);
      for (const stream of [child.stdout, child.stderr]) {
        let partial = '';
        stream.on('data', (c: Buffer) => {
          const parts = (partial + c.toString('utf8')).split('\n');
          partial = parts.pop()!;
          for (const p of parts) append(p);
        });
        stream.on('end', () => partial && append(partial));
      }
      child.on('close', (code) => {
        this.children.delete(child);
        setTimeout(() => terminate(code ?? 137), 10);
      });
    }, 20);
  }
}

function indexedSuffix(job: K8sObject, index: number): string {
  return job.spec.completionMode === 'Indexed' ? `${index}-` : '';
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
}
