/**
 * A small `withSpan(name, attributes, fn)` helper over the OpenTelemetry API. With
 * no SDK registered (OTEL_EXPORTER_OTLP_ENDPOINT unset) the API hands out
 * non-recording spans, so the helper costs next to nothing. Errors are recorded on
 * the span redacted: an exception event leaves the process like a log line does.
 */
import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import { redact } from './redact.ts';

const tracer = () => trace.getTracer('exitosx-cron');

/** Records `err` on `span` (exception event and ERROR status), secrets masked. */
export function recordError(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  const e = err instanceof Error ? err : new Error(String(err));
  const message = redact(e.message);
  const code = (e as { code?: unknown }).code;
  span.recordException({ name: e.name, message, ...(e.stack ? { stack: redact(e.stack) } : {}), ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}) });
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Runs `fn` inside an active span; records errors on it (redacted) and ends it. */
export async function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}
