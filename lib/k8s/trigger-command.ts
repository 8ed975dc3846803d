/**
 * The `trigger` command's edge: the Kubernetes configuration, and every failure as
 * one line on stderr with its exit code (2: not found, forbidden, no kubeconfig;
 * 3: the API unreachable; else the run's own exit code).
 */
import type { Config } from '../config.ts';
import type { Logger } from '../telemetry/log.ts';
import { redact } from '../telemetry/redact.ts';
import type { TriggerOptions } from './trigger.ts';

/** Runs `exitosx-cron trigger`; resolves to the exit code. */
export async function triggerCommand(config: Config, log: Logger, opts: TriggerOptions, out?: (line: string) => void): Promise<number> {
  const fail = (message: string, code: number) => {
    process.stderr.write(`exitosx-cron: ${redact(message)}\n`);
    return code;
  };
  // Loaded here, not at start: the Kubernetes client is large and only trigger needs it.
  const { KubernetesError, loadKubeConfig } = await import('./client.ts');
  const { trigger, TriggerError } = await import('./trigger.ts');
  try {
    const kubeConfig = loadKubeConfig(config.kubernetes);
    return await trigger(opts, {
      kubeConfig,
      log,
      podNamespace: config.kubernetes.namespace,
      stdout: out ?? ((line) => process.stdout.write(line + '\n')),
      stderr: (text) => process.stderr.write(text),
    });
  } catch (err) {
    if (err instanceof TriggerError) return fail(err.message, err.exitCode);
    if (err instanceof KubernetesError) return fail(err.message, 2);
    throw err;
  }
}
