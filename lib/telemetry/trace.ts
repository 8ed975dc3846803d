/**
 * A small `withSpan(name, attributes, fn)` helper over the OpenTelemetry API. With
 * no SDK registered (OTEL_EXPORTER_OTLP_ENDPOINT unset) the API hands out
 * non-recording spans, so the helper costs next to nothing.
 */
import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

const tracer = () => trace.getTracer('exitosx-cron');

/** Runs `fn` inside an active span; records errors on it and ends it. */
export async function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
      throw err;
    } finally {
      span.end();
    }
  });
}
