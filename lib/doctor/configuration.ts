/**
 * Configuration valid: the environment parsed by loadConfig (the command reports
 * a ConfigError itself, as this check's failure, with exit 2), and which jobs lack
 * a setting only they need (each job's own checkConfig). A job that cannot run is
 * said here; whether its feature is configured at all is its own check's line.
 */
import type { Config } from '../config.ts';
import { messageOf } from '../errors.ts';
import type { JobDefinition } from '../runtime/job.ts';
import { ok, type CheckResult } from './check.ts';

export const CONFIGURATION = 'configuration';

export function checkConfiguration(config: Config, jobs: JobDefinition[]): CheckResult {
  const blocked: string[] = [];
  for (const job of jobs) {
    try {
      job.checkConfig?.(config);
    } catch (err) {
      blocked.push(`${job.name} cannot run: ${messageOf(err).replace(/ is required by [\w-]+/, ' is required')}`);
    }
  }
  const database = config.databaseUrl ? 'PostgreSQL' : 'embedded';
  const shard = `shard ${config.shard.index + 1}/${config.shard.count}`;
  return ok(CONFIGURATION, `valid (database ${database}, ${shard})${blocked.length ? `; ${blocked.join('; ')}` : ''}`);
}
