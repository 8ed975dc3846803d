/**
 * Metrics: at the end of every non-dry run (success, exit 1, exit 3, SIGTERM) the
 * run's metrics are pushed to the Prometheus Pushgateway (prom-client), grouped by
 * `job="exitosx_cron"`, `cron_job`, `shard` — never by pod, so each CronJob shard
 * has exactly one group that every run replaces.
 *
 * Pushed: the run-level metrics of `METRICS` (names.ts), `exitosx_cron_items_total
 * {outcome}` from the Tally, a histogram of item processing time, and one gauge per
 * numeric field of the job's summary (`signalsCreated` → `exitosx_cron_signals_created`,
 * see `summaryMetricName`). Jobs add a count to their summary and it is published
 * with no change here.
 *
 * Why two methods: a successful run PUTs (replaces the whole group, so counts of a
 * field a job no longer reports disappear); any other run POSTs, which replaces only
 * the metrics it sends and keeps `exitosx_cron_last_success_timestamp_seconds` of the
 * last success, so `time() - last_success` measures silence even after failures.
 *
 * A push that fails (Pushgateway down, slow, or rejecting) is logged as
 * `metrics:push-failed` and never changes the run's outcome or exit code.
 */
import { Counter, Gauge, Histogram, Pushgateway, Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { RunPublisher, RunReport } from '../runtime/run.ts';
import type { Logger } from './log.ts';
import { METRICS, PUSH_JOB, summaryMetricName } from './names.ts';
import { redact } from './redact.ts';
import { withSpan } from './trace.ts';

/** Item processing time buckets, seconds: from a quick query to a slow QuickBooks sync. */
export const ITEM_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Summary fields that are not counts of the job, or are published under a run-level name. */
const NOT_COUNTS = new Set(['durationMs']);

const RESERVED = new Set<string>(Object.values(METRICS));

/** A numeric summary field and the gauge it becomes. */
export interface SummaryCount {
  /** The field's path in the summary, dotted (`emailsSent`, `periods.created`). */
  field: string;
  metric: string;
  value: number;
}

/**
 * The numeric fields of a summary (top level, and one level into plain objects),
 * each with its metric name. Booleans, strings, arrays and `durationMs` are left out.
 */
export function summaryCounts(summary: Record<string, unknown>): SummaryCount[] {
  const out = new Map<string, SummaryCount>();
  const add = (path: string[], value: number) => {
    const metric = summaryMetricName(...path);
    if (!RESERVED.has(metric) && !out.has(metric)) out.set(metric, { field: path.join('.'), metric, value });
  };
  for (const [key, value] of Object.entries(summary)) {
    if (NOT_COUNTS.has(key)) continue;
    if (typeof value === 'number' && Number.isFinite(value)) add([key], value);
    else if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)) {
      for (const [inner, v] of Object.entries(value as Record<string, unknown>)) if (typeof v === 'number' && Number.isFinite(v)) add([key, inner], v);
    }
  }
  return [...out.values()];
}

/** True when the run counts as a success for `exitosx_cron_last_success_timestamp_seconds`. */
export function isSuccessfulRun(report: RunReport): boolean {
  return report.exitCode === 0 && report.status === 'succeeded' && report.summary.success === true;
}

/** Builds a registry holding the metrics of one finished run. */
export function runRegistry(report: RunReport): Registry {
  const registry = new Registry();
  const registers = [registry];
  const success = isSuccessfulRun(report);
  const endedAt = report.startedAt.getTime() / 1000 + report.durationSeconds;

  const gauge = (name: string, help: string, value: number) => new Gauge({ name, help, registers }).set(value);
  gauge(METRICS.lastRunTimestamp, 'Unix time the last run of this CronJob shard ended (any outcome).', endedAt);
  if (success) gauge(METRICS.lastSuccessTimestamp, 'Unix time the last successful run of this CronJob shard ended; its age measures silence.', endedAt);
  gauge(METRICS.runDuration, 'Wall time of the last run, seconds.', report.durationSeconds);
  gauge(METRICS.runSuccess, '1 when the last run succeeded (exit 0), else 0.', success ? 1 : 0);
  gauge(METRICS.runExitCode, 'Exit code of the last run (0 done, 1 item errors, 3 database unreachable, 143 SIGTERM).', report.exitCode);

  const items = new Counter({ name: METRICS.itemsTotal, help: 'Items of the last run by outcome (error = an unexpected error).', labelNames: ['outcome'], registers });
  for (const [outcome, n] of Object.entries(report.tally.outcomes)) items.inc({ outcome }, n);

  const durations = new Histogram({ name: METRICS.itemDuration, help: 'Time to process one item in the last run, seconds.', buckets: ITEM_DURATION_BUCKETS, registers });
  for (const d of report.tally.durations) durations.observe(d);

  for (const { field, metric, value } of summaryCounts(report.summary)) {
    // The help text depends on the field only: the Pushgateway rejects a metric whose
    // type differs between groups, and all jobs share one metric family per name.
    gauge(metric, `The last run's "${field}" summary count (JOBS.md).`, value);
  }
  return registry;
}

export interface PushTarget {
  /** The Pushgateway's base URL. */
  url: string;
  /** Timeout of the whole push, ms. */
  timeoutMs: number;
}

/** Pushes one run's registry: PUT for a success (replace the group), POST otherwise (keep last success). */
export async function pushRun(report: RunReport, target: PushTarget): Promise<{ method: 'PUT' | 'POST' }> {
  const registry = runRegistry(report);
  const method = isSuccessfulRun(report) ? 'PUT' : 'POST';
  const params = { jobName: PUSH_JOB, groupings: { cron_job: report.job, shard: String(report.shard.index) } };
  const signal = AbortSignal.timeout(target.timeoutMs);
  const gateway = new Pushgateway(target.url, { timeout: target.timeoutMs, signal }, registry);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Pushgateway push timed out after ${target.timeoutMs} ms`)), target.timeoutMs + 250);
  });
  try {
    await Promise.race([method === 'PUT' ? gateway.push(params) : gateway.pushAdd(params), deadline]);
  } catch (err) {
    if (signal.aborted) throw new Error(`Pushgateway push timed out after ${target.timeoutMs} ms`, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { method };
}

/**
 * The runtime's metrics publisher. Pushes nothing when PUSHGATEWAY_URL is unset,
 * and nothing for a run that found the lock taken (the run holding it will push).
 * Never throws: a failed push is logged and the run's outcome stays as it was.
 */
export function createMetricsPublisher(config: Pick<Config, 'pushgatewayUrl' | 'pushgatewayTimeoutMs'>): RunPublisher {
  return async (report: RunReport, log: Logger) => {
    const url = config.pushgatewayUrl;
    if (!url || report.dryRun) return;
    if (report.status === 'locked') {
      log.info('metrics:skipped', { reason: 'another run holds the lock and will push' });
      return;
    }
    const where = redact(url);
    const started = performance.now();
    try {
      const { method } = await withSpan('metrics:push', { 'url.full': where }, () => pushRun(report, { url, timeoutMs: config.pushgatewayTimeoutMs }));
      log.info('metrics:pushed', { pushgateway: where, method, durationMs: Math.round(performance.now() - started) });
    } catch (err) {
      log.warn('metrics:push-failed', { pushgateway: where, error: err, durationMs: Math.round(performance.now() - started) });
    }
  };
}
