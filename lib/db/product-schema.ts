/**
 * The product database schema, verbatim from contract/product-schema.sql (the
 * product team owns it). `migrate` creates it on an empty database only; a test
 * compares the catalog it produces with test/fixtures/product-schema.sql.
 */
export const PRODUCT_SCHEMA_SQL = String.raw`
-- Exit OSx product database: the tables that the cron suite reads and writes.
--
-- The product application owns this schema; the suite runs against it as it is.
-- The suite's own migrations must create exactly these tables, columns, types,
-- nullability, defaults, checks and indexes (for the embedded default and for
-- tests), and may add tables of their own (run history, locks, ...), never
-- columns on these. PostgreSQL 15+ (and PGlite) syntax.

CREATE TABLE users (
  id          text PRIMARY KEY,
  email       text NOT NULL UNIQUE,
  name        text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz
);

-- One row per login session; last_active_at moves while the user uses the app.
CREATE TABLE user_sessions (
  id              text PRIMARY KEY,
  user_id         text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_active_at  timestamptz NOT NULL
);
CREATE INDEX user_sessions_user_last_active ON user_sessions (user_id, last_active_at DESC);

CREATE TABLE companies (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz
);

-- Who belongs to a company. The OWNER is the person the reports and nudges are for.
CREATE TABLE company_members (
  company_id  text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role        text NOT NULL CHECK (role IN ('OWNER', 'ADVISOR', 'MEMBER')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (company_id, user_id)
);
CREATE INDEX company_members_user ON company_members (user_id);

-- No row means every default (all emails wanted).
CREATE TABLE email_preferences (
  user_id            text PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  drift_reports      boolean NOT NULL DEFAULT true,
  inactivity_nudges  boolean NOT NULL DEFAULT true,
  unsubscribed_all   boolean NOT NULL DEFAULT false,
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Buyer Readiness Index (BRI) assessments. A COMPLETED one carries the score
-- (0-100) and one score per category:
-- {"FINANCIAL": 0-100, "TRANSFERABILITY": ..., "OPERATIONAL": ..., "MARKET": ...,
--  "LEGAL_TAX": ..., "PERSONAL": ...}
CREATE TABLE assessments (
  id               text PRIMARY KEY,
  company_id       text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  status           text NOT NULL CHECK (status IN ('IN_PROGRESS', 'COMPLETED')),
  bri_score        numeric(5,2) CHECK (bri_score >= 0 AND bri_score <= 100),
  category_scores  jsonb,
  completed_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assessments_company_completed ON assessments (company_id, completed_at);

CREATE TABLE valuation_snapshots (
  id          text PRIMARY KEY,
  company_id  text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  valuation   numeric(16,2) NOT NULL,
  currency    char(3) NOT NULL DEFAULT 'USD',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX valuation_snapshots_company_created ON valuation_snapshots (company_id, created_at);

CREATE TABLE tasks (
  id            text PRIMARY KEY,
  company_id    text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  assignee_id   text REFERENCES users(id) ON DELETE SET NULL,
  title         text NOT NULL,
  category      text,
  status        text NOT NULL CHECK (status IN ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'DISMISSED')),
  due_at        timestamptz,
  completed_at  timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_company_status ON tasks (company_id, status);

-- Monthly financials: one row per company and calendar month.
CREATE TABLE financial_periods (
  id                  text PRIMARY KEY DEFAULT gen_random_uuid()::text,
  company_id          text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  period_start        date NOT NULL,   -- first day of the month
  period_end          date NOT NULL,   -- last day of the month
  revenue             numeric(16,2),
  cogs                numeric(16,2),
  gross_profit        numeric(16,2),
  operating_expenses  numeric(16,2),
  ebitda              numeric(16,2),
  net_income          numeric(16,2),
  total_assets        numeric(16,2),
  total_liabilities   numeric(16,2),
  equity              numeric(16,2),
  cash                numeric(16,2),
  source              text NOT NULL CHECK (source IN ('MANUAL', 'QUICKBOOKS')),
  synced_at           timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, period_start)
);

-- OAuth tokens are stored encrypted (format in INTERFACES.md, "Token encryption").
CREATE TABLE quickbooks_integrations (
  id                        text PRIMARY KEY,
  company_id                text NOT NULL UNIQUE REFERENCES companies(id) ON DELETE CASCADE,
  realm_id                  text NOT NULL,
  access_token              text NOT NULL,
  refresh_token             text NOT NULL,
  access_token_expires_at   timestamptz NOT NULL,
  refresh_token_expires_at  timestamptz NOT NULL,
  auto_sync_enabled         boolean NOT NULL DEFAULT true,
  disconnected_at           timestamptz,
  needs_reauth              boolean NOT NULL DEFAULT false,
  last_sync_at              timestamptz,
  last_sync_status          text CHECK (last_sync_status IN ('SUCCESS', 'FAILED')),
  last_sync_error           text,
  created_at                timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Signals: things that move a company's exit readiness, shown on its dashboard.
CREATE TABLE signals (
  id           text PRIMARY KEY DEFAULT gen_random_uuid()::text,
  company_id   text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  user_id      text REFERENCES users(id) ON DELETE SET NULL,
  channel      text NOT NULL CHECK (channel IN ('TIME_DECAY', 'INTEGRATION', 'ASSESSMENT', 'MANUAL')),
  event_type   text NOT NULL,
  category     text NOT NULL CHECK (category IN ('FINANCIAL', 'TRANSFERABILITY', 'OPERATIONAL', 'MARKET', 'LEGAL_TAX', 'PERSONAL')),
  severity     text NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
  confidence   text NOT NULL CHECK (confidence IN ('UNCERTAIN', 'LIKELY', 'CONFIDENT')),
  title        text NOT NULL,
  description  text,
  metadata     jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  resolved_at  timestamptz,
  resolution   text
);
-- At most one unresolved signal of a kind per company and user: deduplication
-- holds even when two runs race.
CREATE UNIQUE INDEX signals_one_open_per_subject
  ON signals (company_id, event_type, coalesce(user_id, ''))
  WHERE resolved_at IS NULL;

-- The value ledger: an append-only history of what changed a company's position.
-- Every signal created, escalated or resolved writes one entry in the same transaction.
CREATE TABLE value_ledger_entries (
  id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
  company_id  text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  signal_id   text REFERENCES signals(id) ON DELETE SET NULL,
  entry_type  text NOT NULL CHECK (entry_type IN ('SIGNAL_CREATED', 'SIGNAL_ESCALATED', 'SIGNAL_RESOLVED',
                                                  'DRIFT_REPORT_GENERATED', 'FINANCIALS_SYNCED')),
  summary     text NOT NULL,
  details     jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX value_ledger_entries_company_created ON value_ledger_entries (company_id, created_at);

CREATE TABLE drift_reports (
  id               text PRIMARY KEY DEFAULT gen_random_uuid()::text,
  company_id       text NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
  period_start     timestamptz NOT NULL,
  period_end       timestamptz NOT NULL,
  bri_score_start  numeric(5,2),
  bri_score_end    numeric(5,2),
  bri_delta        numeric(6,2),
  direction        text NOT NULL CHECK (direction IN ('IMPROVING', 'STABLE', 'DECLINING', 'NO_DATA')),
  report           jsonb NOT NULL,
  emailed_at       timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, period_start)
);

-- Every email the platform sends or deliberately does not send. The unique
-- idempotency key is what keeps a rerun from sending the same email twice.
CREATE TABLE email_log (
  id                   text PRIMARY KEY DEFAULT gen_random_uuid()::text,
  user_id              text REFERENCES users(id) ON DELETE SET NULL,
  to_email             text NOT NULL,
  email_type           text NOT NULL CHECK (email_type IN ('DRIFT_REPORT', 'INACTIVITY_NUDGE')),
  idempotency_key      text NOT NULL UNIQUE,
  status               text NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'SUPPRESSED')),
  provider_message_id  text,
  error                text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  sent_at              timestamptz
);
CREATE INDEX email_log_user_type_created ON email_log (user_id, email_type, created_at DESC);
`;
