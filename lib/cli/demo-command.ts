/**
 * `exitosx-cron demo`: a fresh embedded database with a realistic sample, then every
 * job run on it, each printing its summary line on stdout; a short readable table on
 * stderr; emails in the outbox. Services a job needs and that cannot run here
 * (QuickBooks) are started in-process on loopback by the job's demo setup.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { JOBS } from '../../jobs/index.ts';
import { loadConfig, type Config } from '../config.ts';
import { openDatabase } from '../db/connect.ts';
import { migrate } from '../db/migrate.ts';
import { ConfigError } from '../errors.ts';
import { seedSample } from '../demo/seed.ts';
import { DEMO_SETUPS } from '../demo/setups.ts';
import type { JobName } from '../runtime/job.ts';
import { runJob } from '../runtime/run.ts';
import type { Logger } from '../telemetry/log.ts';

/** Companies in the demo sample. */
const DEMO_COMPANIES = 300;

/** QuickBooks first, so that last month's drift reports include the synced financials. */
const DEMO_ORDER: JobName[] = ['sync-quickbooks', 'detect-inactivity', 'generate-drift-reports'];

export async function demoCommand(config: Config, log: Logger, signal: AbortSignal, out?: (line: string) => void): Promise<number> {
  if (config.databaseUrl) throw new ConfigError('demo runs on the embedded database only: unset DATABASE_URL');
  const dir = path.resolve(config.embeddedDbDir);
  resetDir(dir, (entries) => entries.length === 0 || entries.includes('PG_VERSION'), 'EMBEDDED_DB_DIR');
  resetDir(path.resolve(config.email.outboxDir), (entries) => entries.every((e) => /\.(eml|html)$/.test(e)), 'EMAIL_OUTBOX_DIR');

  const tokenKey = config.tokenEncryptionKey ?? crypto.randomBytes(32);
  const now = new Date();
  const database = await openDatabase(config, { applicationName: 'exitosx-cron:demo' });
  try {
    await migrate(database.knex);
    const counts = await seedSample(database.knex, { companies: DEMO_COMPANIES, seed: 42, now, tokenKey });
    log.info('demo:seeded', { ...counts, database: database.description });
  } finally {
    await database.close();
  }

  const table: string[] = [];
  let worst = 0;
  for (const name of DEMO_ORDER) {
    if (signal.aborted) break;
    const setup = await DEMO_SETUPS[name]?.({ log, tokenKey });
    try {
      const jobConfig = setup?.env ? loadConfig({ ...configEnv(config), ...setup.env, TOKEN_ENCRYPTION_KEY: tokenKey.toString('base64') }) : config;
      const def = await JOBS[name]();
      const result = await runJob(def, { dryRun: false }, { config: jobConfig, log, signal, ...(out ? { stdout: out } : {}) });
      worst = Math.max(worst, result.exitCode);
      table.push(describe(name, result.exitCode, result.summary));
    } finally {
      await setup?.close();
    }
  }
  process.stderr.write(`\nExit OSx demo (${DEMO_COMPANIES} companies, embedded database in ${config.embeddedDbDir})\n${table.join('\n')}\nEmails: ${config.email.outboxDir} (.eml and .html)\n`);
  return worst;
}

/** Empties a folder the demo owns, refusing one that holds anything else. */
function resetDir(dir: string, isOurs: (entries: string[]) => boolean, variable: string): void {
  if (!fs.existsSync(dir)) return;
  const entries = fs.readdirSync(dir);
  if (!isOurs(entries)) throw new ConfigError(`${variable} ${dir} holds files the demo did not make; point ${variable} at an empty or demo folder`);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The configuration back as environment variables, so a job setup can override some. */
function configEnv(config: Config): Record<string, string | undefined> {
  return {
    EMBEDDED_DB_DIR: config.embeddedDbDir,
    EMAIL_OUTBOX_DIR: config.email.outboxDir,
    APP_BASE_URL: config.appBaseUrl,
    EMAIL_FROM: config.email.from,
    LOG_LEVEL: config.logLevel,
  };
}

function describe(name: string, exitCode: number, summary: Record<string, unknown> | null): string {
  const counts = Object.entries(summary ?? {})
    .filter(([k, v]) => typeof v === 'number' && k !== 'durationMs')
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return `  ${name.padEnd(24)} exit ${exitCode}  ${counts}  (${String(summary?.durationMs ?? '?')} ms)`;
}
