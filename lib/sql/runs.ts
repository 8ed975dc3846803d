/**
 * exitosx_cron.runs: the suite's run history (one row per run of a job and shard).
 */
import type { Knex } from 'knex';
import { redactValue } from '../telemetry/redact.ts';

const RUNS = 'exitosx_cron.runs';

export interface RunRow {
  id: string;
  job: string;
  shard_index: number;
  shard_count: number;
  status: 'running' | 'succeeded' | 'failed' | 'interrupted' | 'crashed';
  exit_code: number | null;
  clock: Date;
  started_at: Date;
  finished_at: Date | null;
  options: Record<string, unknown>;
  summary: Record<string, unknown> | null;
  host: string | null;
}

/** True when the suite's tables exist (migrate has run). */
export async function runsTableExists(db: Knex): Promise<boolean> {
  const { rows } = await db.raw<{ rows: Array<{ t: string | null }> }>(`select to_regclass('${RUNS}')::text as t`);
  return Boolean(rows[0]?.t);
}

/** Rows still 'running' for this job and shard belong to dead runs (we hold the lock): mark them crashed. */
export async function markCrashedRuns(db: Knex, job: string, shardIndex: number): Promise<number> {
  return db(RUNS).where({ job, shard_index: shardIndex, status: 'running' }).update({ status: 'crashed', finished_at: db.fn.now() });
}

export async function insertRun(db: Knex, row: Pick<RunRow, 'id' | 'job' | 'shard_index' | 'shard_count' | 'clock' | 'options' | 'host'>): Promise<void> {
  await db(RUNS).insert({ ...row, status: 'running', options: JSON.stringify(redactValue(row.options)) });
}

export async function finishRun(db: Knex, id: string, status: RunRow['status'], exitCode: number, summary: Record<string, unknown>): Promise<void> {
  await db(RUNS)
    .where({ id })
    .update({ status, exit_code: exitCode, finished_at: db.fn.now(), summary: JSON.stringify(redactValue(summary)) });
}

/** Recent runs, newest first. */
export async function listRuns(db: Knex, filter: { job?: string; limit: number }): Promise<RunRow[]> {
  const q = db<RunRow>(RUNS).select('*').orderBy('started_at', 'desc').limit(filter.limit);
  if (filter.job) q.where({ job: filter.job });
  return q;
}
