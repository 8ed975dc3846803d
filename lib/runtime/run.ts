/**
 * The run lifecycle shared by every job:
 *   check config → open database → check columns → take the job+shard lock →
 *   record the run → run the job (inside a rolled-back transaction for a dry run) →
 *   summary, success, exit code → record, publish (metrics, Kubernetes) → print.
 * Exit codes are those of INTERFACES.md: 0 done, 1 some items failed unexpectedly,
 * 2 usage/configuration, 3 database unreachable, 143 stopped by SIGTERM.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { Config } from '../config.ts';
import { openDatabase, type Database } from '../db/connect.ts';
import { assertColumns } from '../db/migrate.ts';
import { AbortedError, ConfigError, databaseFailure, messageOf } from '../errors.ts';
import { finishRun, insertRun, markCrashedRuns, runsTableExists, type RunRow } from '../sql/runs.ts';
import type { Logger } from '../telemetry/log.ts';
import { redact } from '../telemetry/redact.ts';
import { withSpan } from '../telemetry/trace.ts';
import { forEachItem, Tally } from './items.ts';
import type { JobContext, JobDefinition, RunOptions } from './job.ts';
import { tryLock } from './lock.ts';
import { Cleanups, EXIT_SIGTERM } from './shutdown.ts';

/** Everything a finished run tells its publishers (metrics push, Job annotation). */
export interface RunReport {
  job: string;
  runId: string;
  shard: { count: number; index: number };
  dryRun: boolean;
  exitCode: number;
  status: RunRow['status'] | 'locked';
  startedAt: Date;
  durationSeconds: number;
  summary: Record<string, unknown>;
  tally: Tally;
}

/** Something told about every finished run; failures are logged, never fatal. */
export type RunPublisher = (report: RunReport, log: Logger) => Promise<void>;

export interface RunDeps {
  config: Config;
  /** The root logger; the run logs through a child with `job` and `runId`. */
  log: Logger;
  /** Where the summary line goes. @defaultValue process.stdout */
  stdout?: (line: string) => void;
  /** Aborted on SIGTERM/SIGINT. */
  signal: AbortSignal;
  /** An open database to use (tests); otherwise one is opened and closed here. */
  database?: Database;
  /** The CronJob's scheduled time, when known: the clock's default. */
  scheduledTime?: Date;
  /** Told about the finished run (not for dry runs). */
  publishers?: RunPublisher[];
}

export interface RunResult {
  exitCode: number;
  summary: Record<string, unknown> | null;
}

/** Runs one job from start to exit code. Never throws. */
export async function runJob(def: JobDefinition, options: RunOptions, deps: RunDeps): Promise<RunResult> {
  const runId = crypto.randomUUID();
  const startedAt = new Date();
  const started = performance.now();
  const { config, signal } = deps;
  const shard = config.shard;
  const log = deps.log.child({ job: def.name, runId });
  const stdout = deps.stdout ?? ((line: string) => process.stdout.write(line + '\n'));
  const cleanups = new Cleanups();
  const tally = new Tally();
  const now = options.now ?? deps.scheduledTime ?? new Date();
  let database = deps.database;
  let runRecorded = false;

  const summarise = (fields: Record<string, unknown>, success: boolean): Record<string, unknown> => ({
    success,
    job: def.name,
    runId,
    dryRun: options.dryRun,
    ...fields,
    errors: tally.errors,
    // Of the errors, rows the product application held locked (exitosx_cron_lock_timeouts).
    lockTimeouts: tally.lockTimeouts,
    errorDetails: tally.errorDetails,
    ...(tally.errorDetailsTruncated ? { errorDetailsTruncated: true } : {}),
    durationMs: Math.round(performance.now() - started),
  });

  const finish = async (exitCode: number, status: RunReport['status'], summary: Record<string, unknown> | null): Promise<RunResult> => {
    if (summary) {
      if (runRecorded && database && status !== 'locked') {
        await finishRun(database.knex, runId, status as RunRow['status'], exitCode, summary).catch((err) => log.warn('run:history-failed', { error: err }));
      }
      if (!options.dryRun) {
        const report: RunReport = { job: def.name, runId, shard, dryRun: options.dryRun, exitCode, status, startedAt, durationSeconds: (performance.now() - started) / 1000, summary, tally };
        for (const publish of deps.publishers ?? []) await publish(report, log).catch((err) => log.warn('run:publish-failed', { error: err }));
      }
      log.info('run:finished', { exitCode, status, success: summary.success, errors: tally.errors, durationMs: summary.durationMs });
      stdout(JSON.stringify(summary));
    }
    await cleanups.runAll(log);
    return { exitCode, summary };
  };

  try {
    def.checkConfig?.(config);
    def.checkOptions?.(options, now);
    log.info('run:started', { now: now.toISOString(), dryRun: options.dryRun, shard, companyId: options.companyId, period: options.period, force: options.force });
    if (!database) {
      database = await openDatabase(config, { applicationName: `exitosx-cron:${def.name}` });
      const opened = database;
      cleanups.push('database', () => opened.close());
    }
    const db = database.knex;
    if (!(await runsTableExists(db))) throw new ConfigError('the suite tables are missing: run `exitosx-cron migrate` first');
    await assertColumns(db, def.requiredColumns);

    if (!options.dryRun) {
      const lock = await tryLock(database, def.name, shard.index, () =>
        log.warn('run:lock-lost', { reason: `the connection holding the lock of ${def.name} (shard ${shard.index}) was closed; going on without it (unique keys still prevent duplicates)` }),
      );
      if (!lock) {
        log.warn('run:locked', { reason: `another run of ${def.name} (shard ${shard.index}) is in progress; exiting` });
        return await finish(0, 'locked', summarise({ alreadyRunning: true, message: `another run of ${def.name} (shard ${shard.index}) holds the lock` }, true));
      }
      cleanups.push('lock', () => lock.release());
      await markCrashedRuns(db, def.name, shard.index);
      await insertRun(db, { id: runId, job: def.name, shard_index: shard.index, shard_count: shard.count, clock: now, options: { ...options }, host: os.hostname() });
      runRecorded = true;
    }

    const execute = async (jobDb: typeof db): Promise<Record<string, unknown>> => {
      const ctx: JobContext = {
        job: def.name,
        runId,
        now,
        dryRun: options.dryRun,
        options,
        config,
        db: jobDb,
        log,
        signal,
        shard,
        tally,
        forEach: (o) => forEachItem({ log, signal, tally, dryRun: options.dryRun }, o),
        defer: (fn) => cleanups.push('job', fn),
      };
      await def.preflight?.(ctx);
      return def.run(ctx);
    };

    const fields = await withSpan(`run ${def.name}`, { 'exitosx.job': def.name, 'exitosx.run_id': runId, 'exitosx.shard': shard.index, 'exitosx.dry_run': options.dryRun }, async () => {
      if (!options.dryRun) return execute(db);
      // A dry run does everything inside one transaction and rolls it back: exact
      // "would do" counts, nothing written.
      const trx = await db.transaction();
      try {
        return await execute(trx);
      } finally {
        await trx.rollback().catch(() => undefined);
      }
    });

    if (signal.aborted) return await finish(EXIT_SIGTERM, 'interrupted', summarise({ ...fields, interrupted: true }, false));
    const success = tally.errors === 0;
    return await finish(success ? 0 : 1, success ? 'succeeded' : 'failed', summarise(fields, success));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`exitosx-cron: ${redact(err.message)}\n`);
      return finish(2, 'failed', runRecorded ? summarise({ error: redact(err.message) }, false) : null);
    }
    // The database gone, read-only, or unable to serve a page read in time: exit 3, one line.
    const dependency = databaseFailure(err, 'run');
    if (err instanceof AbortedError || (signal.aborted && !dependency)) {
      return finish(EXIT_SIGTERM, 'interrupted', summarise({ interrupted: true }, false));
    }
    if (dependency) {
      const message = dependency.message.replace(/\s+/g, ' ');
      log.error('run:dependency-failed', { error: redact(message) });
      process.stderr.write(`exitosx-cron: ${redact(message)}\n`);
      return finish(3, 'failed', summarise({ error: redact(message) }, false));
    }
    log.error('run:failed', { error: err });
    return finish(1, 'failed', summarise({ error: redact(messageOf(err)) }, false));
  }
}
