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

/**
 * Opens many signals in one statement; each one whose (company, event type, user)
 * already has an open signal is left out by the partial unique index (`ON CONFLICT
 * DO NOTHING`), so racing runs cannot open two. Writes one SIGNAL_CREATED entry per
 * signal opened (one multi-row insert). Returns the opened ones with their ids, in
 * no particular order.
 */
export async function openSignals(db: Knex, signals: NewSignal[], now: Date): Promise<Array<NewSignal & { id: string }>> {
  if (!signals.length) return [];
  const { rows: inserted } = await db.raw<{ rows: Array<{ id: string; company_id: string; user_id: string | null; event_type: string }> }>(
    `insert into signals (company_id, user_id, channel, event_type, category, severity, confidence, title, description, metadata, created_at, updated_at)
     select v.company_id, v.user_id, v.channel, v.event_type, v.category, v.severity, v.confidence, v.title, v.description, v.metadata::jsonb, ?, ?
     from json_to_recordset(?::json) as v(company_id text, user_id text, channel text, event_type text, category text, severity text,
                                            confidence text, title text, description text, metadata text)
     on conflict (company_id, event_type, coalesce(user_id, '')) where resolved_at is null do nothing
     returning id, company_id, user_id, event_type`,
    [now, now, JSON.stringify(signals.map((s) => ({
      company_id: s.companyId, user_id: s.userId, channel: s.channel, event_type: s.eventType, category: s.category, severity: s.severity,
      confidence: s.confidence, title: s.title, description: s.description ?? null, metadata: JSON.stringify(s.metadata),
    })))],
  );
  const subject = (companyId: string, eventType: string, userId: string | null) => `${companyId}\u0000${eventType}\u0000${userId ?? ''}`;
  const bySubject = new Map(signals.map((s) => [subject(s.companyId, s.eventType, s.userId), s]));
  const opened = inserted.map((r) => ({ ...bySubject.get(subject(r.company_id, r.event_type, r.user_id))!, id: r.id }));
  await insertLedgerEntries(db, opened.map((s) => ({ companyId: s.companyId, signalId: s.id, entryType: 'SIGNAL_CREATED' as const, summary: s.title, details: { eventType: s.eventType, severity: s.severity, ...s.metadata } })), now);
  return opened;
}

/** An escalation of one open signal. */
export interface Escalation {
  id: string;
  companyId: string;
  /** Only escalate from this severity (guards against a racing run that already did). */
  fromSeverity: Severity;
  severity: Severity;
  title: string;
  metadata: Record<string, unknown>;
}

/**
 * Raises the severity of many open signals in one statement (each only while it
 * is still open and still at `fromSeverity`), with one SIGNAL_ESCALATED entry per
 * signal escalated. Returns the ids escalated.
 */
export async function escalateSignals(db: Knex, escalations: Escalation[], now: Date): Promise<string[]> {
  if (!escalations.length) return [];
  const { rows } = await db.raw<{ rows: Array<{ id: string }> }>(
    `update signals s
     set severity = v.severity, title = v.title, metadata = v.metadata::jsonb, updated_at = ?
     from json_to_recordset(?::json) as v(id text, from_severity text, severity text, title text, metadata text)
     where s.id = v.id and s.resolved_at is null and s.severity = v.from_severity
     returning s.id`,
    [now, JSON.stringify(escalations.map((e) => ({ id: e.id, from_severity: e.fromSeverity, severity: e.severity, title: e.title, metadata: JSON.stringify(e.metadata) })))],
  );
  const done = new Set(rows.map((r) => r.id));
  const escalated = escalations.filter((e) => done.has(e.id));
  await insertLedgerEntries(db, escalated.map((e) => ({ companyId: e.companyId, signalId: e.id, entryType: 'SIGNAL_ESCALATED' as const, summary: e.title, details: { fromSeverity: e.fromSeverity, severity: e.severity, ...e.metadata } })), now);
  return escalated.map((e) => e.id);
}

/**
 * Resolves the open signal of a kind for a company (and user), if there is one,
 * with its SIGNAL_RESOLVED entry, and appends `entries` (other ledger entries of
 * the same change) alongside: one statement, so one round trip. Returns the id
 * resolved, or null.
 */
export async function resolveOpenSignal(db: Knex, subject: { companyId: string; eventType: string; userId: string | null }, resolution: string, now: Date, entries: LedgerEntry[] = []): Promise<string | null> {
  const ids = await resolveOpenSignalsWhere(db, 'company_id = ? and event_type = ? and coalesce(user_id, \'\') = ?', [subject.companyId, subject.eventType, subject.userId ?? ''], resolution, now, entries);
  return ids[0] ?? null;
}

/**
 * resolveOpenSignal for the company-level signal (no user) of one kind of several
 * companies at once: resolves each open one with its SIGNAL_RESOLVED entry and
 * appends `entries` alongside, in one statement. Returns the ids resolved.
 */
export async function resolveOpenCompanySignals(db: Knex, companyIds: string[], eventType: string, resolution: string, now: Date, entries: LedgerEntry[] = []): Promise<string[]> {
  if (!companyIds.length && !entries.length) return [];
  return resolveOpenSignalsWhere(db, 'company_id in (select json_array_elements_text(?::json)) and event_type = ? and coalesce(user_id, \'\') = \'\'', [JSON.stringify(companyIds), eventType], resolution, now, entries);
}

/**
 * The statement behind resolveOpenSignal and resolveOpenCompanySignals: resolves the
 * open signals `where` selects, each with its SIGNAL_RESOLVED entry, and appends
 * `entries` alongside, in one statement. Returns the ids resolved.
 */
async function resolveOpenSignalsWhere(db: Knex, where: string, whereBindings: Knex.RawBinding[], resolution: string, now: Date, entries: LedgerEntry[]): Promise<string[]> {
  const { rows } = await db.raw<{ rows: Array<{ id: string }> }>(
    `with resolved as (
       update signals set resolved_at = ?, resolution = ?, updated_at = ?
       where ${where} and resolved_at is null
       returning id, company_id, title
     ),
     entries as (
       insert into value_ledger_entries (company_id, signal_id, entry_type, summary, details, created_at)
       select e.company_id, e.signal_id, e.entry_type, e.summary, e.details, ?::timestamptz
       from json_to_recordset(?::json) as e(company_id text, signal_id text, entry_type text, summary text, details jsonb)
       union all
       select r.company_id, r.id, 'SIGNAL_RESOLVED', 'Resolved: ' || r.title, jsonb_build_object('resolution', ?::text), ?::timestamptz
       from resolved r
     )
     select id from resolved`,
    [now, resolution, now, ...whereBindings, now,
      JSON.stringify(entries.map((e) => ({ company_id: e.companyId, signal_id: e.signalId, entry_type: e.entryType, summary: e.summary, details: e.details }))), resolution, now],
  );
  return rows.map((r) => r.id);
}
