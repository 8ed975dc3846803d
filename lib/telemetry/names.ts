/**
 * Metric and span attribute names, in one place. The alerts (helm/exitosx-cron/files/
 * alerts.yaml), the dashboard (files/dashboard.json) and RUNBOOK.md use these names:
 * renaming one here is a breaking change for them.
 */

/** Prefix of every metric the suite pushes. */
export const METRIC_PREFIX = 'exitosx_cron_';

/** The Pushgateway grouping key's `job` label (the suite), beside `cron_job` and `shard`. */
export const PUSH_JOB = 'exitosx_cron';

/** Metrics every run pushes (INTERFACES.md, "Metrics"). */
export const METRICS = {
  /** Unix time the run ended. */
  lastRunTimestamp: 'exitosx_cron_last_run_timestamp_seconds',
  /** Unix time the last successful run ended: pushed only by successful runs. */
  lastSuccessTimestamp: 'exitosx_cron_last_success_timestamp_seconds',
  /** Wall time of the run. */
  runDuration: 'exitosx_cron_run_duration_seconds',
  /** 1 when the run succeeded (exit 0), else 0. */
  runSuccess: 'exitosx_cron_run_success',
  /** The run's exit code (0, 1, 3, 143). */
  runExitCode: 'exitosx_cron_run_exit_code',
  /** Items of the run by outcome (`error` for unexpected errors). */
  itemsTotal: 'exitosx_cron_items_total',
  /** Time to process one item. */
  itemDuration: 'exitosx_cron_item_duration_seconds',
} as const;

/** Span and resource attributes of the suite (beside OpenTelemetry's semantic conventions). */
export const ATTR = {
  job: 'exitosx.job',
  runId: 'exitosx.run_id',
  shard: 'exitosx.shard',
  shardCount: 'exitosx.shard_count',
  dryRun: 'exitosx.dry_run',
  exitCode: 'exitosx.exit_code',
  itemKind: 'exitosx.item.kind',
  itemId: 'exitosx.item.id',
  itemOutcome: 'exitosx.item.outcome',
} as const;

/**
 * The metric name of a summary field: camelCase becomes snake_case under the
 * `exitosx_cron_` prefix, and a nested object's key is joined with `_`.
 *
 * - `signalsCreated` → `exitosx_cron_signals_created`
 * - `emailsFailed` → `exitosx_cron_emails_failed`
 * - `generated` → `exitosx_cron_generated`
 * - `needsReauth` → `exitosx_cron_needs_reauth`
 * - `HTTPRetries` → `exitosx_cron_http_retries`
 * - `{ periods: { created } }` → `exitosx_cron_periods_created`
 */
export function summaryMetricName(...path: string[]): string {
  const snake = path
    .map((part) =>
      part
        .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
        .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
        .toLowerCase()
        .replace(/[^a-z0-9_]+/g, '_')
        .replace(/^_+|_+$/g, ''),
    )
    .filter(Boolean)
    .join('_');
  return METRIC_PREFIX + snake;
}
