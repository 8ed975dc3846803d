/**
 * (Loaded only in a pod: see in-pod.ts.)
 * What a run does with the Kubernetes API when it runs in a pod of a CronJob's Job
 * (JOB_NAME and POD_NAMESPACE from the downward API):
 *  - before: the run's clock defaults to the Job's `batch.kubernetes.io/cronjob-scheduled-timestamp`
 *    (the time the CronJob was due, so a late or retried pod computes the same
 *    period); a manual Job has none and the run uses the real time;
 *  - after: annotate the Job with the summary and exit code, and on failure emit a
 *    Warning Event on it (what `kubectl describe job` and event exporters show).
 * All of it is best-effort: a short timeout, failures logged, never failing the run.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import { BatchV1Api, CoreV1Api, PatchStrategy, setHeaderMiddleware, type KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../config.ts';
import type { RunPublisher, RunReport } from '../runtime/run.ts';
import type { Logger } from '../telemetry/log.ts';
import { loadKubeConfig, toKubernetesError, withTimeout } from './client.ts';

export const SCHEDULED_TIMESTAMP = 'batch.kubernetes.io/cronjob-scheduled-timestamp';
/** Annotations a run writes on its Job; with several shards each gets its own (`…-<index>`). */
export const SUMMARY_ANNOTATION = 'exitosx.com/summary';
export const EXIT_CODE_ANNOTATION = 'exitosx.com/exit-code';
export const RUN_ID_ANNOTATION = 'exitosx.com/run-id';
/** Annotation values are limited (256 KiB for all of them together): a larger summary loses its lists. */
const MAX_SUMMARY_BYTES = 32 * 1024;

/** What a run takes from Kubernetes (in-pod.ts returns it; empty outside a pod). */
export interface KubernetesRunDeps {
  /** The CronJob's scheduled time for this Job, when it has one. */
  scheduledTime?: Date;
  publishers: RunPublisher[];
}

interface PodJob {
  namespace: string;
  jobName: string;
  podName: string | undefined;
  uid: string | undefined;
}

/**
 * In a pod of a Job: the scheduled time and the Kubernetes publisher (nothing without
 * JOB_NAME / POD_NAMESPACE). Never throws.
 */
export async function podRunDeps(config: Config, log: Logger, kubeConfig?: KubeConfig): Promise<KubernetesRunDeps> {
  const k = config.kubernetes;
  if (!k.jobName || !k.namespace) {
    log.warn('k8s:skipped', { reason: 'in a pod but JOB_NAME or POD_NAMESPACE is not set (downward API): no scheduled time, no Job annotation' });
    return { publishers: [] };
  }
  let kc: KubeConfig;
  try {
    kc = kubeConfig ?? loadKubeConfig(k);
  } catch (err) {
    log.warn('k8s:unavailable', { error: toKubernetesError(err, 'Kubernetes client').message });
    return { publishers: [] };
  }
  const batch = kc.makeApiClient(BatchV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const target: PodJob = { namespace: k.namespace, jobName: k.jobName, podName: k.podName, uid: undefined };
  const timeout = k.apiTimeoutMs;
  let scheduledTime: Date | undefined;
  try {
    const job = await batch.readNamespacedJob({ name: target.jobName, namespace: target.namespace }, withTimeout(timeout));
    target.uid = job.metadata?.uid;
    const stamp = job.metadata?.annotations?.[SCHEDULED_TIMESTAMP];
    if (stamp) {
      const t = new Date(stamp);
      if (Number.isNaN(t.getTime())) log.warn('k8s:scheduled-time-invalid', { job: target.jobName, annotation: SCHEDULED_TIMESTAMP, value: stamp });
      else scheduledTime = t;
    }
    log.debug('k8s:job-read', { jobName: target.jobName, scheduledTime: scheduledTime?.toISOString() ?? null, manual: job.metadata?.annotations?.['cronjob.kubernetes.io/instantiate'] === 'manual' });
  } catch (err) {
    log.warn('k8s:job-read-failed', { jobName: target.jobName, error: toKubernetesError(err, `get job ${target.jobName}`).message, clock: 'real time' });
  }
  const publisher: RunPublisher = (report, runLog) => publishToJob(batch, core, target, report, runLog, timeout);
  return { ...(scheduledTime ? { scheduledTime } : {}), publishers: [publisher] };
}

/** Annotates the Job with the run's outcome; on failure also emits a Warning Event. Never throws. */
async function publishToJob(batch: BatchV1Api, core: CoreV1Api, target: PodJob, report: RunReport, log: Logger, timeoutMs: number): Promise<void> {
  const suffix = report.shard.count > 1 ? `-${report.shard.index}` : '';
  const annotations = {
    [SUMMARY_ANNOTATION + suffix]: boundedSummary(report.summary),
    [EXIT_CODE_ANNOTATION + suffix]: String(report.exitCode),
    [RUN_ID_ANNOTATION + suffix]: report.runId,
  };
  try {
    await batch.patchNamespacedJob(
      { name: target.jobName, namespace: target.namespace, body: { metadata: { annotations } } },
      withTimeout(timeoutMs, [setHeaderMiddleware('Content-Type', PatchStrategy.MergePatch)]),
    );
    log.debug('k8s:job-annotated', { jobName: target.jobName });
  } catch (err) {
    log.warn('k8s:annotate-failed', { jobName: target.jobName, error: toKubernetesError(err, `patch job ${target.jobName}`).message });
  }
  if (report.exitCode === 0) return;
  try {
    await core.createNamespacedEvent({ namespace: target.namespace, body: failureEvent(target, report) }, withTimeout(timeoutMs));
    log.debug('k8s:event-created', { jobName: target.jobName });
  } catch (err) {
    log.warn('k8s:event-failed', { jobName: target.jobName, error: toKubernetesError(err, `create event for job ${target.jobName}`).message });
  }
}

/** The summary as JSON, without its item lists when it would be too large for an annotation. */
export function boundedSummary(summary: Record<string, unknown>): string {
  const full = JSON.stringify(summary);
  if (Buffer.byteLength(full) <= MAX_SUMMARY_BYTES) return full;
  const { errorDetails: _e, results: _r, ...rest } = summary;
  const slim = JSON.stringify({ ...rest, annotationTruncated: true });
  return Buffer.byteLength(slim) <= MAX_SUMMARY_BYTES ? slim : JSON.stringify({ success: summary.success, job: summary.job, runId: summary.runId, annotationTruncated: true });
}

function failureEvent(target: PodJob, report: RunReport) {
  const now = new Date();
  const interrupted = report.status === 'interrupted';
  const error = typeof report.summary.error === 'string' ? `: ${report.summary.error}` : report.tally.errors ? `: ${report.tally.errors} item(s) failed` : '';
  const shard = report.shard.count > 1 ? ` (shard ${report.shard.index}/${report.shard.count})` : '';
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${target.jobName}.${crypto.randomBytes(8).toString('hex')}`, namespace: target.namespace },
    involvedObject: { apiVersion: 'batch/v1', kind: 'Job', name: target.jobName, namespace: target.namespace, ...(target.uid ? { uid: target.uid } : {}) },
    reason: interrupted ? 'RunInterrupted' : 'RunFailed',
    message: `${report.job} run ${report.runId}${shard} ${interrupted ? 'was interrupted' : 'failed'} with exit code ${report.exitCode}${error}`.slice(0, 1024),
    type: 'Warning',
    action: 'Run',
    source: { component: 'exitosx-cron', host: os.hostname() },
    reportingComponent: 'exitosx.com/exitosx-cron',
    reportingInstance: target.podName ?? os.hostname(),
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}
