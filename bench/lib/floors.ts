/**
 * THE FLOOR: what each job's reads and writes cost as bare set-based SQL, a few
 * statements over the whole table in one transaction, rolled back. Timed in the
 * same bench run, just before the job, on the same fresh copy of the data, so the
 * ratio job / floor is stable from run to run and machine to machine.
 *
 * The floor does what the job does to the database: the same rows read, the same
 * rows written (signals, ledger entries, drift reports, email_log rows claimed
 * PENDING then marked SENT), but no per-item round trips, no rendering, no HTTP.
 * For sync-quickbooks the floor is the API's: requests × latency ÷ the concurrency
 * the limits allow (see `syncFloor`).
 */
import type { Knex } from 'knex';

export interface FloorStatement {
  name: string;
  ms: number;
  rows: number;
}

export interface Floor {
  ms: number;
  statements: FloorStatement[];
}

async function timed(db: Knex, steps: Array<{ name: string; sql: string; bindings?: Record<string, unknown> }>): Promise<Floor> {
  const statements: FloorStatement[] = [];
  const started = performance.now();
  const trx = await db.transaction();
  try {
    for (const s of steps) {
      const t = performance.now();
      const r = (await trx.raw(s.sql, s.bindings ?? {})) as { rowCount?: number | null };
      statements.push({ name: s.name, ms: Math.round(performance.now() - t), rows: r.rowCount ?? 0 });
    }
  } finally {
    await trx.rollback();
  }
  return { ms: Math.round(performance.now() - started), statements };
}

const ACTIVE = (c: string) => `${c}.deleted_at is null
  and (exists (select 1 from assessments a where a.company_id = ${c}.id) or exists (select 1 from financial_periods f where f.company_id = ${c}.id))`;
const LAST_ACTIVE = `coalesce((select max(us.last_active_at) from user_sessions us where us.user_id = u.id), u.created_at)`;

/** detect-inactivity's reads and writes, set-based. */
export function inactivityFloor(db: Knex, now: Date): Promise<Floor> {
  const b = { now };
  return timed(db, [
    {
      name: 'resolve returned users (+ ledger)',
      bindings: b,
      sql: `with returned as (
              select s.id from signals s
                join users u on u.id = s.user_id and u.deleted_at is null
                join companies c on c.id = s.company_id and c.deleted_at is null
               where s.event_type = 'user_inactivity' and s.resolved_at is null and :now::timestamptz - ${LAST_ACTIVE} < interval '21 days'
            ), upd as (
              update signals s set resolved_at = :now, resolution = 'USER_RETURNED', updated_at = :now
                from returned r where s.id = r.id and s.resolved_at is null
              returning s.id, s.company_id, s.title
            )
            insert into value_ledger_entries (company_id, signal_id, entry_type, summary, details, created_at)
            select company_id, id, 'SIGNAL_RESOLVED', 'Resolved: ' || title, '{"resolution":"USER_RETURNED"}', :now from upd`,
    },
    {
      name: 'read candidates: owners, last activity, companies, BRI, pending tasks, open signal, nudge state',
      bindings: b,
      sql: `create temp table floor_pairs on commit drop as
            with owners as (
              select u.id as user_id, u.email, u.name, ${LAST_ACTIVE} as last_active
                from users u
               where u.deleted_at is null
                 and exists (select 1 from company_members cm join companies c on c.id = cm.company_id where cm.user_id = u.id and cm.role = 'OWNER' and ${ACTIVE('c')})
            ), inactive as (
              select o.*, floor(extract(epoch from (:now::timestamptz - o.last_active)) / 86400)::int as days from owners o
               where :now::timestamptz - o.last_active >= interval '21 days'
            )
            select i.user_id, i.email, i.name, i.last_active, i.days, c.id as company_id, c.name as company_name,
                   bri.bri_score, t.pending_count, t.pending_titles, sig.id as sig_id, sig.severity as sig_severity, el.status as nudge_status,
                   coalesce(p.inactivity_nudges, true) and not coalesce(p.unsubscribed_all, false) as allowed,
                   (select max(e.sent_at) from email_log e where e.user_id = i.user_id and e.email_type = 'INACTIVITY_NUDGE' and e.status = 'SENT' and e.sent_at <= :now) as last_nudge
              from inactive i
              join company_members cm on cm.user_id = i.user_id and cm.role = 'OWNER'
              join companies c on c.id = cm.company_id and ${ACTIVE('c')}
              left join lateral (select a.bri_score from assessments a where a.company_id = c.id and a.status = 'COMPLETED' and a.completed_at <= :now
                                  order by a.completed_at desc limit 1) bri on true
              left join lateral (select count(*)::int as pending_count, (array_agg(tk.title order by tk.due_at nulls last, tk.created_at, tk.id))[1:3] as pending_titles
                                   from tasks tk where tk.company_id = c.id and tk.status in ('PENDING', 'IN_PROGRESS')) t on true
              left join signals sig on sig.company_id = c.id and sig.event_type = 'user_inactivity' and coalesce(sig.user_id, '') = i.user_id and sig.resolved_at is null
              left join email_log el on el.idempotency_key = 'inactivity:' || i.user_id || ':' || sig.id || ':' || sig.severity
              left join email_preferences p on p.user_id = i.user_id`,
    },
    { name: 'analyze candidates', sql: `analyze floor_pairs` },
    { name: 'changed signals table', sql: `create temp table floor_changed (user_id text, signal_id text, severity text) on commit drop` },
    {
      name: 'open signals (+ ledger)',
      bindings: b,
      sql: `with ins as (
              insert into signals (company_id, user_id, channel, event_type, category, severity, confidence, title, metadata, created_at, updated_at)
              select company_id, user_id, 'TIME_DECAY', 'user_inactivity', 'PERSONAL', case when days >= 45 then 'HIGH' else 'MEDIUM' end, 'CONFIDENT',
                     'Owner inactive for ' || days || ' days', jsonb_build_object('daysInactive', days, 'lastActiveAt', last_active), :now, :now
                from floor_pairs where sig_id is null
              on conflict (company_id, event_type, coalesce(user_id, '')) where resolved_at is null do nothing
              returning id, company_id, user_id, severity, title, metadata
            ), led as (
              insert into value_ledger_entries (company_id, signal_id, entry_type, summary, details, created_at)
              select company_id, id, 'SIGNAL_CREATED', title, metadata || jsonb_build_object('eventType', 'user_inactivity', 'severity', severity), :now from ins
            )
            insert into floor_changed select user_id, id, severity from ins`,
    },
    {
      name: 'escalate MEDIUM → HIGH (+ ledger)',
      bindings: b,
      sql: `with upd as (
              update signals s set severity = 'HIGH', title = 'Owner inactive for ' || p.days || ' days',
                     metadata = jsonb_build_object('daysInactive', p.days, 'lastActiveAt', p.last_active), updated_at = :now
                from floor_pairs p
               where s.id = p.sig_id and p.sig_severity = 'MEDIUM' and p.days >= 45 and s.resolved_at is null and s.severity = 'MEDIUM'
              returning s.id, s.company_id, s.user_id, s.title, s.metadata
            ), led as (
              insert into value_ledger_entries (company_id, signal_id, entry_type, summary, details, created_at)
              select company_id, id, 'SIGNAL_ESCALATED', title, metadata || '{"fromSeverity":"MEDIUM","severity":"HIGH"}', :now from upd
            )
            insert into floor_changed select user_id, id, 'HIGH' from upd`,
    },
    { name: 'emails table', sql: `create temp table floor_emails (id text) on commit drop` },
    {
      name: 'claim nudges in email_log (PENDING or SUPPRESSED)',
      bindings: b,
      sql: `with per_user as (
              select distinct on (user_id) user_id, email, allowed, last_nudge from floor_pairs order by user_id
            ), nudges as (
              select distinct on (ch.user_id) ch.user_id, ch.signal_id, ch.severity, p.email,
                     p.allowed and (p.last_nudge is null or p.last_nudge < :now::timestamptz - interval '7 days') as send
                from floor_changed ch
                join per_user p on p.user_id = ch.user_id
               order by ch.user_id, ch.signal_id desc
            ), ins as (
              insert into email_log (user_id, to_email, email_type, idempotency_key, status, error, created_at)
              select user_id, email, 'INACTIVITY_NUDGE', 'inactivity:' || user_id || ':' || signal_id || ':' || severity,
                     case when send then 'PENDING' else 'SUPPRESSED' end, case when send then null else 'suppressed' end, :now
                from nudges
              on conflict (idempotency_key) do nothing
              returning id, status
            )
            insert into floor_emails select id from ins where status = 'PENDING'`,
    },
    {
      name: 'mark nudges SENT',
      bindings: b,
      sql: `update email_log e set status = 'SENT', provider_message_id = 'floor-' || e.id, sent_at = :now from floor_emails f where e.id = f.id`,
    },
  ]);
}

/** generate-drift-reports' reads and writes, set-based. */
export function driftFloor(db: Knex, now: Date, period: { start: Date; end: Date; month: string }): Promise<Floor> {
  const b = { now, start: period.start, end: period.end, month: period.month, endDate: period.end.toISOString().slice(0, 10) };
  const latestAssessment = (bound: string) => `select a.bri_score, a.category_scores, a.completed_at from assessments a
      where a.company_id = c.id and a.status = 'COMPLETED' and a.bri_score is not null and a.completed_at < ${bound}
      order by a.completed_at desc, a.id desc limit 1`;
  const latestValuation = (bound: string) => `select v.valuation, v.currency, v.created_at from valuation_snapshots v
      where v.company_id = c.id and v.created_at < ${bound} order by v.created_at desc, v.id desc limit 1`;
  return timed(db, [
    {
      name: 'read facts of every active company without a report',
      bindings: b,
      sql: `create temp table floor_facts on commit drop as
            select c.id, c.name,
                   s.bri_score as s_score, s.category_scores as s_cat, e.bri_score as e_score, e.category_scores as e_cat,
                   (select count(*) from assessments a where a.company_id = c.id and a.status = 'COMPLETED' and a.completed_at >= :start and a.completed_at < :end) as in_period,
                   vs.valuation as vs_val, ve.valuation as ve_val, ve.currency,
                   coalesce(t.completed, 0) as t_completed, coalesce(t.pending, 0) as t_pending, coalesce(t.overdue, 0) as t_overdue,
                   coalesce(sg.critical, 0) as sg_critical, coalesce(sg.high, 0) as sg_high, coalesce(sg.medium, 0) as sg_medium, coalesce(sg.low, 0) as sg_low, coalesce(sg.resolved, 0) as sg_resolved,
                   l.period_start as l_start, l.revenue as l_revenue, l.ebitda as l_ebitda, p.revenue as p_revenue, p.ebitda as p_ebitda
              from companies c
              left join lateral (${latestAssessment(':start')}) s on true
              left join lateral (${latestAssessment(':end')}) e on true
              left join lateral (${latestValuation(':start')}) vs on true
              left join lateral (${latestValuation(':end')}) ve on true
              left join lateral (
                select count(*) filter (where tk.completed_at >= :start and tk.completed_at < :end) as completed,
                       count(*) filter (where tk.status in ('PENDING', 'IN_PROGRESS') and tk.created_at < :end) as pending,
                       count(*) filter (where tk.status in ('PENDING', 'IN_PROGRESS') and tk.created_at < :end and tk.due_at < :end) as overdue
                  from tasks tk where tk.company_id = c.id) t on true
              -- signals has no index on company_id alone (only the partial unique one on open
              -- signals), so one aggregate over the month's signals, hash-joined.
              left join (
                select sg.company_id,
                       count(*) filter (where sg.created_at >= :start and sg.created_at < :end and sg.severity = 'CRITICAL') as critical,
                       count(*) filter (where sg.created_at >= :start and sg.created_at < :end and sg.severity = 'HIGH') as high,
                       count(*) filter (where sg.created_at >= :start and sg.created_at < :end and sg.severity = 'MEDIUM') as medium,
                       count(*) filter (where sg.created_at >= :start and sg.created_at < :end and sg.severity = 'LOW') as low,
                       count(*) filter (where sg.resolved_at >= :start and sg.resolved_at < :end) as resolved
                  from signals sg
                 where (sg.created_at >= :start and sg.created_at < :end) or (sg.resolved_at >= :start and sg.resolved_at < :end)
                 group by sg.company_id) sg on sg.company_id = c.id
              left join lateral (select f.period_start, f.revenue, f.ebitda from financial_periods f
                                  where f.company_id = c.id and f.period_end < :endDate::date order by f.period_start desc limit 1) l on true
              left join financial_periods p on p.company_id = c.id and p.period_start = (l.period_start - interval '1 month')::date
             where ${ACTIVE('c')}
               and not exists (select 1 from drift_reports r where r.company_id = c.id and r.period_start = :start)`,
    },
    { name: 'analyze facts', sql: `analyze floor_facts` },
    { name: 'reports table', sql: `create temp table floor_reports (id text, company_id text) on commit drop` },
    {
      name: 'insert drift reports (+ ledger)',
      bindings: b,
      sql: `with ins as (
              insert into drift_reports (company_id, period_start, period_end, bri_score_start, bri_score_end, bri_delta, direction, report, created_at)
              select f.id, :start, :end, f.s_score, f.e_score, f.e_score - f.s_score,
                     case when f.e_score is null then 'NO_DATA' when f.s_score is null or f.e_score - f.s_score >= 1 then 'IMPROVING'
                          when f.e_score - f.s_score <= -1 then 'DECLINING' else 'STABLE' end,
                     jsonb_build_object(
                       'company', jsonb_build_object('id', f.id, 'name', f.name), 'period', jsonb_build_object('month', :month::text, 'start', :start::timestamptz, 'end', :end::timestamptz),
                       'bri', jsonb_build_object('start', f.s_score, 'end', f.e_score, 'delta', f.e_score - f.s_score, 'completedInPeriod', f.in_period),
                       'categories', jsonb_build_object('start', f.s_cat, 'end', f.e_cat),
                       'valuation', jsonb_build_object('start', f.vs_val, 'end', f.ve_val, 'currency', f.currency, 'change', f.ve_val - f.vs_val,
                                                       'percent', round((f.ve_val - f.vs_val) / nullif(f.vs_val, 0) * 100, 2)),
                       'tasks', jsonb_build_object('completed', f.t_completed, 'pending', f.t_pending, 'overdue', f.t_overdue),
                       'signals', jsonb_build_object('opened', jsonb_build_object('CRITICAL', f.sg_critical, 'HIGH', f.sg_high, 'MEDIUM', f.sg_medium, 'LOW', f.sg_low), 'resolved', f.sg_resolved),
                       'financials', case when f.l_start is null then null else jsonb_build_object('latest', jsonb_build_object('periodStart', f.l_start, 'revenue', f.l_revenue, 'ebitda', f.l_ebitda),
                                                                                                 'previous', jsonb_build_object('revenue', f.p_revenue, 'ebitda', f.p_ebitda)) end,
                       'narrative', 'Your Buyer Readiness Index moved from ' || coalesce(f.s_score::text, 'n/a') || ' to ' || coalesce(f.e_score::text, 'n/a') || ' this month.'),
                     :now
                from floor_facts f
              on conflict (company_id, period_start) do nothing
              returning id, company_id, direction, bri_score_start, bri_score_end, bri_delta
            ), led as (
              insert into value_ledger_entries (company_id, signal_id, entry_type, summary, details, created_at)
              select company_id, null, 'DRIFT_REPORT_GENERATED', 'Drift report for ' || :month::text || ': ' || direction,
                     jsonb_build_object('driftReportId', id, 'period', :month::text, 'briStart', bri_score_start, 'briEnd', bri_score_end, 'briDelta', bri_delta, 'direction', direction), :now
                from ins
            )
            insert into floor_reports select id, company_id from ins`,
    },
    { name: 'emails table', sql: `create temp table floor_emails (id text) on commit drop` },
    {
      name: 'claim report emails of every owner (PENDING or SUPPRESSED)',
      bindings: b,
      sql: `with ins as (
              insert into email_log (user_id, to_email, email_type, idempotency_key, status, error, created_at)
              select u.id, u.email, 'DRIFT_REPORT', 'drift-report:' || r.company_id || ':' || :month::text || ':' || u.id,
                     case when coalesce(p.drift_reports, true) and not coalesce(p.unsubscribed_all, false) then 'PENDING' else 'SUPPRESSED' end,
                     case when coalesce(p.drift_reports, true) and not coalesce(p.unsubscribed_all, false) then null else 'suppressed: preferences' end, :now
                from floor_reports r
                join company_members m on m.company_id = r.company_id and m.role = 'OWNER'
                join users u on u.id = m.user_id and u.deleted_at is null
                left join email_preferences p on p.user_id = u.id
              on conflict (idempotency_key) do nothing
              returning id, status
            )
            insert into floor_emails select id from ins where status = 'PENDING'`,
    },
    {
      name: 'mark report emails SENT',
      bindings: b,
      sql: `update email_log e set status = 'SENT', provider_message_id = 'floor-' || e.id, sent_at = :now from floor_emails f where e.id = f.id`,
    },
    {
      name: 'set emailed_at',
      bindings: b,
      sql: `update drift_reports d set emailed_at = :now from floor_reports r where d.id = r.id`,
    },
  ]);
}

export interface SyncFloorInput {
  /** Report requests the job made (both reports of every integration synced). */
  requests: number;
  /** Token refreshes (token endpoint calls), answered without latency here. */
  latencyMs: number;
  /** Requests in flight allowed across realms: QUICKBOOKS_CONCURRENCY integrations × 2 reports. */
  globalConcurrency: number;
  /** Per realm: in flight, and per minute. */
  perRealmInFlight: number;
  perRealmPerMinute: number;
  /** Requests of the realms with more than two (shared realms). */
  busyRealms: Record<string, number>;
}

/**
 * sync-quickbooks' floor: the time the API calls need at best. Every request takes
 * `latency`; at most `globalConcurrency` run at once overall, at most
 * `perRealmInFlight` for one realm, and at most `perRealmPerMinute` start in one
 * realm per minute. The floor is the largest of these three bounds.
 */
export function syncFloor(i: SyncFloorInput): { ms: number; bound: string; parts: Record<string, number> } {
  const global = (i.requests * i.latencyMs) / i.globalConcurrency;
  let realm = 0;
  let rate = 0;
  for (const n of Object.values(i.busyRealms)) {
    realm = Math.max(realm, (n * i.latencyMs) / Math.min(i.perRealmInFlight, i.globalConcurrency));
    rate = Math.max(rate, Math.max(0, Math.ceil(n / i.perRealmPerMinute) - 1) * 60_000);
  }
  const parts = { global: Math.round(global), perRealmInFlight: Math.round(realm), perRealmRate: rate };
  const ms = Math.max(global, realm, rate);
  const bound = ms === global ? 'requests × latency ÷ global concurrency' : ms === realm ? 'busiest realm × latency ÷ per-realm in-flight limit' : 'busiest realm ÷ per-minute limit';
  return { ms: Math.round(ms), bound, parts };
}
