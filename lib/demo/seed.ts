/**
 * A realistic, deterministic sample of the product's data for the demo (and for
 * tests that want a populated database): companies with owners, advisors and
 * members, sessions over the last 120 days, BRI assessments over 18 months, tasks,
 * signals, valuations, monthly financials and QuickBooks integrations. The same
 * seed and clock always give the same rows.
 */
import type { Knex } from 'knex';
import { encryptToken } from '../quickbooks/token-crypto.ts';

/** mulberry32: a tiny seeded PRNG, enough for sample data (not for secrets). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SeedOptions {
  companies: number;
  seed: number;
  now: Date;
  /** Key for the sample QuickBooks tokens; no integrations when absent. */
  tokenKey?: Buffer;
}

export interface SeedCounts {
  companies: number;
  users: number;
  sessions: number;
  assessments: number;
  tasks: number;
  integrations: number;
}

const FIRST = ['Ava', 'Ben', 'Chloe', 'Dev', 'Elena', 'Femi', 'Grace', 'Hiro', 'Isla', 'Jon', 'Kara', 'Luis', 'Maya', 'Noah', 'Omar', 'Priya', 'Quinn', 'Rosa', 'Sam', 'Tara'];
const LAST = ['Adams', 'Brooks', 'Chen', 'Diaz', 'Evans', 'Fischer', 'Garcia', 'Hughes', 'Ito', 'Jensen', 'Khan', 'Lopez', 'Miller', 'Nguyen', 'Okafor', 'Patel'];
const TRADES = ['Plumbing', 'Dental', 'Logistics', 'Bakery', 'Software', 'Landscaping', 'HVAC', 'Print', 'Veterinary', 'Roofing', 'Fitness', 'Catering'];
const PLACES = ['Northside', 'Harbor', 'Summit', 'Riverbend', 'Oakridge', 'Lakeview', 'Granite', 'Bluewater', 'Cedar', 'Maple'];
const SUFFIX = ['LLC', 'Inc.', 'Co.', 'Group', 'Partners'];
export const CATEGORIES = ['FINANCIAL', 'TRANSFERABILITY', 'OPERATIONAL', 'MARKET', 'LEGAL_TAX', 'PERSONAL'] as const;
const TASKS: Record<(typeof CATEGORIES)[number], string[]> = {
  FINANCIAL: ['Reconcile 24 months of books', 'Separate personal expenses', 'Prepare a quality-of-earnings pack'],
  TRANSFERABILITY: ['Document the sales process', 'Train a second-in-command', 'Move key accounts off your personal phone'],
  OPERATIONAL: ['Write the month-end close checklist', 'Map supplier contracts', 'Set up a KPI dashboard'],
  MARKET: ['Summarise the top 10 customers', 'Write a competitor overview', 'Gather customer testimonials'],
  LEGAL_TAX: ['Renew the commercial lease', 'Register trademarks', 'Check sales-tax nexus'],
  PERSONAL: ['Decide your post-sale role', 'Meet a wealth advisor', 'Set your walk-away number'],
};

const DAY = 86_400_000;
const iso = (d: Date) => d.toISOString();
const dateOnly = (d: Date) => d.toISOString().slice(0, 10);
const money = (n: number) => n.toFixed(2);

/** Inserts the sample into an empty product schema; returns what it made. */
export async function seedSample(db: Knex, options: SeedOptions): Promise<SeedCounts> {
  const rand = prng(options.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const between = (lo: number, hi: number) => lo + rand() * (hi - lo);
  const now = options.now.getTime();
  const rows: Record<string, Array<Record<string, unknown>>> = {
    users: [], user_sessions: [], companies: [], company_members: [], email_preferences: [], assessments: [], valuation_snapshots: [], tasks: [], financial_periods: [], quickbooks_integrations: [], signals: [],
  };
  let userSeq = 0;
  const newUser = (createdAt: number) => {
    const id = `usr_${String(++userSeq).padStart(5, '0')}`;
    const first = pick(FIRST);
    const last = pick(LAST);
    rows.users!.push({ id, email: `${first}.${last}.${userSeq}@example.com`.toLowerCase(), name: `${first} ${last}`, created_at: iso(new Date(createdAt)), deleted_at: rand() < 0.02 ? iso(new Date(now - 5 * DAY)) : null });
    // Activity profile: most owners are active, some drift away, a few vanish.
    const profile = rand();
    const lastActiveDaysAgo = profile < 0.6 ? between(0, 14) : profile < 0.8 ? between(15, 44) : profile < 0.95 ? between(45, 110) : -1;
    if (lastActiveDaysAgo >= 0) {
      const sessions = 1 + Math.floor(rand() * 4);
      for (let s = 0; s < sessions; s++) {
        const at = now - (lastActiveDaysAgo + s * between(1, 9)) * DAY;
        rows.user_sessions!.push({ id: `ses_${userSeq}_${s}`, user_id: id, created_at: iso(new Date(at - 3_600_000)), last_active_at: iso(new Date(at)) });
      }
    }
    if (rand() < 0.1) rows.email_preferences!.push({ user_id: id, drift_reports: rand() < 0.5, inactivity_nudges: rand() < 0.5, unsubscribed_all: rand() < 0.3 });
    return id;
  };

  for (let c = 1; c <= options.companies; c++) {
    const companyId = `cmp_${String(c).padStart(5, '0')}`;
    const createdAt = now - between(200, 900) * DAY;
    rows.companies!.push({ id: companyId, name: `${pick(PLACES)} ${pick(TRADES)} ${pick(SUFFIX)}`, created_at: iso(new Date(createdAt)), deleted_at: rand() < 0.03 ? iso(new Date(now - 30 * DAY)) : null });
    rows.company_members!.push({ company_id: companyId, user_id: newUser(createdAt), role: 'OWNER' });
    if (rand() < 0.15) rows.company_members!.push({ company_id: companyId, user_id: newUser(createdAt + DAY), role: 'OWNER' });
    if (rand() < 0.5) rows.company_members!.push({ company_id: companyId, user_id: newUser(createdAt + 2 * DAY), role: pick(['ADVISOR', 'MEMBER'] as const) });

    // Assessments: a monthly-ish history over 18 months for most companies, drifting.
    if (rand() < 0.85) {
      let score = between(35, 75);
      const cats = Object.fromEntries(CATEGORIES.map((k) => [k, between(30, 80)])) as Record<string, number>;
      const count = 2 + Math.floor(rand() * 10);
      for (let a = 0; a < count; a++) {
        // From about 18 months ago to 10-45 days ago, so last month often has a new score.
        const at = now - (545 - a * (500 / (count - 1)) - between(0, 35)) * DAY;
        score = Math.min(100, Math.max(0, score + between(-6, 8)));
        for (const k of CATEGORIES) cats[k] = Math.min(100, Math.max(0, cats[k]! + between(-9, 10)));
        rows.assessments!.push({ id: `asm_${c}_${a}`, company_id: companyId, status: 'COMPLETED', bri_score: money(score), category_scores: JSON.stringify(Object.fromEntries(CATEGORIES.map((k) => [k, Math.round(cats[k]!)]))), completed_at: iso(new Date(at)), created_at: iso(new Date(at - DAY)) });
      }
      if (rand() < 0.2) rows.assessments!.push({ id: `asm_${c}_open`, company_id: companyId, status: 'IN_PROGRESS', bri_score: null, category_scores: null, completed_at: null, created_at: iso(new Date(now - 3 * DAY)) });
      for (let v = 0; v < 3; v++) {
        rows.valuation_snapshots!.push({ id: `val_${c}_${v}`, company_id: companyId, valuation: money(between(400_000, 6_000_000) * (1 + v * 0.03)), currency: 'USD', created_at: iso(new Date(now - (80 - v * 30) * DAY)) });
      }
    }
    // Tasks in every category, some done, some overdue.
    for (let t = 0; t < 6 + Math.floor(rand() * 6); t++) {
      const category = pick(CATEGORIES);
      const created = now - between(5, 200) * DAY;
      const status = pick(['PENDING', 'PENDING', 'IN_PROGRESS', 'COMPLETED', 'COMPLETED', 'DISMISSED'] as const);
      rows.tasks!.push({ id: `tsk_${c}_${t}`, company_id: companyId, title: pick(TASKS[category]), category, status, due_at: rand() < 0.7 ? iso(new Date(created + between(10, 90) * DAY)) : null, completed_at: status === 'COMPLETED' ? iso(new Date(Math.min(now, created + between(1, 60) * DAY))) : null, created_at: iso(new Date(created)) });
    }
    // An open signal here and there, for the dashboard and the drift report.
    if (rand() < 0.3) {
      rows.signals!.push({ company_id: companyId, channel: 'ASSESSMENT', event_type: 'bri_category_drop', category: pick(CATEGORIES), severity: pick(['LOW', 'MEDIUM', 'HIGH'] as const), confidence: 'LIKELY', title: 'Category score dropped', created_at: iso(new Date(now - between(5, 60) * DAY)) });
    }
    // Monthly financials (manual) for some, QuickBooks for others.
    const hasQuickBooks = options.tokenKey !== undefined && rand() < 0.25;
    if (!hasQuickBooks && rand() < 0.3) {
      const base = between(40_000, 400_000);
      for (let m = 1; m <= 12; m++) {
        const start = new Date(Date.UTC(options.now.getUTCFullYear(), options.now.getUTCMonth() - m, 1));
        const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 0));
        const revenue = base * between(0.85, 1.15);
        const cogs = revenue * between(0.3, 0.55);
        const opex = revenue * between(0.2, 0.35);
        rows.financial_periods!.push({ company_id: companyId, period_start: dateOnly(start), period_end: dateOnly(end), revenue: money(revenue), cogs: money(cogs), gross_profit: money(revenue - cogs), operating_expenses: money(opex), ebitda: money(revenue - cogs - opex), net_income: money((revenue - cogs - opex) * 0.75), source: 'MANUAL' });
      }
    }
    if (hasQuickBooks) {
      const key = options.tokenKey!;
      rows.quickbooks_integrations!.push({
        id: `qbo_${c}`, company_id: companyId, realm_id: String(9130350000000000 + c),
        access_token: encryptToken(`demo-access-${c}`, key), refresh_token: encryptToken(`demo-refresh-${c}`, key),
        access_token_expires_at: iso(new Date(now + (rand() < 0.5 ? -DAY : 3_000_000))), refresh_token_expires_at: iso(new Date(now + 90 * DAY)),
        auto_sync_enabled: rand() < 0.9, last_sync_at: rand() < 0.5 ? iso(new Date(now - 2 * DAY)) : null,
      });
    }
  }
  await db.transaction(async (trx) => {
    for (const [table, list] of Object.entries(rows)) if (list.length) await trx.batchInsert(table, list, 500);
  });
  return {
    companies: rows.companies!.length, users: rows.users!.length, sessions: rows.user_sessions!.length,
    assessments: rows.assessments!.length, tasks: rows.tasks!.length, integrations: rows.quickbooks_integrations!.length,
  };
}
