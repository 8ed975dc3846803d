/**
 * What a job run left in the database, as a fingerprint: counts of what it wrote
 * (rows stamped with the run's fixed clock), a hash of the ids of the items it
 * wrote for, and duplicates (an item written twice). The sharded run must leave
 * the same fingerprint as the single process, with no duplicates: then the four
 * shards together processed every item exactly once.
 */
import type { Knex } from 'knex';
import type { JobName } from './jobs.ts';

export type Fingerprint = Record<string, string | number>;

const one = async (db: Knex, sql: string, bindings: Record<string, unknown>): Promise<Fingerprint> => {
  const { rows } = await db.raw<{ rows: Fingerprint[] }>(sql, bindings);
  return Object.fromEntries(Object.entries(rows[0] ?? {}).map(([k, v]) => [k, typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : (v ?? '')])) as Fingerprint;
};

export function fingerprint(db: Knex, job: JobName, now: Date): Promise<Fingerprint> {
  const b = { now };
  switch (job) {
    case 'detect-inactivity':
      return one(db, `select
          (select count(*) from signals where event_type = 'user_inactivity' and created_at = :now) as signals_created,
          (select md5(coalesce(string_agg(company_id || '/' || user_id, ',' order by company_id, user_id), '')) from signals where event_type = 'user_inactivity' and created_at = :now) as created_items_md5,
          (select count(*) from value_ledger_entries where entry_type = 'SIGNAL_ESCALATED' and created_at = :now) as escalated,
          (select count(*) from value_ledger_entries where entry_type = 'SIGNAL_RESOLVED' and created_at = :now) as resolved,
          (select count(*) from email_log where email_type = 'INACTIVITY_NUDGE' and created_at = :now) as nudges,
          (select count(*) from email_log where email_type = 'INACTIVITY_NUDGE' and created_at = :now and status = 'SENT') as nudges_sent,
          (select count(*) from (select 1 from signals where event_type = 'user_inactivity' and created_at = :now group by company_id, user_id having count(*) > 1) d) as duplicate_signals,
          (select count(*) from (select 1 from value_ledger_entries where created_at = :now and signal_id is not null group by signal_id, entry_type having count(*) > 1) d) as duplicate_ledger,
          (select count(*) from (select 1 from email_log where email_type = 'INACTIVITY_NUDGE' and created_at = :now group by user_id having count(*) > 1) d) as duplicate_nudges`, b);
    case 'generate-drift-reports':
      return one(db, `select
          (select count(*) from drift_reports where created_at = :now) as reports,
          (select md5(coalesce(string_agg(company_id, ',' order by company_id), '')) from drift_reports where created_at = :now) as report_items_md5,
          (select count(*) from drift_reports where created_at = :now and emailed_at is not null) as reports_emailed,
          (select count(*) from value_ledger_entries where entry_type = 'DRIFT_REPORT_GENERATED' and created_at = :now) as ledger_entries,
          (select count(*) from email_log where email_type = 'DRIFT_REPORT' and created_at = :now) as emails,
          (select count(*) from email_log where email_type = 'DRIFT_REPORT' and created_at = :now and status = 'SENT') as emails_sent,
          (select count(*) from (select 1 from drift_reports where created_at = :now group by company_id, period_start having count(*) > 1) d) as duplicate_reports,
          (select count(*) from (select 1 from value_ledger_entries where entry_type = 'DRIFT_REPORT_GENERATED' and created_at = :now group by company_id having count(*) > 1) d) as duplicate_ledger`, b);
    case 'sync-quickbooks':
      return one(db, `select
          (select count(*) from quickbooks_integrations where last_sync_at = :now) as integrations_touched,
          (select count(*) from quickbooks_integrations where last_sync_at = :now and last_sync_status = 'SUCCESS') as synced,
          (select md5(coalesce(string_agg(id, ',' order by id), '')) from quickbooks_integrations where last_sync_at = :now) as touched_items_md5,
          (select count(*) from value_ledger_entries where entry_type = 'FINANCIALS_SYNCED' and created_at = :now) as ledger_entries,
          (select count(*) from financial_periods where synced_at = :now) as periods_synced,
          (select count(*) from (select 1 from value_ledger_entries where entry_type = 'FINANCIALS_SYNCED' and created_at = :now group by details->>'integrationId' having count(*) > 1) d) as duplicate_ledger`, b);
  }
}

/** True when the sharded fingerprint equals the single one and holds no duplicates. */
export function exactlyOnce(single: Fingerprint, sharded: Fingerprint): { ok: boolean; differences: string[] } {
  const differences: string[] = [];
  for (const [k, v] of Object.entries(single)) if (sharded[k] !== v) differences.push(`${k}: single ${v}, sharded ${sharded[k]}`);
  for (const [k, v] of Object.entries(sharded)) if (k.startsWith('duplicate_') && v !== 0) differences.push(`${k}: ${v}`);
  return { ok: differences.length === 0, differences };
}
