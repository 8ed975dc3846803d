/**
 * The reads of detect-inactivity, set-based: users are paged by id (keyset, a few
 * hundred at a time) and everything about a page (owned active companies, last BRI
 * score, pending tasks, open signal, email state) comes from one statement per
 * kind over the page's ids, never one query per user. Memory stays flat however
 * many users there are.
 *
 * Definitions (JOBS.md): an active company is not deleted and has at least one
 * assessment or financial period; a user's last activity is their latest
 * `user_sessions.last_active_at`, else `users.created_at`; days inactive are whole
 * days (floor) from last activity to the run's clock.
 */
import { ACTIVE_COMPANY } from './active-company.ts';
import type { Knex } from 'knex';
import { shardSql, type Shard } from '../runtime/shard.ts';
import type { Severity } from './signals.ts';

/** The event type of the job's signals. */
export const INACTIVITY_EVENT = 'user_inactivity';


/** SQL expression: the last activity of user `u` (needs the lateral `s` below). */
const LAST_ACTIVE = `coalesce(s.last_active_at, u.created_at)`;
const LATERAL_SESSIONS = `left join lateral (
    select max(us.last_active_at) as last_active_at from user_sessions us where us.user_id = u.id
  ) s on true`;
/** Whole days from last activity to the clock (parameter `:now`). */
const DAYS_INACTIVE = `floor(extract(epoch from (:now::timestamptz - ${LAST_ACTIVE})) / 86400)::int`;

/**
 * `shardSql(column, shard)` for the owners scan, as "not in any other shard": the
 * same rows (the hash modulo n is always one of 0…n-1), but PostgreSQL estimates
 * `expr = i` at 0.5% of the rows and `expr not in (…)` at nearly all of them. With
 * the 0.5% estimate it expects a page to need the whole of company_members and
 * plans a seq scan and sort of it (128 ms for the first page of a shard at 1M
 * users, 17 ms this way). Falls back to `shardSql` outside 2…64 shards.
 */
function ownersShardSql(column: string, shard: Shard): string {
  const { count, index } = shard;
  if (!Number.isInteger(count) || !Number.isInteger(index) || count < 2 || count > 64 || index < 0 || index >= count) return shardSql(column, shard);
  const others = Array.from({ length: count }, (_, i) => i).filter((i) => i !== index);
  return `mod(('x' || substr(md5(${column}), 1, 8))::bit(32)::bigint, ${count}) not in (${others.join(', ')})`;
}

export interface Owner {
  userId: string;
  email: string;
  name: string | null;
  lastActiveAt: Date;
  daysInactive: number;
}

export interface PageOptions {
  now: Date;
  shard: Shard;
  /** Only owners of this company (--company). */
  companyId?: string | undefined;
  /** Users per page. @defaultValue 500 */
  pageSize?: number;
}

/**
 * One page of non-deleted users who own at least one active company (in this
 * shard, or of `companyId`), with ids after `after`, in id order, each with their
 * last activity and days inactive at `now`. The caller keeps those inactive long
 * enough; the last id is the next page's `after`.
 */
export async function ownersPage(db: Knex, after: string, o: PageOptions): Promise<Owner[]> {
  // Paged over the owners themselves (company_members by user_id, keyset on
  // cm.user_id, in the order of the `company_members_user` index), then joined to
  // users. Written as `users u where u.id > :after and exists (owner …)`, PostgreSQL
  // plans a Merge Semi Join over a seq scan and sort of all of company_members for
  // many pages (bench/FINDINGS.md; at 1M users, EXPLAIN ANALYZE: first page 62 ms →
  // 5.5 ms, first page of shard 0 of 4 440 ms → 12 ms, a middle one 29 → 10 ms).
  // Every filter on the user (not deleted, shard, --company) stays inside the
  // limited subquery: a page still holds `limit` qualifying users, in id order, and
  // only an empty page means the end.
  const { rows } = await db.raw<{ rows: Array<{ id: string; email: string; name: string | null; last_active_at: Date; days_inactive: number }> }>(
    `select u.id, u.email, u.name, ${LAST_ACTIVE} as last_active_at, ${DAYS_INACTIVE} as days_inactive
     from (
       select cm.user_id
       from company_members cm
       join companies c on c.id = cm.company_id
       where cm.user_id > :after
         and cm.role = 'OWNER'
         and ${ACTIVE_COMPANY}
         and ${ownersShardSql('cm.user_id', o.shard)}
         ${o.companyId ? `and cm.user_id in (select m.user_id from company_members m where m.company_id = :companyId and m.role = 'OWNER')` : ''}
         and exists (select 1 from users du where du.id = cm.user_id and du.deleted_at is null)
       group by cm.user_id
       order by cm.user_id
       limit :limit
     ) o
     join users u on u.id = o.user_id
     ${LATERAL_SESSIONS}
     order by u.id`,
    { after, now: o.now, limit: o.pageSize ?? 500, ...(o.companyId ? { companyId: o.companyId } : {}) },
  );
  return rows.map((r) => ({ userId: r.id, email: r.email, name: r.name, lastActiveAt: r.last_active_at, daysInactive: Number(r.days_inactive) }));
}

/**
 * How many candidates there are (owners of active companies in this shard, or of
 * `companyId`, inactive `minDaysInactive` days or more at `now`): one pass, for
 * the progress line's total and ETA.
 */
export async function countInactiveOwners(db: Knex, o: PageOptions & { minDaysInactive: number }): Promise<number> {
  const { rows } = await db.raw<{ rows: Array<{ n: number }> }>(
    `select count(*)::int as n
     from users u
     ${LATERAL_SESSIONS}
     where u.deleted_at is null
       and ${shardSql('u.id', o.shard)}
       ${o.companyId ? `and u.id in (select m.user_id from company_members m where m.company_id = :companyId and m.role = 'OWNER')` : ''}
       and exists (
         select 1 from company_members cm join companies c on c.id = cm.company_id
         where cm.user_id = u.id and cm.role = 'OWNER' and ${ACTIVE_COMPANY}
       )
       and ${DAYS_INACTIVE} >= :minDays`,
    { now: o.now, minDays: o.minDaysInactive, ...(o.companyId ? { companyId: o.companyId } : {}) },
  );
  return Number(rows[0]?.n ?? 0);
}

/** One owned active company of a candidate, with what the nudge shows and the signal state. */
export interface OwnedCompany {
  userId: string;
  companyId: string;
  companyName: string;
  /** Latest COMPLETED assessment's score at `now` (decimal text), or null. */
  briScore: string | null;
  pendingTaskCount: number;
  /** Up to three pending task titles, earliest due first. */
  pendingTaskTitles: string[];
  /** The unresolved user_inactivity signal of this (user, company), if any. */
  openSignal: { id: string; severity: Severity; updatedAt: Date; nudgeStatus: string | null; nudgeError: string | null } | null;
}

/**
 * For many users at once: each (user, owned active company) pair with the
 * company's last known BRI score, its pending tasks (PENDING or IN_PROGRESS: count
 * and up to three titles), the pair's open user_inactivity signal, and the
 * email_log status of that signal's nudge key. Ordered by user, company name.
 */
export async function ownedCompanies(db: Knex, userIds: string[], o: { now: Date; companyId?: string | undefined }): Promise<OwnedCompany[]> {
  if (!userIds.length) return [];
  const { rows } = await db.raw<{
    rows: Array<{
      user_id: string; company_id: string; company_name: string; bri_score: string | null; pending_count: number;
      pending_title_1: string | null; pending_title_2: string | null; pending_title_3: string | null;
      signal_id: string | null; signal_severity: Severity | null; signal_updated_at: Date | null; nudge_status: string | null; nudge_error: string | null;
    }>;
  }>(
    `select cm.user_id, c.id as company_id, c.name as company_name,
            bri.bri_score, coalesce(t.pending_count, 0) as pending_count,
            -- three columns, not an array: the driver parses an array text per row in JS
            t.pending_titles[1] as pending_title_1, t.pending_titles[2] as pending_title_2, t.pending_titles[3] as pending_title_3,
            sig.id as signal_id, sig.severity as signal_severity, sig.updated_at as signal_updated_at,
            el.status as nudge_status, el.error as nudge_error
     from company_members cm
     join companies c on c.id = cm.company_id
     left join lateral (
       select a.bri_score from assessments a
       -- a COMPLETED assessment without a score is "no score", not the last known one
       where a.company_id = c.id and a.status = 'COMPLETED' and a.bri_score is not null and a.completed_at <= :now
       order by a.completed_at desc limit 1
     ) bri on true
     left join lateral (
       select count(*)::int as pending_count,
              (array_agg(tk.title order by tk.due_at nulls last, tk.created_at, tk.id))[1:3] as pending_titles
       from tasks tk where tk.company_id = c.id and tk.status in ('PENDING', 'IN_PROGRESS')
     ) t on true
     -- lateral: one index probe per pair, whatever the planner believes about signals
     left join lateral (
       select so.id, so.severity, so.updated_at from signals so
       where so.company_id = c.id and so.event_type = :event and coalesce(so.user_id, '') = cm.user_id and so.resolved_at is null
       limit 1
     ) sig on true
     left join email_log el
       on el.idempotency_key = 'inactivity:' || cm.user_id || ':' || sig.id || ':' || sig.severity
     where cm.user_id = any(:userIds::text[]) and cm.role = 'OWNER' and ${ACTIVE_COMPANY}
       ${o.companyId ? 'and c.id = :companyId' : ''}
     order by cm.user_id, c.name, c.id`,
    { userIds, now: o.now, event: INACTIVITY_EVENT, ...(o.companyId ? { companyId: o.companyId } : {}) },
  );
  return rows.map((r) => ({
    userId: r.user_id,
    companyId: r.company_id,
    companyName: r.company_name,
    briScore: r.bri_score,
    pendingTaskCount: Number(r.pending_count),
    pendingTaskTitles: [r.pending_title_1, r.pending_title_2, r.pending_title_3].filter((t) => t !== null),
    openSignal: r.signal_id
      ? { id: r.signal_id, severity: r.signal_severity!, updatedAt: r.signal_updated_at!, nudgeStatus: r.nudge_status, nudgeError: r.nudge_error }
      : null,
  }));
}

/** What decides whether a user may get a nudge now. */
export interface NudgeState {
  inactivityNudges: boolean;
  unsubscribedAll: boolean;
  /** The latest INACTIVITY_NUDGE actually sent to the user, at or before `now`. */
  lastNudgeSentAt: Date | null;
}

/**
 * For many users at once: their nudge preferences (no row = allowed) and when
 * they were last sent an INACTIVITY_NUDGE (for the 7-day cap).
 */
export async function nudgeStates(db: Knex, userIds: string[], now: Date): Promise<Map<string, NudgeState>> {
  const out = new Map<string, NudgeState>();
  if (!userIds.length) return out;
  const { rows } = await db.raw<{ rows: Array<{ user_id: string; inactivity_nudges: boolean; unsubscribed_all: boolean; last_sent_at: Date | null }> }>(
    `select ids.user_id,
            coalesce(p.inactivity_nudges, true) as inactivity_nudges,
            coalesce(p.unsubscribed_all, false) as unsubscribed_all,
            (select max(e.sent_at) from email_log e
              where e.user_id = ids.user_id and e.email_type = 'INACTIVITY_NUDGE' and e.status = 'SENT' and e.sent_at <= :now) as last_sent_at
     from unnest(:userIds::text[]) as ids(user_id)
     left join email_preferences p on p.user_id = ids.user_id`,
    { userIds, now },
  );
  for (const r of rows) out.set(r.user_id, { inactivityNudges: r.inactivity_nudges, unsubscribedAll: r.unsubscribed_all, lastNudgeSentAt: r.last_sent_at });
  return out;
}

/** An open user_inactivity signal and whether its user came back. */
export interface OpenInactivitySignal {
  id: string;
  companyId: string;
  userId: string;
  daysInactive: number;
}

/**
 * One page of unresolved user_inactivity signals of non-deleted users and
 * companies (in this shard, by user id; or of `companyId`), after the cursor,
 * walking the partial unique index `signals_one_open_per_subject` in its order
 * (company, event type, user): each with the user's days inactive at `now`.
 */
export async function openInactivitySignalsPage(db: Knex, after: { companyId: string; userId: string }, o: PageOptions): Promise<OpenInactivitySignal[]> {
  const { rows } = await db.raw<{ rows: Array<{ id: string; company_id: string; user_id: string; days_inactive: number }> }>(
    `select sig.id, sig.company_id, sig.user_id, ${DAYS_INACTIVE} as days_inactive
     from signals sig
     join users u on u.id = sig.user_id
     join companies c on c.id = sig.company_id
     ${LATERAL_SESSIONS}
     where sig.event_type = :event and sig.resolved_at is null
       and (sig.company_id, sig.event_type, coalesce(sig.user_id, '')) > (:afterCompany, :event, :afterUser)
       and u.deleted_at is null and c.deleted_at is null
       and ${shardSql('sig.user_id', o.shard)}
       ${o.companyId ? 'and sig.company_id = :companyId' : ''}
     order by sig.company_id, sig.event_type, coalesce(sig.user_id, '')
     limit :limit`,
    { event: INACTIVITY_EVENT, afterCompany: after.companyId, afterUser: after.userId, now: o.now, limit: o.pageSize ?? 500, ...(o.companyId ? { companyId: o.companyId } : {}) },
  );
  return rows.map((r) => ({ id: r.id, companyId: r.company_id, userId: r.user_id, daysInactive: Number(r.days_inactive) }));
}

/** A candidate of detect-inactivity: an owner inactive long enough, with everything the job needs. */
export interface Candidate extends Owner {
  /** Owned active companies (only `companyId` with --company), by name. */
  companies: OwnedCompany[];
  nudge: NudgeState;
}

/**
 * Pages through the owners of active companies (keyset on user id) and yields, per
 * page, those inactive `minDaysInactive` days or more with their companies and
 * nudge state: three statements per page, whatever its size.
 */
export async function* inactiveOwnerBatches(db: Knex, o: PageOptions & { minDaysInactive: number }): AsyncGenerator<Candidate[]> {
  let after = '';
  for (;;) {
    const page = await ownersPage(db, after, o);
    if (!page.length) return;
    after = page.at(-1)!.userId;
    const inactive = page.filter((u) => u.daysInactive >= o.minDaysInactive);
    if (!inactive.length) continue;
    const ids = inactive.map((u) => u.userId);
    const companies = await ownedCompanies(db, ids, o);
    const states = await nudgeStates(db, ids, o.now);
    const byUser = Map.groupBy(companies, (c) => c.userId);
    const candidates = inactive
      .map((u) => ({ ...u, companies: byUser.get(u.userId) ?? [], nudge: states.get(u.userId) ?? { inactivityNudges: true, unsubscribedAll: false, lastNudgeSentAt: null } }))
      // A company that stopped being active between the two reads leaves nothing to do.
      .filter((c) => c.companies.length > 0);
    if (candidates.length) yield candidates;
  }
}

/** Pages through the open user_inactivity signals (see `openInactivitySignalsPage`). */
export async function* openInactivitySignalBatches(db: Knex, o: PageOptions): AsyncGenerator<OpenInactivitySignal[]> {
  let after = { companyId: '', userId: '' };
  for (;;) {
    const page = await openInactivitySignalsPage(db, after, o);
    if (!page.length) return;
    const last = page.at(-1)!;
    after = { companyId: last.companyId, userId: last.userId };
    yield page;
  }
}
