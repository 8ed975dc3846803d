/**
 * A healthy installation for `exitosx-cron doctor`: a migrated PostgreSQL database
 * with one QuickBooks integration (tokens encrypted with KEY), the loopback SendGrid
 * and QuickBooks, a real Pushgateway, a loopback OTLP collector and a loopback
 * Kubernetes API; `env()` is the environment of a pod configured for all of them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { startLoopbackQuickBooks, type LoopbackQuickBooks } from '../../lib/stand-ins/quickbooks-server.ts';
import { FakeKubeApi } from '../k8s/support/fake-kube-api.ts';
import { startCollector, startPushgateway, type Collector, type ServerHandle } from '../observability/support.ts';
import { anIntegration, CLIENT_ID, CLIENT_SECRET, KEY, qbEnv } from '../quickbooks/support.ts';
import { createTestDb, type TestDb } from '../support/db.ts';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';

export const NAMESPACE = 'exitosx';

export interface Installation {
  db: TestDb;
  sendgrid: SendGridServer;
  quickbooks: LoopbackQuickBooks;
  pushgateway: ServerHandle;
  collector: Collector;
  kube: FakeKubeApi;
  dir: string;
  kubeconfig: string;
  integrationId: string;
  /** The integration's tokens in clear (never to be printed). */
  plainTokens: string[];
  /** The pod's environment, with `over` on top (undefined removes a variable). */
  env(over?: Record<string, string | undefined>): Record<string, string | undefined>;
  close(): Promise<void>;
}

/** Starts everything; the caller closes it. `pushgatewayBin` from requireBinary. */
export async function startInstallation(pushgatewayBin: string): Promise<Installation> {
  const db = await createTestDb('postgres');
  const sendgrid = await startSendGridServer();
  const quickbooks = await startLoopbackQuickBooks({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  const pushgateway = await startPushgateway(pushgatewayBin);
  const collector = await startCollector();
  const kube = new FakeKubeApi();
  await kube.start();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-doctor-'));
  const kubeconfig = kube.kubeconfig(dir, NAMESPACE);
  const integration = await anIntegration(db.knex, quickbooks);
  return {
    db, sendgrid, quickbooks, pushgateway, collector, kube, dir, kubeconfig,
    integrationId: integration.id,
    plainTokens: [integration.accessToken, integration.refreshToken],
    env: (over = {}) => ({
      DATABASE_URL: db.url,
      SENDGRID_API_KEY: sendgrid.apiKey,
      SENDGRID_API_URL: sendgrid.url,
      EMAIL_OUTBOX_DIR: path.join(dir, 'outbox'),
      EMBEDDED_DB_DIR: path.join(dir, 'db'),
      ...qbEnv(quickbooks),
      TOKEN_ENCRYPTION_KEY: KEY.toString('base64'),
      PUSHGATEWAY_URL: pushgateway.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      // In a pod: the API server's address is set by Kubernetes; the kubeconfig points at the loopback.
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBECONFIG: kubeconfig,
      POD_NAMESPACE: NAMESPACE,
      POD_NAME: 'exitosx-cron-doctor',
      ...over,
    }),
    close: async () => {
      await kube.close();
      await collector.close();
      await pushgateway.stop();
      await quickbooks.close();
      await sendgrid.close();
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Every row of every table of the product and suite schemas, as text: equal before
 * and after means nothing was written. (Also lists the suite schema's tables, so a
 * table created by a check would show.)
 */
export async function snapshot(db: Knex): Promise<string> {
  const { rows: tables } = await db.raw<{ rows: Array<{ s: string; t: string }> }>(
    `select table_schema as s, table_name as t from information_schema.tables where table_schema in ('public', 'exitosx_cron') and table_type = 'BASE TABLE' order by 1, 2`,
  );
  const parts: string[] = [];
  for (const { s, t } of tables) {
    const { rows } = await db.raw<{ rows: Array<{ r: string }> }>(`select coalesce(string_agg(x::text, E'\\n' order by x::text), '') as r from ${s}.${t} x`);
    parts.push(`${s}.${t}\n${rows[0]!.r}`);
  }
  return parts.join('\n---\n');
}
