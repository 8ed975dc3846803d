/**
 * Configuration: one `loadConfig(env)` turns the environment into one typed,
 * validated object. Nothing else in the suite reads `process.env`. Each variable
 * is documented once, here, with its default; the README's table mirrors it.
 */
import { z } from 'zod';
import { ConfigError } from './errors.ts';

/** The largest count or delay accepted: Node fires a timer of more than 2^31-1 ms at once. */
const MAX_WHOLE = 2_147_483_647;

/** Digits only: `Number()` would also take " 5", "0x10", "1e3" and "1.0". */
const WHOLE = /^\d{1,10}$/;

const positiveInt = (name: string, def: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      const n = WHOLE.test(v) ? Number(v) : Number.NaN;
      if (!Number.isInteger(n) || n < 1 || n > MAX_WHOLE) {
        ctx.addIssue({ code: 'custom', message: `${name} must be a whole number from 1 to ${MAX_WHOLE} (got ${JSON.stringify(v)})` });
        return z.NEVER;
      }
      return n;
    });

/** A duration in ms where 0 turns the limit off (as in PostgreSQL). */
const wholeOrZero = (name: string, def: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return def;
      const n = WHOLE.test(v) ? Number(v) : Number.NaN;
      if (!Number.isInteger(n) || n > MAX_WHOLE) {
        ctx.addIssue({ code: 'custom', message: `${name} must be a whole number of milliseconds from 0 (off) to ${MAX_WHOLE} (got ${JSON.stringify(v)})` });
        return z.NEVER;
      }
      return n;
    });

const url = (name: string) =>
  z
    .string()
    .optional()
    // http(s) only: these are links in emails and endpoints we call (no javascript:, file:...).
    .refine((v) => v === undefined || v === '' || /^https?:$/.test(URL.parse(v)?.protocol ?? ''), { message: `${name} must be an absolute URL (http:// or https://)` })
    .transform((v) => (v ? v.replace(/\/+$/, '') : undefined));

const key32 = (name: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!v) return undefined;
      const bytes = Buffer.from(v, 'base64');
      if (bytes.length !== 32 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) {
        ctx.addIssue({ code: 'custom', message: `${name} must be 32 bytes of base64 (got ${bytes.length}); make one with: openssl rand -base64 32` });
        return z.NEVER;
      }
      return bytes;
    });

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v ? v : undefined));

const schema = z.object({
  /** PostgreSQL connection URL. Unset: the embedded database (PGlite) in EMBEDDED_DB_DIR. */
  DATABASE_URL: optionalText.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
    message: 'DATABASE_URL must be a postgres:// or postgresql:// URL',
  }),
  /** Where the embedded database lives. @defaultValue ./.exitosx/db */
  EMBEDDED_DB_DIR: z.string().default('./.exitosx/db'),
  /** Connection pool size. @defaultValue 10 */
  DATABASE_POOL_MAX: positiveInt('DATABASE_POOL_MAX', 10),
  /**
   * How long a statement of a job waits for a row or table lock another transaction
   * (the product application) holds, in ms; then that item fails ("row locked by
   * another transaction") and the next run retries it. 0: wait forever. @defaultValue 5000
   */
  DATABASE_LOCK_TIMEOUT_MS: wholeOrZero('DATABASE_LOCK_TIMEOUT_MS', 5000),
  /** Longest a job's statement may run, in ms; a page read cut by it ends the run (exit 3). 0: no limit. @defaultValue 300000 */
  DATABASE_STATEMENT_TIMEOUT_MS: wholeOrZero('DATABASE_STATEMENT_TIMEOUT_MS', 300_000),
  /**
   * Longest a job's session may sit idle inside an open transaction, in ms, before the
   * server ends it (a stuck run never holds its row locks for long). Must exceed
   * QUICKBOOKS_TIMEOUT_MS for sync-quickbooks: a token refresh holds its row lock across
   * the call. 0: no limit. @defaultValue 60000
   */
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: wholeOrZero('DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS', 60_000),
  /** Links in emails. @defaultValue https://app.exitosx.com */
  APP_BASE_URL: url('APP_BASE_URL').transform((v) => v ?? 'https://app.exitosx.com'),
  /** Sender of every email. @defaultValue Exit OSx <no-reply@exitosx.com> */
  EMAIL_FROM: z
    .string()
    .default('Exit OSx <no-reply@exitosx.com>')
    .refine((v) => /^(.*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$/.test(v), { message: 'EMAIL_FROM must be an address or "Name <address>"' }),
  /** SendGrid API key. Unset: emails are written to EMAIL_OUTBOX_DIR instead of sent. */
  SENDGRID_API_KEY: optionalText,
  /** SendGrid base URL. @defaultValue https://api.sendgrid.com */
  SENDGRID_API_URL: url('SENDGRID_API_URL').transform((v) => v ?? 'https://api.sendgrid.com'),
  /** Where unsent emails are written (.eml and .html). @defaultValue ./.exitosx/outbox */
  EMAIL_OUTBOX_DIR: z.string().default('./.exitosx/outbox'),
  /** Emails in flight at once. @defaultValue 8 */
  EMAIL_CONCURRENCY: positiveInt('EMAIL_CONCURRENCY', 8),
  /** Timeout of one email API call, in ms: from its start to the last byte of the answer (a slow answer cannot stretch it). @defaultValue 10000 */
  EMAIL_TIMEOUT_MS: positiveInt('EMAIL_TIMEOUT_MS', 10_000),
  /** Retries of one email on 429, 5xx and network errors. @defaultValue 4 */
  EMAIL_MAX_RETRIES: positiveInt('EMAIL_MAX_RETRIES', 4),
  /** Intuit app credentials (required by sync-quickbooks). */
  QUICKBOOKS_CLIENT_ID: optionalText,
  QUICKBOOKS_CLIENT_SECRET: optionalText,
  /** `sandbox` or `production`: picks Intuit's base URL. @defaultValue production */
  QUICKBOOKS_ENVIRONMENT: z.enum(['sandbox', 'production'], { message: 'QUICKBOOKS_ENVIRONMENT must be sandbox or production' }).default('production'),
  /** Accounting API base URL. @defaultValue Intuit's, by environment */
  QUICKBOOKS_API_URL: url('QUICKBOOKS_API_URL'),
  /** OAuth token endpoint. @defaultValue https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer */
  QUICKBOOKS_TOKEN_URL: url('QUICKBOOKS_TOKEN_URL').transform((v) => v ?? 'https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer'),
  /** Report basis. @defaultValue Accrual */
  QUICKBOOKS_ACCOUNTING_METHOD: z.enum(['Accrual', 'Cash'], { message: 'QUICKBOOKS_ACCOUNTING_METHOD must be Accrual or Cash' }).default('Accrual'),
  /** Requests in flight per realm (Intuit allows 10). @defaultValue 10 */
  QUICKBOOKS_MAX_IN_FLIGHT: positiveInt('QUICKBOOKS_MAX_IN_FLIGHT', 10),
  /** Requests per minute per realm (Intuit allows 500). @defaultValue 500 */
  QUICKBOOKS_MAX_PER_MINUTE: positiveInt('QUICKBOOKS_MAX_PER_MINUTE', 500),
  /** Integrations synced at once (across realms). @defaultValue 50 */
  QUICKBOOKS_CONCURRENCY: positiveInt('QUICKBOOKS_CONCURRENCY', 50),
  /** Timeout of one QuickBooks call (a report, or a token refresh with intuit-oauth's own retries), in ms: from its start to the last byte of the answer. @defaultValue 30000 */
  QUICKBOOKS_TIMEOUT_MS: positiveInt('QUICKBOOKS_TIMEOUT_MS', 30_000),
  /** AES-256-GCM key for QuickBooks tokens: 32 bytes, base64 (required by sync-quickbooks). */
  TOKEN_ENCRYPTION_KEY: key32('TOKEN_ENCRYPTION_KEY'),
  /** An older key, still accepted for decryption during a rotation. */
  TOKEN_ENCRYPTION_KEY_PREVIOUS: key32('TOKEN_ENCRYPTION_KEY_PREVIOUS'),
  /** Prometheus Pushgateway. Unset: metrics are not pushed. */
  PUSHGATEWAY_URL: url('PUSHGATEWAY_URL'),
  /** Timeout of the Pushgateway push, in ms. @defaultValue 5000 */
  PUSHGATEWAY_TIMEOUT_MS: positiveInt('PUSHGATEWAY_TIMEOUT_MS', 5000),
  /** OpenTelemetry collector (OTLP over HTTP). Unset: no tracing. */
  OTEL_EXPORTER_OTLP_ENDPOINT: url('OTEL_EXPORTER_OTLP_ENDPOINT'),
  /** @defaultValue exitosx-cron */
  OTEL_SERVICE_NAME: z.string().min(1).default('exitosx-cron'),
  /** @defaultValue info */
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug'], { message: 'LOG_LEVEL must be error, warn, info or debug' }).default('info'),
  /** Number of shards. @defaultValue 1 */
  SHARD_COUNT: positiveInt('SHARD_COUNT', 1),
  /** This run's shard. @defaultValue 0, or JOB_COMPLETION_INDEX when set */
  SHARD_INDEX: optionalText,
  /** Set by Kubernetes in an Indexed Job. */
  JOB_COMPLETION_INDEX: optionalText,
  /** Downward API: the pod, its Job and namespace (for Job annotations, Events and trace attributes). */
  POD_NAME: optionalText,
  POD_NAMESPACE: optionalText,
  JOB_NAME: optionalText,
  /** Set by Kubernetes in every pod: with JOB_NAME, tells the run it is in a cluster. */
  KUBERNETES_SERVICE_HOST: optionalText,
  /** Kubeconfig file(s) for `trigger` (else ~/.kube/config, else in-cluster). */
  KUBECONFIG: optionalText,
  /** Timeout of each Kubernetes API call a run makes (scheduled time, Job annotation, Event), in ms. @defaultValue 3000 */
  KUBERNETES_API_TIMEOUT_MS: positiveInt('KUBERNETES_API_TIMEOUT_MS', 3000),
});

export interface Config {
  databaseUrl: string | undefined;
  embeddedDbDir: string;
  databasePoolMax: number;
  /** Session settings of every job connection but the run lock's (lib/db/session.ts); 0 = off. */
  databaseTimeouts: DatabaseTimeouts;
  appBaseUrl: string;
  email: {
    from: string;
    sendgridApiKey: string | undefined;
    sendgridApiUrl: string;
    outboxDir: string;
    concurrency: number;
    timeoutMs: number;
    maxRetries: number;
  };
  quickbooks: {
    clientId: string | undefined;
    clientSecret: string | undefined;
    environment: 'sandbox' | 'production';
    apiUrl: string;
    tokenUrl: string;
    accountingMethod: 'Accrual' | 'Cash';
    maxInFlightPerRealm: number;
    maxPerMinutePerRealm: number;
    concurrency: number;
    timeoutMs: number;
  };
  tokenEncryptionKey: Buffer | undefined;
  tokenEncryptionKeyPrevious: Buffer | undefined;
  pushgatewayUrl: string | undefined;
  pushgatewayTimeoutMs: number;
  otlpEndpoint: string | undefined;
  otelServiceName: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  shard: { count: number; index: number };
  kubernetes: {
    podName: string | undefined;
    namespace: string | undefined;
    jobName: string | undefined;
    /** In a pod: KUBERNETES_SERVICE_HOST or JOB_NAME is set. */
    inPod: boolean;
    kubeconfig: string | undefined;
    apiTimeoutMs: number;
  };
}

/** The PostgreSQL session timeouts of a job's connections, in ms (0 = off). */
export interface DatabaseTimeouts {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
}

const QUICKBOOKS_API_URLS = {
  sandbox: 'https://sandbox-quickbooks.api.intuit.com',
  production: 'https://quickbooks.api.intuit.com',
} as const;

/**
 * Validates the environment and returns the configuration. Throws a ConfigError
 * whose one-line message names the variable and what it expects.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    const message = issue.message.startsWith(variable) ? issue.message : `${variable}: ${issue.message}`;
    throw new ConfigError(message);
  }
  const e = parsed.data;
  const shardIndexText = e.SHARD_INDEX ?? e.JOB_COMPLETION_INDEX ?? '0';
  const shardIndex = WHOLE.test(shardIndexText) ? Number(shardIndexText) : Number.NaN;
  const shardVar = e.SHARD_INDEX !== undefined ? 'SHARD_INDEX' : 'JOB_COMPLETION_INDEX';
  if (!Number.isInteger(shardIndex) || shardIndex < 0 || shardIndex >= e.SHARD_COUNT) {
    throw new ConfigError(`${shardVar} must be a whole number from 0 to SHARD_COUNT-1 (${e.SHARD_COUNT - 1}) (got ${JSON.stringify(shardIndexText)})`);
  }
  return {
    databaseUrl: e.DATABASE_URL,
    embeddedDbDir: e.EMBEDDED_DB_DIR,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseTimeouts: {
      lockTimeoutMs: e.DATABASE_LOCK_TIMEOUT_MS,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
      idleInTransactionTimeoutMs: e.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    },
    appBaseUrl: e.APP_BASE_URL,
    email: {
      from: e.EMAIL_FROM,
      sendgridApiKey: e.SENDGRID_API_KEY,
      sendgridApiUrl: e.SENDGRID_API_URL,
      outboxDir: e.EMAIL_OUTBOX_DIR,
      concurrency: e.EMAIL_CONCURRENCY,
      timeoutMs: e.EMAIL_TIMEOUT_MS,
      maxRetries: e.EMAIL_MAX_RETRIES,
    },
    quickbooks: {
      clientId: e.QUICKBOOKS_CLIENT_ID,
      clientSecret: e.QUICKBOOKS_CLIENT_SECRET,
      environment: e.QUICKBOOKS_ENVIRONMENT,
      apiUrl: e.QUICKBOOKS_API_URL ?? QUICKBOOKS_API_URLS[e.QUICKBOOKS_ENVIRONMENT],
      tokenUrl: e.QUICKBOOKS_TOKEN_URL,
      accountingMethod: e.QUICKBOOKS_ACCOUNTING_METHOD,
      maxInFlightPerRealm: e.QUICKBOOKS_MAX_IN_FLIGHT,
      maxPerMinutePerRealm: e.QUICKBOOKS_MAX_PER_MINUTE,
      concurrency: e.QUICKBOOKS_CONCURRENCY,
      timeoutMs: e.QUICKBOOKS_TIMEOUT_MS,
    },
    tokenEncryptionKey: e.TOKEN_ENCRYPTION_KEY,
    tokenEncryptionKeyPrevious: e.TOKEN_ENCRYPTION_KEY_PREVIOUS,
    pushgatewayUrl: e.PUSHGATEWAY_URL,
    pushgatewayTimeoutMs: e.PUSHGATEWAY_TIMEOUT_MS,
    otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    otelServiceName: e.OTEL_SERVICE_NAME,
    logLevel: e.LOG_LEVEL,
    shard: { count: e.SHARD_COUNT, index: shardIndex },
    kubernetes: {
      podName: e.POD_NAME,
      namespace: e.POD_NAMESPACE,
      jobName: e.JOB_NAME,
      inPod: Boolean(e.KUBERNETES_SERVICE_HOST || e.JOB_NAME),
      kubeconfig: e.KUBECONFIG,
      apiTimeoutMs: e.KUBERNETES_API_TIMEOUT_MS,
    },
  };
}

/** What sync-quickbooks needs beyond the common settings; throws a ConfigError naming the first gap. */
export function requireQuickBooksConfig(config: Config): void {
  if (!config.quickbooks.clientId) throw new ConfigError('QUICKBOOKS_CLIENT_ID is required by sync-quickbooks (the Intuit app client id)');
  if (!config.quickbooks.clientSecret) throw new ConfigError('QUICKBOOKS_CLIENT_SECRET is required by sync-quickbooks (the Intuit app client secret)');
  if (!config.tokenEncryptionKey) throw new ConfigError('TOKEN_ENCRYPTION_KEY is required by sync-quickbooks (32 bytes of base64; make one with: openssl rand -base64 32)');
  // A token refresh holds the integration's row lock in a transaction across Intuit's
  // token call: a server-side idle limit shorter than that call would end the session
  // (and the run, exit 3) whenever Intuit is slow.
  const idle = config.databaseTimeouts.idleInTransactionTimeoutMs;
  if (idle > 0 && idle <= config.quickbooks.timeoutMs) {
    throw new ConfigError(`DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS (${idle}) must be longer than QUICKBOOKS_TIMEOUT_MS (${config.quickbooks.timeoutMs}) for sync-quickbooks: a token refresh holds its row lock across that call`);
  }
}

/** The secret values of a configuration, for the redactor. */
export function secretsOf(config: Config): string[] {
  const out: string[] = [];
  for (const v of [config.email.sendgridApiKey, config.quickbooks.clientSecret, config.quickbooks.clientId]) if (v) out.push(v);
  for (const k of [config.tokenEncryptionKey, config.tokenEncryptionKeyPrevious]) if (k) out.push(k.toString('base64'), k.toString('base64url'));
  if (config.databaseUrl) {
    const password = safePassword(config.databaseUrl);
    if (password) out.push(password, decodeURIComponent(password));
  }
  return out;
}

function safePassword(databaseUrl: string): string | undefined {
  try {
    return new URL(databaseUrl).password || undefined;
  } catch {
    return undefined;
  }
}
