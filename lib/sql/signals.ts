/**
 * signals and their value_ledger_entries. Every signal created, escalated or
 * resolved writes one ledger entry in the same transaction (pass the transaction
 * as `db`). Deduplication rests on the partial unique index
 * `signals_one_open_per_subject` (company, event type, user) WHERE resolved_at IS
 * NULL: an insert that would open a second one does nothing, even when two runs race.
 */
import type { Knex } from 'knex';

export type Severity = 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export type LedgerEntryType = 'SIGNAL_CREATED' | 'SIGNAL_ESCALATED' | 'SIGNAL_RESOLVED' | 'DRIFT_REPORT_GENERATED' | 'FINANCIALS_SYNCED';

export interface NewSignal {
  companyId: string;
  userId: string | null;
  channel: 'TIME_DECAY' | 'INTEGRATION' | 'ASSESSMENT' | 'MANUAL';
  eventType: string;
  category: 'FINANCIAL' | 'TRANSFERABILITY' | 'OPERATIONAL' | 'MARKET' | 'LEGAL_TAX' | 'PERSONAL';
  severity: Severity;
  confidence: 'UNCERTAIN' | 'LIKELY' | 'CONFIDENT';
  title: string;
  description?: string | null;
  metadata: Record<string, unknown>;
}

export interface LedgerEntry {
  companyId: string;
  signalId: string | null;
  entryType: LedgerEntryType;
  summary: string;
  details: Record<string, unknown>;
}

/** Appends ledger entries (one multi-row insert). */
export async function insertLedgerEntries(db: Knex, entries: LedgerEntry[], now: Date): Promise<void> {
  if (!entries.length) return;
  await db('value_ledger_entries').insert(
    entries.map((e) => ({ company_id: e.companyId, signal_id: e.signalId, entry_type: e.entryType, summary: e.summary, details: JSON.stringify(e.details), created_at: now })),
  );
}

/**
 * Opens a signal unless one of its kind is already open for the company and user;
 * writes SIGNAL_CREATED when it opened one. Returns the new id, or null.
 */
export async function openSignal(db: Knex, signal: NewSignal, now: Date): Promise<string | null> {
  const { rows } = await db.raw<{ rows: Array<{ id: string }> }>(
    `insert into signals (company_id, user_id, channel, event_type, category, severity, confidence, title, description, metadata, created_at, updated_at)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?, ?)
     on conflict (company_id, event_type, coalesce(user_id, '')) where resolved_at is null do nothing
     returning id`,
    [signal.companyId, signal.userId, signal.channel, signal.eventType, signal.category, signal.severity, signal.confidence, signal.title, signal.description ?? null, JSON.stringify(signal.metadata), now, now],
  );
  const id = rows[0]?.id ?? null;
  if (id) {
    await insertLedgerEntries(db, [{ companyId: signal.companyId, signalId: id, entryType: 'SIGNAL_CREATED', summary: signal.title, details: { eventType: signal.eventType, severity: signal.severity, ...signal.metadata } }], now);
  }
  return id;
}

/** The open signal of a kind for a company (and user), if any. */
export async function findOpenSignal(db: Knex, companyId: string, eventType: string, userId: string | null): Promise<{ id: string; severity: Severity; title: string; metadata: Record<string, unknown> } | undefined> {
  return db('signals')
    .select('id', 'severity', 'title', 'metadata')
    .where({ company_id: companyId, event_type: eventType })
    .whereRaw(`coalesce(user_id, '') = ?`, [userId ?? ''])
    .whereNull('resolved_at')
    .first();
}

/** Raises an open signal's severity (and title/metadata) with a SIGNAL_ESCALATED entry. Returns false if it was no longer open. */
export async function escalateSignal(db: Knex, s: { id: string; companyId: string; severity: Severity; title?: string; metadata: Record<string, unknown> }, now: Date): Promise<boolean> {
  const updated = await db('signals')
    .where({ id: s.id })
    .whereNull('resolved_at')
    .update({ severity: s.severity, ...(s.title ? { title: s.title } : {}), metadata: JSON.stringify(s.metadata), updated_at: now });
  if (!updated) return false;
  await insertLedgerEntries(db, [{ companyId: s.companyId, signalId: s.id, entryType: 'SIGNAL_ESCALATED', summary: s.title ?? `Signal escalated to ${s.severity}`, details: { severity: s.severity, ...s.metadata } }], now);
  return true;
}

/** Resolves open signals with a SIGNAL_RESOLVED entry each; returns the ids it resolved. */
export async function resolveSignals(db: Knex, ids: string[], resolution: string, now: Date): Promise<string[]> {
  if (!ids.length) return [];
  const resolved: Array<{ id: string; company_id: string; title: string }> = await db('signals')
    .whereIn('id', ids)
    .whereNull('resolved_at')
    .update({ resolved_at: now, resolution, updated_at: now })
    .returning(['id', 'company_id', 'title']);
  await insertLedgerEntries(db, resolved.map((r) => ({ companyId: r.company_id, signalId: r.id, entryType: 'SIGNAL_RESOLVED', summary: `Resolved: ${r.title}`, details: { resolution } })), now);
  return resolved.map((r) => r.id);
}
