/**
 * What a job needs around it in the demo, beyond the embedded database: e.g. the
 * loopback QuickBooks server for sync-quickbooks. Each setup returns environment
 * overrides for the job's configuration and a close function.
 */
import type { JobName } from '../runtime/job.ts';
import type { Logger } from '../telemetry/log.ts';

export interface DemoSetup {
  env?: Record<string, string>;
  close(): Promise<void>;
}

export type DemoSetupFactory = (deps: { log: Logger; tokenKey: Buffer }) => Promise<DemoSetup>;

export const DEMO_SETUPS: Partial<Record<JobName, DemoSetupFactory>> = {};
