/**
 * The QuickBooks services of one run, made from the configuration: the Accounting
 * API client (with its per-realm limits), the OAuth token endpoint, and the token
 * keys. The job that makes them owns them; they hold no open handles to close.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../telemetry/log.ts';
import { registerSecrets } from '../telemetry/redact.ts';
import { QuickBooksClient } from './client.ts';
import { TokenEndpoint } from './oauth.ts';
import type { TokenKeys } from './tokens.ts';

export interface QuickBooksServices {
  client: QuickBooksClient;
  endpoint: TokenEndpoint;
  keys: TokenKeys;
}

/** Builds the run's QuickBooks services. Call after requireQuickBooksConfig. */
export function createQuickBooksServices(config: Config, log: Logger, signal: AbortSignal): QuickBooksServices {
  const q = config.quickbooks;
  registerSecrets(q.clientSecret);
  // Intuit's limits are per realm across all our processes, and one realm's
  // integrations can land in every shard: each of n shards takes a 1/n share.
  const share = (limit: number) => Math.max(1, Math.floor(limit / config.shard.count));
  return {
    client: new QuickBooksClient({
      apiUrl: q.apiUrl, accountingMethod: q.accountingMethod, maxInFlightPerRealm: share(q.maxInFlightPerRealm), maxPerMinutePerRealm: share(q.maxPerMinutePerRealm),
      // Two reports per integration in flight at most.
      maxInFlight: q.concurrency * 2, timeoutMs: q.timeoutMs, log, signal,
    }),
    endpoint: new TokenEndpoint({ clientId: q.clientId!, clientSecret: q.clientSecret!, environment: q.environment, tokenUrl: q.tokenUrl, timeoutMs: q.timeoutMs, signal,
      // Fewer refreshes at once than connections: the run's other writes (and the
      // run history) still get one while Intuit is slow.
      maxConcurrentRefreshes: Math.max(1, config.databasePoolMax - 2) }),
    keys: { current: config.tokenEncryptionKey!, previous: config.tokenEncryptionKeyPrevious },
  };
}
