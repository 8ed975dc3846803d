/**
 * The Kubernetes API client (@kubernetes/client-node): where its configuration comes
 * from, a per-call timeout, and its errors translated into one-line messages.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiException, KubeConfig, Observable, type ConfigurationOptions, type ObservableMiddleware } from '@kubernetes/client-node';
import { messageOf } from '../errors.ts';

export interface KubeConfigSource {
  /** KUBECONFIG: one or more files, separated by the platform's path delimiter. */
  kubeconfig: string | undefined;
  /** True in a pod (KUBERNETES_SERVICE_HOST or JOB_NAME set). */
  inPod: boolean;
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * The configuration kubectl would use: the files in KUBECONFIG, else ~/.kube/config,
 * else the pod's own ServiceAccount (in-cluster). Throws when there is none.
 */
export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  try {
    return readKubeConfig(source);
  } catch (err) {
    if (err instanceof KubernetesError) throw err;
    throw new KubernetesError(`cannot load the Kubernetes configuration: ${messageOf(err)}`, undefined, undefined, { cause: err });
  }
}

function readKubeConfig(source: KubeConfigSource): KubeConfig {
  const kc = new KubeConfig();
  const files = (source.kubeconfig ?? '').split(path.delimiter).filter(Boolean);
  if (files.length) {
    kc.loadFromFile(files[0]!);
    for (const file of files.slice(1)) {
      const more = new KubeConfig();
      more.loadFromFile(file);
      kc.mergeConfig(more);
    }
    return kc;
  }
  const home = path.join(os.homedir(), '.kube', 'config');
  if (fs.existsSync(home)) {
    kc.loadFromFile(home);
    return kc;
  }
  if (source.inPod && fs.existsSync(SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster();
    return kc;
  }
  throw new KubernetesError('no Kubernetes configuration: set KUBECONFIG, create ~/.kube/config, or run in a pod with a ServiceAccount token', undefined);
}

/** The namespace of the current context, when it names one. */
export function contextNamespace(kc: KubeConfig): string | undefined {
  return kc.getContextObject(kc.getCurrentContext())?.namespace || undefined;
}

/** Per-call options that abort the request after `ms` (the client has no timeout of its own). */
export function withTimeout(ms: number, extra: ObservableMiddleware[] = []): ConfigurationOptions {
  const timeout: ObservableMiddleware = {
    pre: (request) => {
      request.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(request));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
  return { middleware: [timeout, ...extra], middlewareMergeStrategy: 'append' };
}

/** A failed Kubernetes API call, in the API's words (its Status message) and HTTP status. */
export class KubernetesError extends Error {
  override name = 'KubernetesError';
  /** The HTTP status (404, 403, 409…), or undefined when the API was not reached. */
  readonly status: number | undefined;
  /** The Status object's reason (NotFound, Forbidden, AlreadyExists…). */
  readonly reason: string | undefined;

  constructor(message: string, status: number | undefined, reason?: string, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
    this.reason = reason;
  }
}

/** Translates anything the client throws into a KubernetesError with a one-line message. */
export function toKubernetesError(err: unknown, what: string): KubernetesError {
  if (err instanceof KubernetesError) return err;
  if (err instanceof ApiException) {
    const status = parseStatus(err.body);
    const message = status?.message ?? (err.code === 401 ? 'Unauthorized' : `HTTP ${err.code}`);
    return new KubernetesError(`${what}: ${message}`, err.code, status?.reason, { cause: err });
  }
  const cause = (err as { cause?: unknown })?.cause;
  const detail = cause ? `${messageOf(err)} (${messageOf(cause)})` : messageOf(err);
  const timedOut = (err as Error)?.name === 'TimeoutError' || /aborted|timeout/i.test(detail);
  return new KubernetesError(`${what}: ${timedOut ? 'timed out' : 'Kubernetes API unreachable'}: ${detail}`, undefined, undefined, { cause: err });
}

function parseStatus(body: unknown): { message?: string; reason?: string } | undefined {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return body.trim() ? { message: body.trim().split('\n')[0]! } : undefined;
    }
  }
  if (value && typeof value === 'object') {
    const v = value as { message?: unknown; reason?: unknown };
    return { ...(typeof v.message === 'string' ? { message: v.message } : {}), ...(typeof v.reason === 'string' ? { reason: v.reason } : {}) };
  }
  return undefined;
}
