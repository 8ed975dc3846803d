/**
 * Logs: winston, JSON lines on stderr (human-readable when stderr is a terminal),
 * every line redacted and, when tracing is on, stamped with the active span's
 * `trace_id` and `span_id`. Events use stable `noun:verb` names in `message`
 * (`item:failed`, `email:sent`, `qbo:report:fetched`).
 */
import winston from 'winston';
import { trace } from '@opentelemetry/api';
import { redact, redactValue, serializeError } from './redact.ts';

export type Logger = winston.Logger;

/**
 * Drops a line whose level is off before any other format runs. winston itself
 * filters by level only in the transport, after the whole format (redaction, JSON)
 * has run: a `debug` line in an `info` run cost as much as a written one, and the
 * jobs have per-item debug lines (bench/FINDINGS.md, round two).
 */
const levelGate = (enabled: (level: string) => boolean) => winston.format((info) => (enabled(String((info as unknown as Record<symbol, unknown>)[LEVEL] ?? info.level)) ? info : false));
/** winston's (triple-beam's) key of the level a line was logged at. */
const LEVEL = Symbol.for('level');

/** Redacts every string field and serialises any Error found in the metadata. */
const scrub = winston.format((info) => {
  for (const key of Object.keys(info)) {
    const value = info[key];
    if (value instanceof Error) info[key] = serializeError(value);
    else if (key !== 'level') info[key] = redactValue(value);
  }
  info.message = typeof info.message === 'string' ? redact(info.message) : info.message;
  return info;
});

/** Adds the active OpenTelemetry span's ids, when there is one. */
const traceIds = winston.format((info) => {
  const span = trace.getActiveSpan();
  const ctx = span?.spanContext();
  if (ctx && ctx.traceId !== '00000000000000000000000000000000') {
    info.trace_id = ctx.traceId;
    info.span_id = ctx.spanId;
  }
  return info;
});

export interface LoggerOptions {
  level: string;
  /** Human-readable output (a terminal); JSON lines otherwise. @defaultValue stderr is a TTY */
  pretty?: boolean;
  /** Where lines go. @defaultValue process.stderr */
  stream?: NodeJS.WritableStream;
}

/** Creates the root logger. The entrypoint owns it and closes it. */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? Boolean(process.stderr.isTTY);
  const stream = options.stream ?? process.stderr;
  // The logger exists once the format is built: the gate asks it (its level may change).
  const made: { logger?: winston.Logger } = {};
  const gate = levelGate((level) => made.logger?.isLevelEnabled(level) ?? true);
  const format = pretty
    ? winston.format.combine(
        gate(),
        traceIds(),
        scrub(),
        winston.format.timestamp({ format: 'HH:mm:ss' }),
        winston.format.colorize(),
        winston.format.printf(({ level, message, timestamp, job: _job, runId: _runId, ...rest }) => {
          const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
          return `${String(timestamp)} ${level} ${String(message)}${extra}`;
        }),
      )
    : winston.format.combine(gate(), traceIds(), scrub(), winston.format.timestamp(), winston.format.json());
  const logger = winston.createLogger({
    level: options.level,
    format,
    transports: [new winston.transports.Stream({ stream })],
  });
  made.logger = logger;
  return logger;
}
