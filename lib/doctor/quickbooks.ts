/**
 * Intuit app credentials accepted: the same one token call as sync-quickbooks'
 * preflight (a refresh with a token that cannot exist: `invalid_grant` means Intuit
 * knows our client, `invalid_client` that it does not). No integration is touched.
 */
import type { Config } from '../config.ts';
import { messageOf } from '../errors.ts';
import { QuickBooksClientError, QuickBooksTransientError } from '../quickbooks/errors.ts';
import { TokenEndpoint } from '../quickbooks/oauth.ts';
import { fail, notConfigured, ok, where, type CheckResult } from './check.ts';

const CHECK = 'quickbooks';

/** The endpoint's message without the probe's stand-in realm. */
const plain = (err: unknown) => messageOf(err).replace(/ for realm credentials-check| \(realm credentials-check\)/g, '');

export async function checkQuickBooks(config: Config, now: Date): Promise<CheckResult> {
  const q = config.quickbooks;
  if (!q.clientId && !q.clientSecret) return notConfigured(CHECK, 'QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET are not set: sync-quickbooks cannot run');
  if (!q.clientId || !q.clientSecret) return fail(CHECK, `${q.clientId ? 'QUICKBOOKS_CLIENT_SECRET' : 'QUICKBOOKS_CLIENT_ID'} is not set (the other one is): set both, the Intuit app's credentials`);
  const endpoint = new TokenEndpoint({ clientId: q.clientId, clientSecret: q.clientSecret, environment: q.environment, tokenUrl: q.tokenUrl, timeoutMs: q.timeoutMs });
  try {
    await endpoint.probeCredentials(now);
    return ok(CHECK, `Intuit accepted the app credentials (${q.environment}, token endpoint ${where(q.tokenUrl)})`);
  } catch (err) {
    if (err instanceof QuickBooksClientError) return fail(CHECK, messageOf(err));
    if (err instanceof QuickBooksTransientError) return fail(CHECK, `${plain(err)}: no verdict on the credentials (at ${where(q.tokenUrl)}; check QUICKBOOKS_TOKEN_URL and the NetworkPolicy's intuit egress)`);
    return fail(CHECK, `${plain(err)} (at ${where(q.tokenUrl)})`);
  }
}
