/**
 * Traces to a loopback OTLP/HTTP collector (JSON): a run's root span, the runtime's
 * run span, item spans with their outcome, pg child spans (PostgreSQL) and HTTP
 * child spans (the metrics push), the resource attributes, errors recorded redacted,
 * every log line carrying trace_id/span_id; and tracing off costing nothing. Once
 * in-process through the runtime, once through the real command line (the ESM
 * entrypoint, where instrumenting pg depends on load order).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { trace } from '@opentelemetry/api';
import { loadConfig } from '../../lib/config.ts';
import { createMetricsPublisher } from '../../lib/telemetry/metrics.ts';
import { clearSecrets, registerSecrets } from '../../lib/telemetry/redact.ts';
import { withSpan } from '../../lib/telemetry/trace.ts';
import { startTracing, traceCommand } from '../../lib/telemetry/tracing.ts';
import { backends, createTestDb, type TestDb } from '../support/db.ts';
import { aCompany, anOwnedCompany } from '../support/factories.ts';
import { NOW, runCli, runInProcess } from '../support/run.ts';
import { probeJob, startCollector, tempDir, type CollectedSpan, type Collector } from './support.ts';

/** A loopback HTTP server that accepts anything (stands in for the Pushgateway here). */
async function acceptAll(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(202).end());
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const childrenOf = (spans: CollectedSpan[], parent: CollectedSpan) => spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);

describe('tracing (OTLP/HTTP to a loopback collector)', function () {
  this.timeout(60_000);
  let collector: Collector;
  let sink: Awaited<ReturnType<typeof acceptAll>>;

  beforeEach(async () => {
    collector = await startCollector();
    sink = await acceptAll();
  });
  afterEach(async () => {
    await collector.close();
    await sink.close();
    clearSecrets();
  });

  for (const kind of backends()) {
    it(`exports a run's root span, item spans with outcomes, ${kind === 'postgres' ? 'pg and ' : ''}HTTP child spans, redacted errors and trace ids in logs (${kind}, in-process)`, async () => {
      const env = {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
        OTEL_SERVICE_NAME: 'exitosx-cron-test',
        POD_NAME: 'exitosx-detect-inactivity-29000000-abcde',
        JOB_NAME: 'exitosx-detect-inactivity-29000000',
        POD_NAMESPACE: 'exitosx',
        PUSHGATEWAY_URL: sink.url,
      };
      const config = loadConfig(env);
      registerSecrets('qbo-secret-value-123');
      const tracing = await startTracing(config, { job: 'detect-inactivity' });
      let db: TestDb | undefined;
      let result;
      try {
        // Opened after tracing starts, as in the CLI: knex loads pg through the hook.
        db = await createTestDb(kind);
        for (let i = 0; i < 3; i++) await aCompany(db.knex, { id: `cmp_trace_${i}` });
        const job = probeJob({
          name: 'detect-inactivity',
          table: () => 'companies',
          onItem: (i) => {
            if (i === 1) throw new Error('Intuit said no to Bearer abcdefghijklmnop with qbo-secret-value-123');
          },
          summary: (n) => ({ usersChecked: n }),
        });
        const database = db.database;
        result = await traceCommand('detect-inactivity', config.shard, () => runInProcess(job, {}, { database, env, publishers: [createMetricsPublisher(config)] }));
      } finally {
        await tracing.shutdown();
        await db?.close();
      }
      expect(result.exitCode).to.equal(1);
      const spans = collector.spans;

      const root = spans.find((s) => s.name === 'exitosx-cron detect-inactivity');
      expect(root, 'root span').to.exist;
      expect(root!.parentSpanId).to.equal('');
      expect(root!.attributes).to.include({ 'exitosx.job': 'detect-inactivity', 'exitosx.run_id': result.summary.runId, 'exitosx.exit_code': 1 });
      expect(root!.status.code).to.equal(2);
      expect(root!.resource).to.include({
        'service.name': 'exitosx-cron-test',
        'exitosx.job': 'detect-inactivity',
        'exitosx.run_id': result.summary.runId,
        'exitosx.shard': 0,
        'k8s.pod.name': 'exitosx-detect-inactivity-29000000-abcde',
        'k8s.job.name': 'exitosx-detect-inactivity-29000000',
        'k8s.namespace.name': 'exitosx',
      });

      const run = spans.find((s) => s.name === 'run detect-inactivity');
      expect(run?.parentSpanId, 'run span under the root').to.equal(root!.spanId);
      const items = childrenOf(spans, run!).filter((s) => s.name === 'company');
      expect(items.map((s) => s.attributes['exitosx.item.id']).sort()).to.deep.equal(['cmp_trace_0', 'cmp_trace_1', 'cmp_trace_2']);
      expect(items.filter((s) => s.attributes['exitosx.item.outcome'] === 'checked')).to.have.length(2);

      const failed = items.find((s) => s.attributes['exitosx.item.id'] === 'cmp_trace_1')!;
      expect(failed.status.code).to.equal(2);
      const exception = failed.events.find((e) => e.name === 'exception');
      expect(exception?.attributes['exception.message']).to.equal('Intuit said no to Bearer [REDACTED] with [REDACTED]');
      expect(JSON.stringify(spans)).not.to.match(/abcdefghijklmnop|qbo-secret-value-123/);

      if (kind === 'postgres') {
        const pgSpans = spans.filter((s) => s.scope === '@opentelemetry/instrumentation-pg');
        expect(pgSpans.length, 'pg spans').to.be.greaterThan(3);
        for (const item of items) expect(childrenOf(spans, item).some((s) => s.scope === '@opentelemetry/instrumentation-pg'), `pg span under ${String(item.attributes['exitosx.item.id'])}`).to.equal(true);
        expect(pgSpans.every((s) => s.traceId === root!.traceId), 'pg spans in the run trace').to.equal(true);
      }

      const push = spans.find((s) => s.name === 'metrics:push');
      expect(push?.traceId, 'the push is in the run trace').to.equal(root!.traceId);
      const httpPush = childrenOf(spans, push!).find((s) => s.scope === '@opentelemetry/instrumentation-http');
      expect(httpPush?.attributes['http.request.method'] ?? httpPush?.attributes['http.method']).to.equal('POST');
      expect(sink.requests).to.deep.equal(['POST /metrics/job/exitosx_cron/cron_job/detect-inactivity/shard/0']);

      // Every log line of the run carries the trace's ids.
      expect(result.logs.length).to.be.greaterThan(3);
      for (const line of result.logs) expect(line, String(line.message)).to.include({ trace_id: root!.traceId });
      // span_id names a span of this trace (item:failed is logged by the runtime just after the item span ends).
      const ids = new Set(spans.filter((s) => s.traceId === root!.traceId).map((s) => s.spanId));
      for (const line of result.logs) expect(ids.has(String(line.span_id)), `${String(line.message)} span_id`).to.equal(true);
    });
  }

  it('is off and costless without OTEL_EXPORTER_OTLP_ENDPOINT: no SDK, non-recording spans, no trace ids', async () => {
    const tracing = await startTracing(loadConfig({}), { job: 'detect-inactivity' });
    expect(tracing.enabled).to.equal(false);
    await withSpan('x', {}, async (span) => {
      expect(span.isRecording()).to.equal(false);
      expect(trace.getActiveSpan()?.spanContext().traceId ?? '00000000000000000000000000000000').to.equal('00000000000000000000000000000000');
    });
    await tracing.shutdown();
    expect(collector.requests).to.equal(0);
  });

  it('shutdown never takes longer than its timeout, even when the collector does not answer', async () => {
    const sockets = new Set<net.Socket>();
    const silent = http.createServer(() => undefined);
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const tracing = await startTracing(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}` }), { job: 'detect-inactivity' });
      await withSpan('a span to flush', {}, async () => undefined);
      const started = performance.now();
      await tracing.shutdown(500);
      expect(performance.now() - started).to.be.below(1500);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('through the real command line: detect-inactivity on PostgreSQL exports root, item, pg and HTTP spans, and its log lines carry trace_id', async function () {
    if (!backends().includes('postgres')) this.skip();
    const db = await createTestDb('postgres');
    const outbox = tempDir('outbox');
    try {
      await anOwnedCompany(db.knex, { daysInactive: 30 });
      await anOwnedCompany(db.knex, { daysInactive: 50 });
      const result = await runCli(['detect-inactivity', '--now', NOW.toISOString()], {
        env: { DATABASE_URL: db.url, OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, PUSHGATEWAY_URL: sink.url, EMAIL_OUTBOX_DIR: outbox, POD_NAME: 'pod-cli' },
      });
      expect(result.code, result.stderr).to.equal(0);
      const spans = collector.spans;
      const root = spans.find((s) => s.name === 'exitosx-cron detect-inactivity' && s.parentSpanId === '');
      expect(root, `root span among ${spans.map((s) => s.name).join(', ')}`).to.exist;
      expect(root!.resource).to.include({ 'service.name': 'exitosx-cron', 'exitosx.run_id': result.summary?.runId, 'k8s.pod.name': 'pod-cli' });
      const run = spans.find((s) => s.name === 'run detect-inactivity');
      expect(run?.parentSpanId).to.equal(root!.spanId);
      const items = spans.filter((s) => s.attributes['exitosx.item.kind'] !== undefined && s.traceId === root!.traceId);
      expect(items.length, 'item spans').to.be.greaterThan(0);
      expect(items.every((s) => typeof s.attributes['exitosx.item.outcome'] === 'string')).to.equal(true);
      const pgSpans = spans.filter((s) => s.scope === '@opentelemetry/instrumentation-pg' && s.traceId === root!.traceId);
      expect(pgSpans.length, 'pg spans from the CLI process').to.be.greaterThan(3);
      expect(spans.some((s) => s.scope === '@opentelemetry/instrumentation-http' && s.traceId === root!.traceId), 'http span of the push').to.equal(true);
      const logs = result.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logs.length).to.be.greaterThan(2);
      for (const line of logs) expect(line, String(line.message)).to.include({ trace_id: root!.traceId });
      expect(fs.readdirSync(outbox).length, 'emails in the outbox').to.be.greaterThan(0);
      // The CLI passes the metrics publisher: a successful run replaces its group.
      expect(sink.requests).to.deep.equal(['PUT /metrics/job/exitosx_cron/cron_job/detect-inactivity/shard/0']);
    } finally {
      await db.close();
      fs.rmSync(path.resolve(outbox), { recursive: true, force: true });
    }
  });
});
