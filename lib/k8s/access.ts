/**
 * What the runtime may do in its namespace, asked of the API server itself with
 * SelfSubjectAccessReviews (`kubectl auth can-i`): nothing is created or changed.
 * RUNTIME_PERMISSIONS is what a run calls (job-publisher.ts); the chart's Role
 * (helm/exitosx-cron/templates/rbac.yaml) grants exactly these, a test keeps the two equal.
 */
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { toKubernetesError, withTimeout } from './client.ts';

export interface Permission {
  /** API group: '' for the core group. */
  group: string;
  resource: string;
  verb: string;
  /** What the run does with it. */
  why: string;
}

/** What a run in a pod of a CronJob's Job calls (see job-publisher.ts). */
export const RUNTIME_PERMISSIONS: readonly Permission[] = [
  { group: 'batch', resource: 'jobs', verb: 'get', why: "read its Job's scheduled time" },
  { group: 'batch', resource: 'jobs', verb: 'patch', why: 'annotate its Job with the summary' },
  { group: '', resource: 'events', verb: 'create', why: 'a Warning Event when a run fails' },
];

/** `verb resource.group`, as kubectl and RBAC errors write it. */
export const describePermission = (p: Permission) => `${p.verb} ${p.resource}${p.group ? `.${p.group}` : ''}`;

/** The permissions of `wanted` the current identity does not have in `namespace`. Throws KubernetesError when the API cannot answer. */
export async function missingPermissions(kc: KubeConfig, namespace: string, wanted: readonly Permission[], timeoutMs: number): Promise<Permission[]> {
  const api = kc.makeApiClient(AuthorizationV1Api);
  const answers = await Promise.all(
    wanted.map(async (p) => {
      try {
        const review = await api.createSelfSubjectAccessReview(
          { body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { namespace, group: p.group, resource: p.resource, verb: p.verb } } } },
          withTimeout(timeoutMs),
        );
        return review.status?.allowed === true;
      } catch (err) {
        throw toKubernetesError(err, `SelfSubjectAccessReview (${describePermission(p)})`);
      }
    }),
  );
  return wanted.filter((_, i) => !answers[i]);
}
