/**
 * What a job is, and what the runtime hands it. A job is a thin composition: it
 * finds its items, processes each through `ctx.forEach`, and returns its own
 * summary fields; the runtime does everything around it (clock, lock, dry run,
 * history, summary, exit code, telemetry).
 */
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import type { Logger } from '../telemetry/log.ts';
import type { ForEachOptions, Tally } from './items.ts';
import type { Shard } from './shard.ts';

export type JobName = 'generate-drift-reports' | 'detect-inactivity' | 'sync-quickbooks';

/** Flags of a job run (INTERFACES.md, "Command line"). */
export interface RunOptions {
  dryRun: boolean;
  /** The run's clock: --now, else the CronJob's scheduled time, else the real time. */
  now?: Date;
  /** Only this company. */
  companyId?: string;
  /** generate-drift-reports: the month to report on, `YYYY-MM`. */
  period?: string;
  /** sync-quickbooks: ignore the 12-hour skip. */
  force?: boolean;
}

export interface JobContext {
  job: JobName;
  runId: string;
  /** The run's clock, UTC. Never call `new Date()` for "now" inside a job. */
  now: Date;
  dryRun: boolean;
  options: RunOptions;
  config: Config;
  /** The database; in a dry run, a transaction that is rolled back at the end. */
  db: Knex;
  log: Logger;
  /** Aborted on SIGTERM/SIGINT: start no new work. */
  signal: AbortSignal;
  shard: Shard;
  tally: Tally;
  /** Processes items with isolation, bounded concurrency and progress. */
  forEach<T>(options: ForEachOptions<T>): Promise<void>;
  /** Registers a cleanup (closing a client, a server); run last-in-first-out at the end. */
  defer(cleanup: () => Promise<void> | void): void;
}

export interface JobDefinition {
  name: JobName;
  /** Cron schedule, UTC (for docs, the chart and the alerts). */
  schedule: string;
  description: string;
  /** Product columns the job reads or writes; checked at start (exit 2 when missing). */
  requiredColumns: Record<string, string[]>;
  /** Validates what this job needs of the configuration beyond the common part. */
  checkConfig?(config: Config): void;
  /** Validates the run's flags against its clock (e.g. --period must be a finished month); throws ConfigError before any work. */
  checkOptions?(options: RunOptions, now: Date): void;
  /** Optional check before any item is touched (e.g. Intuit credentials); throws ConfigError. */
  preflight?(ctx: JobContext): Promise<void>;
  /** Does the work; returns the job's own summary fields. */
  run(ctx: JobContext): Promise<Record<string, unknown>>;
}
