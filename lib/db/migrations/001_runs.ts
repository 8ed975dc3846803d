/**
 * 001: run history. One row per run of a job and shard; `exitosx-cron runs` reads it.
 * A run killed with -9 leaves 'running' behind: the next run of the same job and
 * shard, holding the lock, marks such rows 'crashed'.
 */
import type { Knex } from 'knex';

export const name = '001_runs';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('exitosx_cron').createTable('runs', (t) => {
    t.uuid('id').primary();
    t.text('job').notNullable();
    t.integer('shard_index').notNullable();
    t.integer('shard_count').notNullable();
    t.text('status').notNullable().checkIn(['running', 'succeeded', 'failed', 'interrupted', 'crashed'], 'runs_status_check');
    t.integer('exit_code');
    t.timestamp('clock', { useTz: true }).notNullable();
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.jsonb('options').notNullable().defaultTo('{}');
    t.jsonb('summary');
    t.text('host');
    t.index(['job', 'started_at'], 'runs_job_started');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('exitosx_cron').dropTable('runs');
}
