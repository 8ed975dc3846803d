/**
 * `exitosx-cron trigger JOB`: an ad-hoc run in the cluster. Does what
 * `kubectl create job --from=cronjob/<release>-<job>` does (the CronJob's job
 * template, annotation cronjob.kubernetes.io/instantiate: manual, an owner reference
 * to the CronJob), with extra flags appended to the container's args. With --wait it
 * follows the pods' logs (to stderr), prints the run's summary (the last summary line
 * of the final pod's log; one per shard for an Indexed Job) and exits with the run's
 * exit code.
 */
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, CoreV1Api, Log, type KubeConfig, type V1CronJob, type V1Job, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../telemetry/log.ts';
import { contextNamespace, toKubernetesError } from './client.ts';

export const CONTAINER = 'exitosx-cron';
const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
const COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';

export interface TriggerOptions {
  job: string;
  /** The CronJob name prefix: the Helm release (CronJobs are `<release>-<job>`). */
  release: string;
  /** Defaults to the kubeconfig context's namespace, then POD_NAMESPACE, then "default". */
  namespace: string | undefined;
  wait: boolean;
  /** Appended to the container's args (after the job name). */
  jobArgs: string[];
  /** How often --wait polls the Job and its pods. @defaultValue 1000 */
  pollMs?: number;
}

export interface TriggerDeps {
  kubeConfig: KubeConfig;
  log: Logger;
  /** POD_NAMESPACE, when trigger itself runs in a pod. */
  podNamespace?: string | undefined;
  stdout: (line: string) => void;
  stderr: (text: string) => void;
}

/** The one-line error of a trigger that could not start, with its exit code. */
export class TriggerError extends Error {
  override name = 'TriggerError';
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** A Job name `<cronjob>-manual-<5 chars>` within the 63 characters a label value allows. */
export function manualJobName(cronJobName: string): string {
  const suffix = `-manual-${crypto.randomBytes(4).toString('hex').slice(0, 5)}`;
  return cronJobName.slice(0, 63 - suffix.length).replace(/-+$/, '') + suffix;
}

/** The Job kubectl create job --from=cronjob/… would make, with `jobArgs` appended. */
export function manualJobFrom(cronJob: V1CronJob, name: string, jobArgs: string[]): V1Job {
  const template = cronJob.spec?.jobTemplate;
  if (!template?.spec) throw new TriggerError(`CronJob ${cronJob.metadata?.name} has no job template`, 1);
  const spec = structuredClone(template.spec);
  const containers = spec.template.spec?.containers ?? [];
  const container = containers.find((c) => c.name === CONTAINER) ?? containers[0];
  if (!container) throw new TriggerError(`CronJob ${cronJob.metadata?.name} has no container`, 1);
  container.args = [...(container.args ?? []), ...jobArgs];
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace: cronJob.metadata?.namespace,
      labels: { ...template.metadata?.labels },
      annotations: { ...template.metadata?.annotations, 'cronjob.kubernetes.io/instantiate': 'manual' },
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: cronJob.metadata!.name!, uid: cronJob.metadata!.uid!, controller: true }],
    },
    spec,
  };
}

/** Translates an API failure of trigger into its one-line error and exit code. */
function triggerFailure(err: unknown, what: string, hint: string): TriggerError {
  const e = toKubernetesError(err, what);
  if (e.status === 404) return new TriggerError(`${e.message} (${hint})`, 2, { cause: err });
  if (e.status === 401 || e.status === 403) return new TriggerError(`${e.message} (${e.status === 401 ? 'log in again: the kubeconfig credentials were refused' : hint})`, 2, { cause: err });
  if (e.status === undefined) return new TriggerError(e.message, 3, { cause: err });
  return new TriggerError(e.message, 1, { cause: err });
}

/** Creates the Job; with --wait, follows it to the end. Resolves to the exit code. */
export async function trigger(opts: TriggerOptions, deps: TriggerDeps): Promise<number> {
  const kc = deps.kubeConfig;
  const namespace = opts.namespace ?? contextNamespace(kc) ?? deps.podNamespace ?? 'default';
  const batch = kc.makeApiClient(BatchV1Api);
  const cronJobName = `${opts.release}-${opts.job}`;
  const rbacHint = `the ${opts.release}-trigger Role of the chart grants what trigger needs: bind it to you`;

  let cronJob: V1CronJob;
  try {
    cronJob = await batch.readNamespacedCronJob({ name: cronJobName, namespace });
  } catch (err) {
    const e = toKubernetesError(err, '');
    if (e.status === 404) {
      throw new TriggerError(`CronJob ${cronJobName} not found in namespace ${namespace} (CronJobs are named <release>-<job>: check --release and --namespace)`, 2, { cause: err });
    }
    throw triggerFailure(err, `get cronjob ${cronJobName} in namespace ${namespace}`, rbacHint);
  }

  let created: V1Job | undefined;
  for (let attempt = 0; !created; attempt++) {
    const body = manualJobFrom(cronJob, manualJobName(cronJobName), opts.jobArgs);
    try {
      created = await batch.createNamespacedJob({ namespace, body });
    } catch (err) {
      // A name clash (409) with the random suffix: try another name, once.
      if (toKubernetesError(err, '').status === 409 && attempt === 0) continue;
      throw triggerFailure(err, `create job from cronjob ${cronJobName} in namespace ${namespace}`, rbacHint);
    }
  }
  const jobName = created.metadata!.name!;
  deps.stderr(`job.batch/${jobName} created in namespace ${namespace} from cronjob/${cronJobName}${opts.jobArgs.length ? ` with ${opts.jobArgs.join(' ')}` : ''}\n`);
  deps.log.debug('trigger:created', { jobName, namespace, cronJob: cronJobName, args: opts.jobArgs });
  if (!opts.wait) {
    deps.stdout(JSON.stringify({ created: jobName, namespace, cronJob: cronJobName }));
    return 0;
  }
  deps.stderr(`following job ${jobName} (Ctrl-C stops following; the Job keeps running)\n`);
  return follow(kc, namespace, jobName, opts.pollMs ?? 1000, deps, rbacHint);
}

interface Followed {
  pod: string;
  index: string | undefined;
  created: number;
  lines: string[];
  done: Promise<void> | undefined;
  ended: boolean;
}

/** Follows the Job's pods until the Job completes or fails; prints summaries; returns the run's exit code. */
async function follow(kc: KubeConfig, namespace: string, jobName: string, pollMs: number, deps: TriggerDeps, rbacHint: string): Promise<number> {
  const batch = kc.makeApiClient(BatchV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const logs = new Log(kc);
  const pods = new Map<string, Followed>();
  let prefixLines = false;

  const startFollowing = (pod: V1Pod) => {
    const name = pod.metadata!.name!;
    let f = pods.get(name);
    if (!f) {
      f = { pod: name, index: pod.metadata?.annotations?.[COMPLETION_INDEX], created: new Date(pod.metadata?.creationTimestamp ?? 0).getTime(), lines: [], done: undefined, ended: false };
      pods.set(name, f);
    }
    const phase = pod.status?.phase;
    if (f.done || f.ended || (phase !== 'Running' && phase !== 'Succeeded' && phase !== 'Failed')) return;
    // Attempts of one index run one after another: follow them in that order.
    const index = f.index ?? '0';
    if ([...pods.values()].some((p) => p !== f && (p.index ?? '0') === index && p.created <= f!.created && p.done && !p.ended)) return;
    const followed = f;
    let partial = '';
    let headed = false;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        const text = partial + chunk.toString('utf8');
        const parts = text.split('\n');
        partial = parts.pop()!;
        for (const line of parts) emit(line);
        cb();
      },
      final(cb) {
        if (partial) emit(partial);
        cb();
      },
    });
    const emit = (line: string) => {
      followed.lines.push(line);
      // Shards run side by side: prefix their lines. Attempts run one after another: a header each.
      if (!prefixLines && !headed) deps.stderr(`==> pod ${followed.pod} <==\n`);
      headed = true;
      deps.stderr(prefixLines ? `[${followed.pod}] ${line}\n` : `${line}\n`);
    };
    followed.done = new Promise<void>((resolve) => {
      sink.on('finish', () => {
        followed.ended = true;
        resolve();
      });
      logs.log(namespace, name, CONTAINER, sink, { follow: true }).catch((err) => {
        // Not ready yet (ContainerCreating) or gone: try again at the next poll.
        deps.log.debug('trigger:log-failed', { pod: name, error: toKubernetesError(err, `log of pod ${name}`).message });
        followed.done = undefined;
        resolve();
      });
    });
  };

  let transientFailures = 0;
  for (;;) {
    let job: V1Job;
    let podList: V1Pod[];
    try {
      job = await batch.readNamespacedJob({ name: jobName, namespace });
      podList = (await core.listNamespacedPod({ namespace, labelSelector: `${JOB_NAME_LABEL}=${jobName}` })).items;
      transientFailures = 0;
    } catch (err) {
      // A blip (timeout, 5xx) while following is not the run's failure: retry a few times.
      const status = toKubernetesError(err, '').status;
      if ((status === undefined || status >= 500) && ++transientFailures <= 5) {
        deps.log.warn('trigger:poll-failed', { jobName, error: toKubernetesError(err, `follow job ${jobName}`).message });
        await sleep(pollMs);
        continue;
      }
      throw triggerFailure(err, `follow job ${jobName}`, rbacHint);
    }
    prefixLines = (job.spec?.completions ?? 1) > 1;
    const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
    const inOrder = [...podList].sort((a, b) => created(a) - created(b));
    for (const pod of inOrder) startFollowing(pod);
    const finished = job.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    if (finished) {
      // Read every pod's log to its end (bounded), then take the outcome from the pods.
      const deadline = Date.now() + Math.max(10_000, pollMs * 5);
      for (;;) {
        for (const pod of inOrder) startFollowing(pod);
        const pending = [...pods.values()].filter((p) => !p.ended);
        if (!pending.length || Date.now() >= deadline) break;
        await Promise.race([Promise.all(pending.map((p) => p.done)), sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())))]);
      }
      return outcome(job, finished, podList, pods, deps, (pod) => core.readNamespacedPodLog({ name: pod, namespace, container: CONTAINER }));
    }
    await sleep(pollMs);
  }
}

/** True for a line that is a run's summary (INTERFACES.md: one JSON object, the last stdout line). */
export function isSummaryLine(line: string): boolean {
  const t = line.trim();
  if (!t.startsWith('{')) return false;
  try {
    const v = JSON.parse(t) as Record<string, unknown>;
    return typeof v.success === 'boolean' && typeof v.runId === 'string' && typeof v.job === 'string' && !('level' in v);
  } catch {
    return false;
  }
}

async function outcome(
  job: V1Job,
  finished: { type: string; reason?: string; message?: string },
  podList: V1Pod[],
  followed: Map<string, Followed>,
  deps: TriggerDeps,
  readLog: (pod: string) => Promise<string>,
): Promise<number> {
  // The final attempt of each completion index (one index unless Indexed).
  const finalPods = new Map<string, V1Pod>();
  const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  for (const pod of [...podList].sort((a, b) => created(a) - created(b))) finalPods.set(pod.metadata?.annotations?.[COMPLETION_INDEX] ?? '0', pod);
  let exitCode = 0;
  const indexes = [...finalPods.keys()].sort((a, b) => Number(a) - Number(b));
  for (const index of indexes) {
    const pod = finalPods.get(index)!;
    const lines = followed.get(pod.metadata!.name!)?.lines ?? [];
    let summary = [...lines].reverse().find(isSummaryLine);
    if (!summary) {
      // The follow stream can end early (a proxy timeout, a dropped connection): read the whole log once.
      const full = await readLog(pod.metadata!.name!).catch((err) => {
        deps.log.warn('trigger:log-failed', { pod: pod.metadata!.name, error: toKubernetesError(err, `log of pod ${pod.metadata!.name}`).message });
        return '';
      });
      summary = full.split('\n').reverse().find(isSummaryLine);
    }
    if (summary) deps.stdout(summary.trim());
    const state = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER) ?? pod.status?.containerStatuses?.[0];
    const code = state?.state?.terminated?.exitCode;
    if (code !== undefined && code !== 0 && exitCode === 0) exitCode = code;
  }
  if (finished.type === 'Failed') {
    deps.stderr(`job ${job.metadata?.name} failed: ${finished.reason ?? 'Failed'}${finished.message ? `: ${finished.message}` : ''}\n`);
    if (exitCode === 0) exitCode = 1;
  } else {
    exitCode = 0;
    deps.stderr(`job ${job.metadata?.name} completed\n`);
  }
  return exitCode;
}

