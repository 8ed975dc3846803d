/**
 * The non-job commands: `migrate` and `runs`.
 */
import type { Config } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import { migrate } from '../db/migrate.ts';
import { ConfigError, DependencyError } from '../errors.ts';
import { listRuns, runsTableExists } from '../sql/runs.ts';
import type { Logger } from '../telemetry/log.ts';
import { redact } from '../telemetry/redact.ts';

type Out = ((line: string) => void) | undefined;
const print = (out: Out, line: string) => (out ? out(line) : process.stdout.write(line + '\n'));

/** Reports a failure the way every command does: one line on stderr, the exit code. */
function failed(err: unknown): number {
  if (err instanceof ConfigError || err instanceof DependencyError) {
    process.stderr.write(`exitosx-cron: ${redact(err.message)}\n`);
    return err.exitCode;
  }
  throw err;
}

/** `exitosx-cron migrate`: prints `{ productSchema, applied }` as one JSON line. */
export async function migrateCommand(config: Config, log: Logger, out: Out): Promise<number> {
  try {
    const database = await openDatabase(config, { applicationName: 'exitosx-cron:migrate' });
    try {
      const result = await migrate(database.knex);
      log.info('migrate:done', { database: database.description, ...result });
      print(out, JSON.stringify({ success: true, database: database.description, ...result }));
      return 0;
    } finally {
      await database.close();
    }
  } catch (err) {
    return failed(err);
  }
}

/** `exitosx-cron runs`: one JSON line per run, newest first. */
export async function runsCommand(config: Config, _log: Logger, opts: { job?: string; limit: number }, out: Out): Promise<number> {
  try {
    const database = await openDatabase(config, { applicationName: 'exitosx-cron:runs' });
    try {
      if (!(await runsTableExists(database.knex))) throw new ConfigError('the suite tables are missing: run `exitosx-cron migrate` first');
      const rows = await listRuns(database.knex, { limit: opts.limit, ...(opts.job ? { job: opts.job } : {}) });
      for (const r of rows) {
        const s = r.summary ?? {};
        print(
          out,
          JSON.stringify({
            runId: r.id,
            job: r.job,
            shard: `${r.shard_index}/${r.shard_count}`,
            status: r.status,
            exitCode: r.exit_code,
            clock: r.clock,
            startedAt: r.started_at,
            finishedAt: r.finished_at,
            durationMs: s.durationMs ?? null,
            errors: s.errors ?? null,
          }),
        );
      }
      return 0;
    } finally {
      await database.close();
    }
  } catch (err) {
    return failed(err);
  }
}
