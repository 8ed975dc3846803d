/**
 * `exitosx-cron doctor`: whether the suite can work here, one check per concern,
 * changing nothing. The checks that call out (SendGrid, Intuit, Pushgateway, OTLP,
 * Kubernetes) run side by side with the database's; the report keeps a fixed order.
 * All that is configured works → exit 0; any check failed → exit 1 (DOCTOR_FAILED).
 */
import type { Config } from '../config.ts';
import type { JobDefinition } from '../runtime/job.ts';
import type { CheckResult } from './check.ts';
import { skipped } from './check.ts';
import { checkConfiguration } from './configuration.ts';
import { checkDatabase } from './database.ts';
import { prepareKubernetesCheck } from './kubernetes.ts';
import { checkOtlp } from './otlp.ts';
import { checkPushgateway } from './pushgateway.ts';
import { checkQuickBooks } from './quickbooks.ts';
import { checkSendGrid } from './sendgrid.ts';
import { checkTokenKey, tokenKeyPrecheck } from './token-key.ts';

/** Exit code when a configured check failed (2 stays "configuration invalid", as for every command). */
export const DOCTOR_FAILED = 1;

export interface DoctorReport {
  checks: CheckResult[];
  /** 0: every configured check passed; DOCTOR_FAILED otherwise. */
  exitCode: number;
}

export interface DoctorDeps {
  /** The jobs whose columns and settings are checked (all three in the command). */
  jobs: JobDefinition[];
  /** The clock for the Intuit probe's expiry maths (nothing is stored). */
  now: Date;
}

/** Runs every check on a valid configuration. Never throws for a failing dependency: that is a `fail` line. */
export async function runDoctor(config: Config, deps: DoctorDeps): Promise<DoctorReport> {
  const configuration = checkConfiguration(config, deps.jobs);
  const checkKubernetes = await prepareKubernetesCheck(config);
  const [database, sendgrid, quickbooks, pushgateway, otlp, kubernetes] = await Promise.all([
    checkDatabase(config, deps.jobs, (db) => checkTokenKey(config, db), (why) => tokenKeyPrecheck(config) ?? skipped('token-key', why)),
    checkSendGrid(config),
    checkQuickBooks(config, deps.now),
    checkPushgateway(config),
    checkOtlp(config),
    checkKubernetes(),
  ]);
  const checks = [configuration, ...database, sendgrid, quickbooks, pushgateway, otlp, kubernetes];
  return { checks, exitCode: checks.some((c) => c.status === 'fail') ? DOCTOR_FAILED : 0 };
}
