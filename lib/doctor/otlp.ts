/**
 * OTLP endpoint reachable: an empty export (`{"resourceSpans":[]}`) to
 * `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces`, where the runs send their spans. A
 * collector accepts it with 200 and stores nothing; a wrong path or a server that
 * does not speak OTLP/HTTP answers otherwise.
 */
import type { Config } from '../config.ts';
import { fail, fetchFailure, notConfigured, ok, where, type CheckResult } from './check.ts';

const CHECK = 'otlp';
const TIMEOUT_MS = 5000;

export async function checkOtlp(config: Config): Promise<CheckResult> {
  const endpoint = config.otlpEndpoint;
  if (!endpoint) return notConfigured(CHECK, 'OTEL_EXPORTER_OTLP_ENDPOINT is not set: runs are not traced');
  const url = `${endpoint}/v1/traces`;
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"resourceSpans":[]}', signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.body?.cancel();
    if (res.ok) return ok(CHECK, `${where(url)} accepted an empty OTLP/HTTP export`);
    return fail(CHECK, `${where(url)} answered HTTP ${res.status} to an OTLP/HTTP export: check OTEL_EXPORTER_OTLP_ENDPOINT (the collector's OTLP/HTTP base URL, port 4318)`);
  } catch (err) {
    return fail(CHECK, `unreachable at ${where(url)}: ${fetchFailure(err, TIMEOUT_MS)} (check OTEL_EXPORTER_OTLP_ENDPOINT and the NetworkPolicy's otlp egress)`);
  }
}
