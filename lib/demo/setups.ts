/**
 * What a job needs around it in the demo, beyond the embedded database: e.g. the
 * loopback QuickBooks server for sync-quickbooks. Each setup returns environment
 * overrides for the job's configuration and a close function.
 */
import crypto from 'node:crypto';
import type { JobName } from '../runtime/job.ts';
import type { Logger } from '../telemetry/log.ts';

export interface DemoSetup {
  env?: Record<string, string>;
  close(): Promise<void>;
}

export type DemoSetupFactory = (deps: { log: Logger; tokenKey: Buffer }) => Promise<DemoSetup>;

export const DEMO_SETUPS: Partial<Record<JobName, DemoSetupFactory>> = {
  // Intuit cannot be reached from here: the loopback QuickBooks (token endpoint and
  // reports) runs in-process and accepts the sample's tokens.
  'sync-quickbooks': async ({ log }) => {
    const { startLoopbackQuickBooks } = await import('../stand-ins/quickbooks-server.ts');
    const clientId = 'demo-quickbooks-client';
    const clientSecret = crypto.randomBytes(16).toString('hex');
    const server = await startLoopbackQuickBooks({ clientId, clientSecret, acceptUnknownTokens: true });
    log.info('demo:quickbooks:started', { detail: `loopback QuickBooks (OAuth token endpoint and reports) started in-process at ${server.apiUrl}`, apiUrl: server.apiUrl });
    return {
      env: { QUICKBOOKS_CLIENT_ID: clientId, QUICKBOOKS_CLIENT_SECRET: clientSecret, QUICKBOOKS_API_URL: server.apiUrl, QUICKBOOKS_TOKEN_URL: server.tokenUrl },
      close: async () => {
        await server.close();
        log.info('demo:quickbooks:stopped', { tokenRequests: server.tokenStats.requests, reportRequests: server.stats('*').reportRequests });
      },
    };
  },
};
