/**
 * The bench's product data, at scale, in PostgreSQL: set-based `insert … select`
 * over generate_series, one statement per call, deterministic (every "random"
 * choice is `hashint8extended(i, salt)`, PostgreSQL's stable seeded hash, so the
 * same flags always give the same rows).
 *
 * Shape for U users (C = U/10 companies, I = C/5 QuickBooks integrations):
 * - companies: C, 2% deleted.
 * - users: U, 1% deleted. Users are numbered in blocks of ten: user 10(i-1)+1 owns
 *   company i, the next nine are its ADVISOR and MEMBERs (so owners and members
 *   interleave in id order, as in a real table); 2% of companies get a second
 *   owner (the previous company's), so some owners own two companies.
 * - user_sessions: 3U, each on a user drawn at random and a last activity spread
 *   uniformly over the last 120 days. A user's latest activity is then older than
 *   21 days with probability e^(-3·21/120) ≈ 59%: about 59k of the 100k owners at
 *   1M users (users without any session, ~5%, count from created_at, long ago).
 * - assessments: 3 for 90% of companies (the third IN_PROGRESS for 10% of those),
 *   bri_score and the six category_scores; the latest spread over the last 75 days
 *   so that some fall in the reported month.
 * - tasks: 10 per company (PENDING, IN_PROGRESS, COMPLETED, DISMISSED); valuations:
 *   3 per company; financial periods: the last 10 months for 10% of companies.
 * - quickbooks_integrations: I, tokens encrypted (a few distinct ciphertexts made in
 *   JS, reused); 1% share two "accountant" realms (to exercise the per-realm
 *   limits), 5% with an access token expiring (a refresh), a few skipped, disabled,
 *   disconnected or needing re-authorisation.
 * - signals: an open MEDIUM user_inactivity signal for 5% of owners (to be
 *   escalated, resolved or left), one other signal for half of the companies;
 *   email_preferences for 5% of users; a nudge sent 3 days ago to 1% of owners.
 */
import type { Knex } from 'knex';

export interface Scale {
  users: number;
  companies: number;
  sessions: number;
  integrations: number;
}

/** Sizes derived from the number of users (companies = users/10, integrations = companies/5). */
export function scaleFor(users: number, overrides: Partial<Scale> = {}): Scale {
  const companies = overrides.companies ?? Math.max(1, Math.floor(users / 10));
  return {
    users,
    companies,
    sessions: overrides.sessions ?? users * 3,
    integrations: overrides.integrations ?? Math.floor(companies / 5),
  };
}

/** A deterministic number in [0, 1) for (expression, salt): PostgreSQL's seeded 64-bit hash. */
const u = (expr: string, salt: number) => `((hashint8extended((${expr})::int8, ${salt}) & 2147483647)::float8 / 2147483648.0)`;
const pad = (expr: string, width: number) => `lpad((${expr})::text, ${width}, '0')`;
export const companyId = (expr: string) => `'cmp_' || ${pad(expr, 7)}`;
export const userId = (expr: string) => `'usr_' || ${pad(expr, 8)}`;
/** The owner (user number) of company i. */
const ownerOf = (i: string) => `(10 * ((${i}) - 1) + 1)`;
const days = (expr: string) => `((${expr}) * interval '1 day')`;

const TRADES = ['Plumbing', 'Dental', 'Logistics', 'Bakery', 'Software', 'Landscaping', 'HVAC', 'Print', 'Veterinary', 'Roofing', 'Fitness', 'Catering'];
const TASK_TITLES = [
  'Reconcile 24 months of books', 'Separate personal expenses', 'Document the sales process', 'Train a second-in-command',
  'Write the month-end close checklist', 'Map supplier contracts', 'Summarise the top 10 customers', 'Write a competitor overview',
  'Renew the commercial lease', 'Register trademarks', 'Decide your post-sale role', 'Set your walk-away number',
];
const CATEGORIES = ['FINANCIAL', 'TRANSFERABILITY', 'OPERATIONAL', 'MARKET', 'LEGAL_TAX', 'PERSONAL'];
const sqlArray = (xs: string[]) => `array[${xs.map((x) => `'${x.replace(/'/g, "''")}'`).join(', ')}]`;

/** Encrypted tokens to spread over the integrations (made in JS with the bench key). */
export interface TokenSet {
  access: string[];
  refresh: string[];
}

/** One named statement of the generator. */
export interface Step {
  table: string;
  sql: string;
}

/**
 * The generator's statements, in two independent lanes (run on two connections at
 * once: foreign-key triggers are off during the load, so order across lanes does
 * not matter). `now` is the bench's fixed clock.
 */
export function generatorSteps(scale: Scale, now: Date, tokens: TokenSet): Step[][] {
  const N = `'${now.toISOString()}'::timestamptz`;
  const { users: U, companies: C, sessions: S } = scale;
  const I = Math.min(scale.integrations, C);
  // Integrations go to every (C/I)-th company, so they spread over the id range.
  const stride = Math.max(1, Math.floor(C / Math.max(I, 1)));
  // The first 1% of integrations (at least 2) share two "accountant" realms.
  const sharedCount = Math.max(2, Math.floor(I / 100));
  const month0 = `date_trunc('month', ${N} at time zone 'UTC')::date`;

  const people: Step[] = [
    {
      table: 'users',
      sql: `insert into users (id, email, name, created_at, deleted_at)
        select ${userId('j')}, 'user' || j || '@bench.example.com', 'Bench User ' || j,
               ${N} - ${days(`150 + (j % 600)`)},
               case when ${u('j', 2)} < 0.01 then ${N} - interval '5 days' end
          from generate_series(1, ${U}) j`,
    },
    {
      table: 'user_sessions',
      sql: `insert into user_sessions (id, user_id, created_at, last_active_at)
        select 'ses_' || ${pad('s', 9)}, ${userId(`1 + floor(${u('s', 4)} * ${U})::int8`)},
               ${N} - ${days(`${u('s', 5)} * 120`)} - interval '2 hours',
               ${N} - ${days(`${u('s', 5)} * 120`)}
          from generate_series(1, ${S}) s`,
    },
    {
      table: 'email_preferences',
      sql: `insert into email_preferences (user_id, drift_reports, inactivity_nudges, unsubscribed_all, updated_at)
        select ${userId('j')}, ${u('j', 71)} >= 0.3, ${u('j', 72)} >= 0.3, ${u('j', 73)} < 0.1, ${N} - interval '30 days'
          from generate_series(1, ${U}) j
         where ${u('j', 7)} < 0.05`,
    },
    {
      table: 'email_log',
      sql: `insert into email_log (id, user_id, to_email, email_type, idempotency_key, status, provider_message_id, created_at, sent_at)
        select 'eml_prev_' || i, ${userId(ownerOf('i'))}, 'user' || ${ownerOf('i')} || '@bench.example.com', 'INACTIVITY_NUDGE',
               'inactivity:' || ${userId(ownerOf('i'))} || ':previous:MEDIUM', 'SENT', 'prev-' || i,
               ${N} - interval '3 days', ${N} - interval '3 days'
          from generate_series(1, ${C}) i
         where ${u('i', 13)} < 0.01`,
    },
  ];

  const companies: Step[] = [
    {
      table: 'companies',
      sql: `insert into companies (id, name, created_at, deleted_at)
        select ${companyId('i')}, (${sqlArray(TRADES)})[1 + i % 12] || ' Company ' || i,
               ${N} - ${days(`400 + (i % 700)`)},
               case when ${u('i', 1)} < 0.02 then ${N} - interval '10 days' end
          from generate_series(1, ${C}) i`,
    },
    {
      table: 'company_members',
      sql: `insert into company_members (company_id, user_id, role, created_at)
        select ${companyId('least((j - 1) / 10 + 1, ' + C + ')')}, ${userId('j')},
               case when j % 10 = 1 and (j - 1) / 10 + 1 <= ${C} then 'OWNER' when j % 10 = 2 then 'ADVISOR' else 'MEMBER' end,
               ${N} - interval '300 days'
          from generate_series(1, ${U}) j
        union all
        select ${companyId('i')}, ${userId(ownerOf('i - 1'))}, 'OWNER', ${N} - interval '200 days'
          from generate_series(2, ${C}) i
         where ${u('i', 3)} < 0.02`,
    },
    {
      table: 'assessments',
      sql: `insert into assessments (id, company_id, status, bri_score, category_scores, completed_at, created_at)
        select 'asm_' || ${pad('i', 7)} || '_' || k, ${companyId('i')}, x.status,
               case when x.status = 'COMPLETED' then x.score end,
               case when x.status = 'COMPLETED' then jsonb_build_object(${CATEGORIES.map((c, n) => `'${c}', round(least(100, greatest(0, x.score + (${u(`i * 16 + k * 6 + ${n}`, 81)} - 0.5) * 30))::numeric, 2)`).join(', ')}) end,
               case when x.status = 'COMPLETED' then x.at end,
               x.at - interval '3 days'
          from generate_series(1, ${C}) i
          cross join generate_series(1, 3) k
          cross join lateral (
            select case when k = 3 and ${u('i', 9)} < 0.1 then 'IN_PROGRESS' else 'COMPLETED' end as status,
                   round((35 + ${u('i', 10)} * 40 + k * ${u('i', 11)} * 8 - (k - 1) * ${u('i', 12)} * 6)::numeric, 2) as score,
                   ${N} - case k when 1 then ${days(`300 + ${u('i', 14)} * 60`)} when 2 then ${days(`60 + ${u('i', 15)} * 60`)} else ${days(`${u('i', 16)} * 75`)} end as at
          ) x
         where ${u('i', 8)} < 0.9`,
    },
    {
      table: 'valuation_snapshots',
      sql: `insert into valuation_snapshots (id, company_id, valuation, currency, created_at)
        select 'val_' || ${pad('i', 7)} || '_' || k, ${companyId('i')},
               round((500000 + ${u('i', 20)} * 4500000) * (1 + (k - 2) * (${u('i * 3 + k', 21)} - 0.4) * 0.2))::numeric(16, 2), 'USD',
               ${N} - case k when 1 then ${days(`150 + ${u('i', 22)} * 30`)} when 2 then ${days(`30 + ${u('i', 23)} * 30`)} else ${days(`${u('i', 24)} * 20`)} end
          from generate_series(1, ${C}) i
          cross join generate_series(1, 3) k`,
    },
    {
      table: 'tasks',
      sql: `insert into tasks (id, company_id, assignee_id, title, category, status, due_at, completed_at, created_at)
        select 'tsk_' || ${pad('i', 7)} || '_' || ${pad('k', 2)}, ${companyId('i')}, ${userId(ownerOf('i'))},
               (${sqlArray(TASK_TITLES)})[1 + (i + k) % 12], (${sqlArray(CATEGORIES)})[1 + (i + k) % 6],
               x.status,
               ${N} + ${days(`${u('i * 10 + k', 31)} * 120 - 60`)},
               case when x.status = 'COMPLETED' then ${N} - ${days(`${u('i * 10 + k', 32)} * 90`)} end,
               ${N} - ${days(`90 + ${u('i * 10 + k', 33)} * 120`)}
          from generate_series(1, ${C}) i
          cross join generate_series(1, 10) k
          cross join lateral (
            select case when ${u('i * 10 + k', 30)} < 0.40 then 'PENDING' when ${u('i * 10 + k', 30)} < 0.55 then 'IN_PROGRESS'
                        when ${u('i * 10 + k', 30)} < 0.90 then 'COMPLETED' else 'DISMISSED' end as status
          ) x`,
    },
    {
      table: 'financial_periods',
      sql: `insert into financial_periods (id, company_id, period_start, period_end, revenue, cogs, gross_profit, operating_expenses, ebitda, net_income,
                                           total_assets, total_liabilities, equity, cash, source, synced_at, created_at, updated_at)
        select 'fp_' || ${pad('i', 7)} || '_' || ${pad('m', 2)}, ${companyId('i')}, x.start, (x.start + interval '1 month' - interval '1 day')::date,
               x.rev, round(x.rev * 0.4, 2), round(x.rev * 0.6, 2), round(x.rev * 0.45, 2), round(x.rev * 0.18, 2), round(x.rev * 0.12, 2),
               round(x.rev * 6, 2), round(x.rev * 3, 2), round(x.rev * 3, 2), round(x.rev * 0.8, 2),
               case when i % 500 = 0 then 'MANUAL' else 'QUICKBOOKS' end,
               case when i % 500 = 0 then null else ${N} - interval '26 hours' end,
               ${N} - interval '30 days', ${N} - interval '26 hours'
          from generate_series(${stride * 2}, ${C}, ${stride * 2}) i
          cross join generate_series(1, 10) m
          cross join lateral (
            select (${month0} - make_interval(months => 11 - m))::date as start,
                   round((40000 + ${u('i', 40)} * 200000 + ${u('i * 10 + m', 41)} * 20000)::numeric, 2) as rev
          ) x`,
    },
    {
      table: 'quickbooks_integrations',
      sql: `insert into quickbooks_integrations (id, company_id, realm_id, access_token, refresh_token, access_token_expires_at, refresh_token_expires_at,
                                                 auto_sync_enabled, disconnected_at, needs_reauth, last_sync_at, last_sync_status, created_at, updated_at)
        select 'qbi_' || ${pad('i', 7)}, ${companyId('i')},
               case when i / ${stride} <= ${sharedCount} then 'realm-shared-' || (i / ${stride}) % 2 else '9130' || ${pad('i', 12)} end,
               (${sqlArray(tokens.access)})[1 + i % ${tokens.access.length}], (${sqlArray(tokens.refresh)})[1 + i % ${tokens.refresh.length}],
               case when ${u('i', 50)} < 0.05 then ${N} - interval '1 hour' else ${N} + interval '55 minutes' end,
               ${N} + interval '90 days',
               ${u('i', 51)} >= 0.01,
               case when ${u('i', 52)} < 0.01 then ${N} - interval '20 days' end,
               ${u('i', 53)} < 0.01,
               case when ${u('i', 54)} < 0.02 then ${N} - interval '2 hours' when i % ${stride * 2} = 0 then ${N} - interval '26 hours' end,
               case when ${u('i', 54)} < 0.02 or i % ${stride * 2} = 0 then 'SUCCESS' end,
               ${N} - interval '400 days', ${N} - interval '26 hours'
          from generate_series(${stride}, ${stride * I}, ${stride}) i`,
    },
    {
      table: 'signals',
      sql: `insert into signals (id, company_id, user_id, channel, event_type, category, severity, confidence, title, metadata, created_at, updated_at, resolved_at, resolution)
        select 'sig_ina_' || ${pad('i', 7)}, ${companyId('i')}, ${userId(ownerOf('i'))}, 'TIME_DECAY', 'user_inactivity', 'PERSONAL', 'MEDIUM', 'CONFIDENT',
               'Owner inactive for 25 days', jsonb_build_object('daysInactive', 25), ${N} - interval '10 days', ${N} - interval '10 days', null, null
          from generate_series(1, ${C}) i
         where ${u('i', 60)} < 0.05
        union all
        select 'sig_oth_' || ${pad('i', 7)}, ${companyId('i')}, null, 'ASSESSMENT', 'assessment_drop', (${sqlArray(CATEGORIES)})[1 + i % 6],
               (array['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'])[1 + floor(${u('i', 62)} * 4)::int], 'LIKELY',
               'Assessment score dropped', '{}'::jsonb, x.at, x.at,
               case when ${u('i', 63)} < 0.3 then x.at + ${days(`${u('i', 64)} * 20`)} end,
               case when ${u('i', 63)} < 0.3 then 'RESOLVED' end
          from generate_series(1, ${C}) i
          cross join lateral (select ${N} - ${days(`${u('i', 65)} * 90`)} as at) x
         where ${u('i', 61)} < 0.5`,
    },
  ];
  return [people, companies];
}

/** Product tables, for counts and VACUUM ANALYZE. */
export const PRODUCT_TABLES = [
  'users', 'user_sessions', 'companies', 'company_members', 'email_preferences', 'assessments', 'valuation_snapshots', 'tasks',
  'financial_periods', 'quickbooks_integrations', 'signals', 'value_ledger_entries', 'drift_reports', 'email_log',
];

/** Row counts of the product tables. */
export async function tableCounts(db: Knex): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const { rows } = await db.raw<{ rows: Array<Record<string, number>> }>(`select ${PRODUCT_TABLES.map((t) => `(select count(*) from ${t})::int8 as ${t}`).join(', ')}`);
  for (const t of PRODUCT_TABLES) out[t] = Number(rows[0]![t]);
  return out;
}
