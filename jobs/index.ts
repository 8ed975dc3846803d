/**
 * The jobs of the suite, by command name. Loaded lazily so that a run of one job
 * does not load the others' libraries.
 */
import type { JobDefinition, JobName } from '../lib/runtime/job.ts';

export const JOBS: Record<JobName, () => Promise<JobDefinition>> = {
  'generate-drift-reports': async () => (await import('./generate-drift-reports.ts')).default,
  'detect-inactivity': async () => (await import('./detect-inactivity.ts')).default,
  'sync-quickbooks': async () => (await import('./sync-quickbooks.ts')).default,
};

export const JOB_NAMES = Object.keys(JOBS) as JobName[];
