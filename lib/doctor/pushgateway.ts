/**
 * Pushgateway reachable: `GET <PUSHGATEWAY_URL>/-/ready`, the Pushgateway's own
 * readiness endpoint, under the same base URL the runs push to. Reads only.
 */
import type { Config } from '../config.ts';
import { fail, fetchFailure, notConfigured, ok, where, type CheckResult } from './check.ts';

const CHECK = 'pushgateway';

export async function checkPushgateway(config: Config): Promise<CheckResult> {
  const url = config.pushgatewayUrl;
  if (!url) return notConfigured(CHECK, 'PUSHGATEWAY_URL is not set: runs push no metrics (the alerts on silence will fire)');
  const timeoutMs = config.pushgatewayTimeoutMs;
  try {
    const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (res.ok) return ok(CHECK, `ready at ${where(url)}`);
    return fail(CHECK, `${where(url)}/-/ready answered HTTP ${res.status}: check PUSHGATEWAY_URL (the Pushgateway's base URL)`);
  } catch (err) {
    return fail(CHECK, `unreachable at ${where(url)}: ${fetchFailure(err, timeoutMs)} (check PUSHGATEWAY_URL and the NetworkPolicy's pushgateway egress)`);
  }
}
