/**
 * Fault-injection helpers: row counts that say whether anything was duplicated or
 * half-written, the environment of a CLI run against the loopback servers, and a
 * way to wait for N occurrences of a log event in a child's stderr.
 */
import type { ChildProcess } from 'node:child_process';
import type { Knex } from 'knex';
import { startSendGridServer, type SendGridServer } from '../support/sendgrid-server.ts';
import { backends, createTestDb, type TestDb } from '../support/db.ts';

const n = async (q: Knex.QueryBuilder): Promise<number> => Number(((await q.count({ n: '*' })) as Array<{ n: string | number }>)[0]!.n);

export interface Counts {
  signals: number;
  openSignals: number;
  ledger: Record<string, number>;
  reports: number;
  periods: number;
  emails: Record<string, number>;
  runs: Record<string, number>;
}

/** Everything a job writes, counted. */
export async function counts(db: Knex): Promise<Counts> {
  const group = async (table: string, column: string) => {
    const rows: Array<Record<string, unknown>> = await db(table).select(column).count({ n: '*' }).groupBy(column);
    return Object.fromEntries(rows.map((r) => [String(r[column]), Number(r.n)]));
  };
  return {
    signals: await n(db('signals')),
    openSignals: await n(db('signals').whereNull('resolved_at')),
    ledger: await group('value_ledger_entries', 'entry_type'),
    reports: await n(db('drift_reports')),
    periods: await n(db('financial_periods')),
    emails: await group('email_log', 'status'),
    runs: await group('exitosx_cron.runs', 'status'),
  };
}

/** The SendGrid loopback's deliveries (accepted, or received in full by a hanging one) per idempotency key: none may exceed 1. */
export function acceptedPerKey(sendgrid: SendGridServer): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of sendgrid.delivered()) {
    const key = (r.body.custom_args as Record<string, string> | undefined)?.idempotency_key ?? '?';
    m.set(key, (m.get(key) ?? 0) + 1);
  }
  return m;
}

export function maxPerKey(sendgrid: SendGridServer): number {
  return Math.max(0, ...acceptedPerKey(sendgrid).values());
}

export function sendgridEnv(sendgrid: SendGridServer, over: Record<string, string> = {}): Record<string, string> {
  // LOG_LEVEL debug: the tests watch the per-email `email:sent` lines (debug level) to act mid-run.
  return { SENDGRID_API_KEY: sendgrid.apiKey, SENDGRID_API_URL: sendgrid.url, EMAIL_MAX_RETRIES: '1', LOG_LEVEL: 'debug', ...over };
}

/**
 * An onStderr hook that calls `act(child)` once, when `event` has appeared `times`
 * times in the child's JSON log lines (counted across chunks).
 */
export function after(event: string, times: number, act: (child: ChildProcess) => void): (text: string, child: ChildProcess) => void {
  let seen = 0;
  let done = false;
  let rest = '';
  return (text, child) => {
    const lines = (rest + text).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.includes(`"${event}"`)) seen++;
    if (!done && seen >= times) {
      done = true;
      act(child);
    }
  };
}

/** A clock `ms` after `d`. */
export const later = (d: Date, ms: number) => new Date(d.getTime() + ms);
export const HOUR = 3600_000;
export const DAY = 86_400_000;

/**
 * The fault suites' common fixture: a fresh PostgreSQL test database and a loopback
 * SendGrid for the suite, emptied and reset before each test. `use` receives both
 * once they are up.
 */
export function usePostgresAndSendGrid(use: (db: TestDb, sendgrid: SendGridServer) => void): void {
  let t: TestDb | undefined;
  let sendgrid: SendGridServer | undefined;
  before(async function () {
    if (!backends().includes('postgres')) this.skip();
    t = await createTestDb('postgres');
    sendgrid = await startSendGridServer();
    use(t, sendgrid);
  });
  // `after` in this module is the stderr-event helper above; this is mocha's hook.
  (globalThis as unknown as { after: Mocha.HookFunction }).after(async () => {
    await sendgrid?.close();
    await t?.close();
  });
  beforeEach(async () => {
    await t!.truncate();
    sendgrid!.recover();
    sendgrid!.requests.length = 0;
  });
}
