/**
 * Sharding: with SHARD_COUNT=n, shard i handles the items whose id hashes to i.
 * The hash is the first 32 bits of md5(id), unsigned, modulo n: computed the same
 * way in SQL (so item queries filter set-based) and in JavaScript (tests, bench).
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';

export interface Shard {
  count: number;
  index: number;
}

/** The shard an id belongs to. */
export function shardOf(id: string, count: number): number {
  return crypto.createHash('md5').update(id).digest().readUInt32BE(0) % count;
}

/**
 * A SQL condition restricting `column` to this shard, for `whereRaw`/`andWhereRaw`.
 * With one shard it is `true`, so the planner loses nothing.
 */
export function shardCondition(db: Knex, column: string, shard: Shard): Knex.Raw {
  if (shard.count <= 1) return db.raw('true');
  return db.raw(`mod(('x' || substr(md5(??), 1, 8))::bit(32)::bigint, ?) = ?`, [column, shard.count, shard.index]);
}

/** The same condition as SQL text with numbered parameters, for hand-written statements. */
export function shardSql(column: string, shard: Shard): string {
  if (shard.count <= 1) return 'true';
  return `mod(('x' || substr(md5(${column}), 1, 8))::bit(32)::bigint, ${Number(shard.count)}) = ${Number(shard.index)}`;
}
