/**
 * Traces: the OpenTelemetry Node SDK, exporting over OTLP/HTTP to
 * OTEL_EXPORTER_OTLP_ENDPOINT. Off, and costless, when that is unset: the SDK is
 * never even imported, and `withSpan` (trace.ts) hands out non-recording spans.
 *
 * What a run's trace holds: the command's root span (`exitosx-cron <job>`, see
 * `traceCommand`), the runtime's `run <job>` span, one span per item with its
 * outcome, and child spans from the instrumentations: pg (the knex queries on
 * PostgreSQL; PGlite runs in-process and has no driver to instrument), http
 * (SendGrid through axios, the Pushgateway push, Intuit's OAuth client) and undici
 * (QuickBooks through undici's `request`, Kubernetes through `fetch`). Errors on spans, span names, attribute values
 * and status messages are redacted on their way out (`RedactingExporter`).
 *
 * Why no ESM loader hook: the modules worth instrumenting are CommonJS or built in.
 * knex loads `pg` with `require()` each time a knex client is created, which is
 * after `startTracing`, so require-in-the-middle sees it even though our ESM code
 * imported `pg` earlier; the `http`/`https` built-ins are singletons patched in
 * place, which `startTracing` triggers by requiring them once more after the SDK
 * starts; undici reports through diagnostics_channel and needs no patching. This
 * keeps one entrypoint (no `--import` preload) and no cost when tracing is off.
 * test/observability/tracing.test.ts proves the pg spans arrive through the CLI.
 */
import { createRequire } from 'node:module';
import { SpanStatusCode, type Attributes, type Span as ApiSpan } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Config } from '../config.ts';
import type { Logger } from './log.ts';
import { ATTR } from './names.ts';
import { redact } from './redact.ts';
import { withSpan } from './trace.ts';

/** How long flushing spans may take at exit. @defaultValue 5000 ms */
export const TRACING_SHUTDOWN_TIMEOUT_MS = 5000;

/** The process's tracing; the entrypoint owns it and shuts it down on every path. */
export interface Tracing {
  readonly enabled: boolean;
  /** Flushes and stops; never throws, never takes longer than `timeoutMs`. Idempotent. */
  shutdown(timeoutMs?: number): Promise<void>;
}

const OFF: Tracing = { enabled: false, shutdown: async () => undefined };

export interface TracingOptions {
  /** The job (command) this process runs: a resource attribute. */
  job: string;
  /** Told when flushing fails or times out. */
  log?: Logger | undefined;
}

/**
 * Starts tracing when `config.otlpEndpoint` is set; otherwise returns a no-op handle.
 * Resource: `service.name` (OTEL_SERVICE_NAME), the job, shard, run id (known once
 * the run starts) and the Kubernetes pod, job and namespace when present.
 */
export async function startTracing(config: Config, options: TracingOptions): Promise<Tracing> {
  const endpoint = config.otlpEndpoint;
  if (!endpoint) return OFF;
  const [{ NodeSDK }, { OTLPTraceExporter }, { BatchSpanProcessor }, { resourceFromAttributes }, { PgInstrumentation }, { HttpInstrumentation }, { UndiciInstrumentation }, api] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/instrumentation-pg'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-undici'),
      import('@opentelemetry/api'),
    ]);

  const runIds = new RunIdProcessor();
  const k8s = config.kubernetes;
  const resource = resourceFromAttributes({
    'service.name': config.otelServiceName,
    'service.namespace': 'exitosx',
    [ATTR.job]: options.job,
    [ATTR.shard]: config.shard.index,
    [ATTR.shardCount]: config.shard.count,
    [ATTR.runId]: runIds.runId,
    'k8s.pod.name': k8s.podName,
    'k8s.job.name': k8s.jobName,
    'k8s.namespace.name': k8s.namespace,
  });
  const exporter = new RedactingExporter(new OTLPTraceExporter({ url: `${endpoint}/v1/traces`, timeoutMillis: 3000 }));
  const instrumentations: Instrumentation[] = [
    // Only spans inside a run: the pool's housekeeping outside any trace is noise.
    new PgInstrumentation({ requireParentSpan: true }),
    new HttpInstrumentation({ requireParentforOutgoingSpans: true, ignoreIncomingRequestHook: () => true }),
    new UndiciInstrumentation({ requireParentforSpans: true }),
  ];
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    instrumentations,
    // Batch jobs make many spans quickly: a larger queue, exported every 2 s and at exit.
    spanProcessors: [runIds, new BatchSpanProcessor({ exporter, maxQueueSize: 16_384, maxExportBatchSize: 1024, scheduledDelayMillis: 2000, exportTimeoutMillis: 3000 })],
    // Traces only: no OTel metrics (those go to the Pushgateway) and no OTel logs (winston).
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  // Patch the http/https singletons in place now (see the header).
  const require = createRequire(import.meta.url);
  require('http');
  require('https');

  let done: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown(timeoutMs = TRACING_SHUTDOWN_TIMEOUT_MS) {
      done ??= (async () => {
        runIds.resolve(undefined);
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        });
        try {
          const outcome = await Promise.race([sdk.shutdown().then(() => 'ok' as const), timeout]);
          if (outcome === 'timeout') options.log?.warn('tracing:flush-timeout', { endpoint: redact(endpoint), timeoutMs });
        } catch (err) {
          options.log?.warn('tracing:flush-failed', { endpoint: redact(endpoint), error: err });
        } finally {
          clearTimeout(timer);
          // Leave the process as it was: a later run in the same process (tests) starts afresh.
          for (const i of instrumentations) i.disable();
          api.trace.disable();
          api.context.disable();
          api.propagation.disable();
        }
      })();
      return done;
    },
  };
}

/**
 * Runs one command (one job run) inside the process's root span, so that every log
 * line and every span of the run — lock, run history, items, the metrics push —
 * shares one trace. The span ends with the exit code; non-zero is an ERROR status.
 */
export function traceCommand<T extends { exitCode: number }>(job: string, shard: { index: number; count: number }, fn: () => Promise<T>): Promise<T> {
  return withSpan(`exitosx-cron ${job}`, { [ATTR.job]: job, [ATTR.shard]: shard.index, [ATTR.shardCount]: shard.count }, async (span) => {
    const result = await fn();
    span.setAttribute(ATTR.exitCode, result.exitCode);
    if (result.exitCode !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `exit code ${result.exitCode}` });
    return result;
  });
}

/**
 * Learns the run id from the runtime's `run <job>` span (attribute `exitosx.run_id`):
 * it resolves the resource's run id and copies it onto the root span.
 */
class RunIdProcessor implements SpanProcessor {
  resolve!: (id: string | undefined) => void;
  readonly runId = new Promise<string | undefined>((resolve) => (this.resolve = resolve));
  private root: ApiSpan | undefined;

  onStart(span: Span): void {
    if (!span.parentSpanContext) this.root ??= span;
    const id = span.attributes[ATTR.runId];
    if (typeof id === 'string') {
      this.resolve(id);
      if (this.root && this.root !== span && this.root.isRecording()) this.root.setAttribute(ATTR.runId, id);
    }
  }
  onEnd(): void {}
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {
    this.resolve(undefined);
  }
}

/** Masks secrets in span names, attributes, events and status before export. */
export class RedactingExporter implements SpanExporter {
  private readonly inner: SpanExporter;
  constructor(inner: SpanExporter) {
    this.inner = inner;
  }
  export(spans: ReadableSpan[], resultCallback: Parameters<SpanExporter['export']>[1]): void {
    this.inner.export(spans.map(redactSpan), resultCallback);
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

function redactAttributes(attributes: Attributes): Attributes {
  let out: Attributes | undefined;
  for (const [key, value] of Object.entries(attributes)) {
    if (typeof value !== 'string') continue;
    const masked = redact(value);
    if (masked !== value) (out ??= { ...attributes })[key] = masked;
  }
  return out ?? attributes;
}

function redactSpan(span: ReadableSpan): ReadableSpan {
  return new Proxy(span, {
    get(target, prop) {
      switch (prop) {
        case 'name':
          return redact(target.name);
        case 'attributes':
          return redactAttributes(target.attributes);
        case 'events':
          return target.events.map((e) => (e.attributes ? { ...e, attributes: redactAttributes(e.attributes) } : e));
        case 'status':
          return target.status.message ? { ...target.status, message: redact(target.status.message) } : target.status;
        default: {
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        }
      }
    },
  });
}
