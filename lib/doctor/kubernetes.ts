/**
 * Kubernetes API permissions the runtime needs, when in a pod: one
 * SelfSubjectAccessReview per permission (lib/k8s/access.ts), in the pod's
 * namespace, with the pod's ServiceAccount. Outside a pod runs never call the API.
 * The client library is loaded only in a pod, as for the runs (in-pod.ts).
 */
import type { Config } from '../config.ts';
import { messageOf } from '../errors.ts';
import { fail, notConfigured, ok, type CheckResult } from './check.ts';

const CHECK = 'kubernetes';

/**
 * Loads what the check needs, then returns the check to run. In a pod the client
 * library is loaded here, before any check starts its clock: loading it takes
 * seconds of CPU on a busy node, which would eat the other checks' timeouts if it
 * happened while they wait for their answers.
 */
export async function prepareKubernetesCheck(config: Config): Promise<() => Promise<CheckResult>> {
  const k = config.kubernetes;
  if (!k.inPod) return async () => notConfigured(CHECK, 'not in a pod (KUBERNETES_SERVICE_HOST and JOB_NAME unset): runs do not call the Kubernetes API');
  const { contextNamespace, loadKubeConfig } = await import('../k8s/client.ts');
  const { describePermission, missingPermissions, RUNTIME_PERMISSIONS } = await import('../k8s/access.ts');
  return async () => {
    try {
      const kc = loadKubeConfig(k);
      const namespace = k.namespace ?? contextNamespace(kc);
      if (!namespace) return fail(CHECK, 'POD_NAMESPACE is not set (the downward API gives it: fieldRef metadata.namespace)');
      const missing = await missingPermissions(kc, namespace, RUNTIME_PERMISSIONS, k.apiTimeoutMs);
      const all = RUNTIME_PERMISSIONS.map(describePermission).join(', ');
      if (!missing.length) return ok(CHECK, `the ServiceAccount may ${all} in namespace ${namespace}`);
      const list = missing.map((p) => `${describePermission(p)} (${p.why})`).join(', ');
      return fail(CHECK, `the ServiceAccount may not ${list} in namespace ${namespace}: bind it to the chart's Role (rbac.create, serviceAccount.name)`);
    } catch (err) {
      return fail(CHECK, messageOf(err));
    }
  };
}
