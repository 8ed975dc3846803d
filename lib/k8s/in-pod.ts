/**
 * The run's side of Kubernetes, as main.ts sees it. In a pod of a CronJob's Job
 * (KUBERNETES_SERVICE_HOST or JOB_NAME set): the run's clock defaults to the Job's
 * scheduled time, and the Job is annotated with the outcome (job-publisher.ts).
 * Elsewhere nothing happens, and the Kubernetes client is not even loaded (it is a
 * large library: every run outside a cluster would pay for it at start).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../config.ts';
import type { Logger } from '../telemetry/log.ts';
// Type-only: erased at compile time, so the client library still loads only in a pod.
import type { KubernetesRunDeps } from './job-publisher.ts';

/** In a pod: the scheduled time and the Kubernetes publisher; elsewhere nothing. Never throws. */
export async function kubernetesRunDeps(config: Config, log: Logger, kubeConfig?: KubeConfig): Promise<KubernetesRunDeps> {
  if (!config.kubernetes.inPod) return { publishers: [] };
  try {
    const { podRunDeps } = await import('./job-publisher.ts');
    return await podRunDeps(config, log, kubeConfig);
  } catch (err) {
    log.warn('k8s:unavailable', { error: err });
    return { publishers: [] };
  }
}
