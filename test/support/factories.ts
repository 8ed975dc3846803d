/**
 * Row factories with overrides: `aUser(db, { deleted_at })`. Ids are unique per
 * call so tests can build several of each. Defaults are a healthy, active company
 * and owner at the reference time NOW.
 */
import type { Knex } from 'knex';
import { NOW } from './run.ts';

let seq = 0;
const next = (prefix: string) => `${prefix}_${process.pid}_${++seq}`;
export const daysBefore = (days: number, from: Date = NOW) => new Date(from.getTime() - days * 86_400_000);

type Row = Record<string, unknown>;

export async function aUser(db: Knex, over: Row = {}): Promise<Row & { id: string }> {
  const id = (over.id as string) ?? next('usr');
  const row = { id, email: `${id}@example.com`, name: `User ${id}`, created_at: daysBefore(400), deleted_at: null, ...over };
  await db('users').insert(row);
  return row;
}

export async function aCompany(db: Knex, over: Row = {}): Promise<Row & { id: string }> {
  const id = (over.id as string) ?? next('cmp');
  const row = { id, name: `Company ${id}`, created_at: daysBefore(500), deleted_at: null, ...over };
  await db('companies').insert(row);
  return row;
}

export async function aMember(db: Knex, companyId: string, userId: string, role: 'OWNER' | 'ADVISOR' | 'MEMBER' = 'OWNER'): Promise<void> {
  await db('company_members').insert({ company_id: companyId, user_id: userId, role });
}

export async function aSession(db: Knex, userId: string, lastActiveAt: Date): Promise<void> {
  await db('user_sessions').insert({ id: next('ses'), user_id: userId, created_at: lastActiveAt, last_active_at: lastActiveAt });
}

export async function anAssessment(db: Knex, companyId: string, over: Row = {}): Promise<Row & { id: string }> {
  const id = (over.id as string) ?? next('asm');
  const row = {
    id, company_id: companyId, status: 'COMPLETED', bri_score: '60.00',
    category_scores: JSON.stringify({ FINANCIAL: 60, TRANSFERABILITY: 60, OPERATIONAL: 60, MARKET: 60, LEGAL_TAX: 60, PERSONAL: 60 }),
    completed_at: daysBefore(30), created_at: daysBefore(31), ...over,
  };
  await db('assessments').insert(row);
  return row;
}

export async function aTask(db: Knex, companyId: string, over: Row = {}): Promise<Row & { id: string }> {
  const id = (over.id as string) ?? next('tsk');
  const row = { id, company_id: companyId, title: `Task ${id}`, category: 'FINANCIAL', status: 'PENDING', due_at: null, completed_at: null, created_at: daysBefore(40), ...over };
  await db('tasks').insert(row);
  return row;
}

export async function aFinancialPeriod(db: Knex, companyId: string, periodStart: string, over: Row = {}): Promise<Row> {
  const start = new Date(`${periodStart}T00:00:00Z`);
  const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 0));
  const row = { company_id: companyId, period_start: periodStart, period_end: end.toISOString().slice(0, 10), revenue: '100000.00', ebitda: '20000.00', source: 'MANUAL', ...over };
  await db('financial_periods').insert(row);
  return row;
}

export async function preferences(db: Knex, userId: string, over: Row): Promise<void> {
  await db('email_preferences').insert({ user_id: userId, ...over });
}

/** An active company (it has an assessment) with one owner who was last seen `daysInactive` days before NOW. */
export async function anOwnedCompany(db: Knex, options: { daysInactive?: number; companyOver?: Row; userOver?: Row } = {}) {
  const company = await aCompany(db, options.companyOver);
  const user = await aUser(db, options.userOver);
  await aMember(db, company.id, user.id, 'OWNER');
  await anAssessment(db, company.id);
  if (options.daysInactive !== undefined) await aSession(db, user.id, daysBefore(options.daysInactive));
  return { company, user };
}
