/**
 * The bench's outputs: the table (printed and in RESULTS.md), the goals and which
 * hold, bench/results/summary.json (the rows RESULTS.md and the chart need, kept
 * in git) and bench/chart.png. Reads every bench/results/users-*.json present, so
 * a run at one scale keeps the other scales' latest numbers.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DbStats } from './database.ts';
import type { FloorStatement } from './floors.ts';
import type { JobName } from './jobs.ts';
import type { Fingerprint } from './verify.ts';
import type { RealmLimitsReport } from './quickbooks-front.ts';
import { PEAK_RSS_GOAL_MB, renderChart } from './chart.ts';

export interface JobResult {
  job: JobName;
  users: number;
  exitCode: number | null;
  crashed: boolean;
  wallMs: number;
  items: number;
  itemLabel: string;
  itemsPerSecond: number;
  msPerItem: number | null;
  peakRssMb: number;
  peakRssSource: string;
  statements: number | null;
  cpuMs: number | null;
  /** CPU time of the job process (user + system) ÷ items, ms: the main figure of issue 16 (robust to load). */
  cpuMsPerItem: number | null;
  /** CPU time before the job's first SQL statement (module loading, configuration), ms. */
  startupCpuMs: number | null;
  /** Of cpuMs, user and system (kernel) time, ms. */
  cpuUserMs?: number | null;
  cpuSystemMs?: number | null;
  /** Wall time with a SQL statement outstanding, ms. */
  sqlBusyMs?: number | null;
  sqlMsByVerb?: Record<string, number>;
  /** Time in garbage collection, ms by kind, and how many collections. */
  gc: { minorMs: number; majorMs: number; incrementalMs: number; otherMs: number; count: number; peakLiveAfterMajorMb?: number; heapUsedAtExitMb?: number } | null;
  loadAverage: number;
  othersCpuPercent: number | null;
  statementsPerItem: number | null;
  statementsByVerb: Record<string, number>;
  pgStatDatabase: DbStats;
  emailsSent: number;
  emailsAccepted: number;
  /** Mean size of a mail/send request body the loopback SendGrid received, bytes. */
  bytesPerEmail?: number | null;
  emailsPerSecond: number;
  floorMs: number | null;
  floorBound?: string;
  floorParts?: Record<string, number>;
  floorError?: string;
  floorStatements: FloorStatement[];
  ratio: number | null;
  limits: RealmLimitsReport | null;
  summary: Record<string, unknown> | null;
  stdoutTail?: string | undefined;
  logFile: string;
}

export interface ShardedResult {
  job: JobName;
  users: number;
  shards: number;
  wallMs: number;
  speedup: number;
  items: number;
  exactlyOnce: boolean;
  differences: string[];
  single: Fingerprint;
  sharded: Fingerprint;
  perShard: Array<{ index: number; exitCode: number | null; wallMs: number; cpuMs: number | null; loadAverage: number; peakRssMb: number; items: number; statements: number | null }>;
  limits?: { maxInFlightPerRealm: number; maxPerMinutePerRealm: number; maxInFlight: number; reportRequests: number };
}

export interface ScaleResult {
  users: number;
  /** An experiment's name (--tag): kept out of RESULTS.md. */
  tag?: string;
  env?: Record<string, string>;
  nodeOptions?: string;
  dbSettings?: string;
  scale: Record<string, number>;
  counts: Record<string, number>;
  generateMs: Record<string, number>;
  databaseMb: number;
  latencyMs: number;
  now: string;
  jobs: JobResult[];
  sharded: ShardedResult[];
  finishedAt: string;
}

/** One row of summary.json: what the table and the chart show. */
export interface SummaryRow {
  users: number;
  companies: number;
  job: JobName;
  exitCode: number | null;
  items: number;
  itemLabel: string;
  wallS: number;
  itemsPerSecond: number;
  msPerItem: number | null;
  peakRssMb: number;
  cpuS: number | null;
  cpuMsPerItem: number | null;
  startupCpuS: number | null;
  gcS: number | null;
  loadAverage: number;
  othersCpuPercent: number | null;
  statements: number | null;
  statementsPerItem: number | null;
  xactCommit: number;
  tupInserted: number;
  tupUpdated: number;
  emailsSent: number;
  emailsPerSecond: number;
  floorS: number | null;
  ratio: number | null;
  shardedWallS: number | null;
  speedup: number | null;
  exactlyOnce: boolean | null;
  maxInFlightPerRealm?: number;
  maxPerMinutePerRealm?: number;
  shardedMaxInFlightPerRealm?: number;
  generateS: number;
  finishedAt: string;
}

const s1 = (ms: number | null) => (ms === null ? null : Math.round(ms / 100) / 10);

function rows(scales: ScaleResult[]): SummaryRow[] {
  return scales.flatMap((sc) => sc.jobs.map((j) => {
    const sh = sc.sharded.find((x) => x.job === j.job);
    return {
      users: sc.users, companies: sc.scale.companies ?? 0, job: j.job, exitCode: j.exitCode, items: j.items, itemLabel: j.itemLabel,
      wallS: s1(j.wallMs)!, itemsPerSecond: j.itemsPerSecond, msPerItem: j.msPerItem, peakRssMb: j.peakRssMb, cpuS: s1(j.cpuMs), cpuMsPerItem: j.cpuMsPerItem ?? null, startupCpuS: s1(j.startupCpuMs ?? null), gcS: j.gc ? s1(j.gc.minorMs + j.gc.majorMs + j.gc.incrementalMs + j.gc.otherMs) : null, loadAverage: j.loadAverage, othersCpuPercent: j.othersCpuPercent, statements: j.statements,
      statementsPerItem: j.statementsPerItem, xactCommit: j.pgStatDatabase.xact_commit, tupInserted: j.pgStatDatabase.tup_inserted, tupUpdated: j.pgStatDatabase.tup_updated,
      emailsSent: j.emailsSent, emailsPerSecond: j.emailsPerSecond, floorS: s1(j.floorMs), ratio: j.ratio,
      shardedWallS: sh ? s1(sh.wallMs) : null, speedup: sh?.speedup ?? null, exactlyOnce: sh?.exactlyOnce ?? null,
      ...(j.limits ? { maxInFlightPerRealm: j.limits.maxInFlightPerRealm, maxPerMinutePerRealm: j.limits.maxPerMinutePerRealm } : {}),
      ...(sh?.limits ? { shardedMaxInFlightPerRealm: sh.limits.maxInFlightPerRealm } : {}),
      generateS: s1(sc.generateMs.total ?? 0)!, finishedAt: sc.finishedAt,
    };
  }));
}

const fmt = (v: unknown) => (v === null || v === undefined ? '–' : typeof v === 'number' ? v.toLocaleString('en-US') : String(v));

function table(rs: SummaryRow[]): string {
  const head = ['users', 'job', 'exit', 'items', 'CPU ms/item', 'job CPU s', 'of which start-up s', 'GC s', 'wall s', 'job/floor', 'floor s', 'peak RSS MB', 'items/s', 'wall ms/item', "others' CPU %", 'SQL stmts', 'stmts/item', 'emails/s', '4 shards s', 'speed-up', 'exactly once'];
  const body = rs.map((r) => [r.users, r.job, r.exitCode, `${fmt(r.items)} ${r.itemLabel}`, r.cpuMsPerItem, r.cpuS, r.startupCpuS, r.gcS, r.wallS, r.ratio === null ? null : `${r.ratio}×`, r.floorS, r.peakRssMb, r.itemsPerSecond, r.msPerItem, r.othersCpuPercent, r.statements, r.statementsPerItem, r.emailsPerSecond, r.shardedWallS, r.speedup === null ? null : `${r.speedup}×`, r.exactlyOnce === null ? null : r.exactlyOnce ? 'yes' : 'NO'].map(fmt));
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
}

export interface Goal {
  goal: string;
  holds: boolean | null;
  measured: string;
}

function goals(rs: SummaryRow[]): Goal[] {
  const at = (users: number, job: JobName) => rs.find((r) => r.users === users && r.job === job);
  const out: Goal[] = [];
  // Issue 16: CPU per item (the main figure), against the floor in one run, peak RSS at 1M in the image's settings.
  const notHere = (job: JobName) => `not measured${job === 'sync-quickbooks' ? ' in this run (sync-quickbooks is measured by its own helper)' : ''}`;
  const cpuGoals: Array<[JobName, number, string]> = [['detect-inactivity', 0.2, 'inactive owner'], ['generate-drift-reports', 0.35, 'company'], ['sync-quickbooks', 1.2, 'integration']];
  for (const [job, limit, per] of cpuGoals) {
    const r = at(1_000_000, job);
    const others = [10_000, 100_000].map((u) => at(u, job)).filter((x) => x?.cpuMsPerItem != null).map((x) => `${fmt(x!.users)} users: ${x!.cpuMsPerItem} ms`);
    out.push({
      goal: `${job}: CPU per ${per} ≤ ${limit} ms at 1M users${job === 'sync-quickbooks' ? '' : ' (emails included)'}`,
      holds: r?.cpuMsPerItem != null ? r.cpuMsPerItem <= limit : null,
      measured: r?.cpuMsPerItem != null ? `${r.cpuMsPerItem} ms (${r.cpuS} s CPU for ${fmt(r.items)} ${r.itemLabel}${r.startupCpuS !== null ? `, ${r.startupCpuS} s of it start-up` : ''})${others.length ? `; ${others.join(', ')}` : ''}` : notHere(job),
    });
  }
  const ratioGoals: Array<[JobName, number, string]> = [['detect-inactivity', 3, 'its bare-SQL floor'], ['generate-drift-reports', 4, 'its bare-SQL floor'], ['sync-quickbooks', 1.5, 'its concurrency floor at 50 ms per call']];
  for (const [job, limit, floor] of ratioGoals) {
    const r = at(1_000_000, job);
    out.push({ goal: `${job} at 1M users ≤ ${limit}× ${floor}, in one run`, holds: r?.ratio != null ? r.ratio <= limit : null, measured: r?.ratio != null ? `${r.ratio}× (${r.wallS} s vs floor ${r.floorS} s)` : notHere(job) });
  }
  for (const job of ['detect-inactivity', 'generate-drift-reports', 'sync-quickbooks'] as JobName[]) {
    const r = at(1_000_000, job);
    out.push({ goal: `${job} at 1M users: peak RSS ≤ ${PEAK_RSS_GOAL_MB} MB (the image's NODE_ENV and NODE_OPTIONS)`, holds: r ? r.peakRssMb <= PEAK_RSS_GOAL_MB : null, measured: r ? `${r.peakRssMb} MB` : notHere(job) });
  }
  const sync = at(1_000_000, 'sync-quickbooks');
  out.push({
    goal: 'sync-quickbooks never exceeds the per-realm limits (10 in flight, 500 a minute): one process',
    holds: sync?.maxInFlightPerRealm !== undefined ? sync.maxInFlightPerRealm <= 10 && (sync.maxPerMinutePerRealm ?? 0) <= 500 : null,
    measured: sync?.maxInFlightPerRealm !== undefined ? `at most ${sync.maxInFlightPerRealm} in flight and ${sync.maxPerMinutePerRealm} started in a minute for one realm` : 'not measured',
  });
  out.push({
    goal: 'sync-quickbooks never exceeds the per-realm limits: 4 shards together',
    holds: sync?.shardedMaxInFlightPerRealm !== undefined ? sync.shardedMaxInFlightPerRealm <= 10 : null,
    measured: sync?.shardedMaxInFlightPerRealm !== undefined ? `at most ${sync.shardedMaxInFlightPerRealm} in flight for one realm (each process enforces its own limit; FINDINGS.md 4)` : 'not measured',
  });
  for (const job of ['detect-inactivity', 'generate-drift-reports', 'sync-quickbooks'] as JobName[]) {
    const a = at(100_000, job);
    const b = at(1_000_000, job);
    const rss = a && b ? Math.round((b.peakRssMb / a.peakRssMb) * 100) / 100 : null;
    out.push({ goal: `${job}: memory flat, peak RSS at 1M ≤ 1.25× at 100k`, holds: rss === null ? null : rss <= 1.25, measured: rss === null ? 'not measured' : `${rss}× (${a!.peakRssMb} → ${b!.peakRssMb} MB)` });
    const per = a?.cpuMsPerItem && b?.cpuMsPerItem ? Math.round((b.cpuMsPerItem / a.cpuMsPerItem) * 100) / 100 : null;
    out.push({ goal: `${job}: CPU per item at 1M within 1.5× of 100k`, holds: per === null ? null : per <= 1.5, measured: per === null ? 'not measured' : `${per}× (${a!.cpuMsPerItem} → ${b!.cpuMsPerItem} ms/item)` });
  }
  return out;
}

/** One job of one normal run, kept in bench/results/history.json (and summary.json): every run at a scale, not only the latest. */
export interface HistoryRow {
  finishedAt: string;
  commit: string;
  users: number;
  job: JobName;
  items: number;
  cpuMsPerItem: number | null;
  cpuS: number | null;
  wallS: number;
  floorS: number | null;
  ratio: number | null;
  peakRssMb: number;
  othersCpuPercent: number | null;
}

const HISTORY = 'history.json';

function readHistory(resultsDir: string): HistoryRow[] {
  for (const f of [HISTORY, 'summary.json']) {
    try {
      const j = JSON.parse(fs.readFileSync(path.join(resultsDir, f), 'utf8')) as HistoryRow[] | { history?: HistoryRow[] };
      const h = Array.isArray(j) ? j : j.history;
      if (h) return h;
    } catch {
      // absent: next source
    }
  }
  return [];
}

/** Appends a normal run's jobs to bench/results/history.json. */
export function recordHistory(resultsDir: string, scales: ScaleResult[], machine: Record<string, unknown>): void {
  const rows: HistoryRow[] = scales.flatMap((sc) => sc.jobs.map((j) => ({
    finishedAt: sc.finishedAt, commit: String(machine.commit ?? 'unknown'), users: sc.users, job: j.job, items: j.items, cpuMsPerItem: j.cpuMsPerItem ?? null,
    cpuS: s1(j.cpuMs), wallS: s1(j.wallMs)!, floorS: s1(j.floorMs), ratio: j.ratio, peakRssMb: j.peakRssMb, othersCpuPercent: j.othersCpuPercent,
  })));
  fs.writeFileSync(path.join(resultsDir, HISTORY), JSON.stringify([...readHistory(resultsDir), ...rows], null, 2) + '\n');
}

/** Reads every scale's results, writes summary.json, RESULTS.md and chart.png; returns what to print. */
export async function writeReport(resultsDir: string, machine: Record<string, unknown>): Promise<string> {
  const scales = fs.readdirSync(resultsDir)
    .filter((f) => /^users-\d+\.json$/.test(f))
    .map((f) => JSON.parse(fs.readFileSync(path.join(resultsDir, f), 'utf8')) as ScaleResult)
    .sort((a, b) => a.users - b.users);
  const rs = rows(scales);
  const gs = goals(rs);
  const history = readHistory(resultsDir);
  fs.writeFileSync(path.join(resultsDir, 'summary.json'), JSON.stringify({ machine, rows: rs, goals: gs, history }, null, 2) + '\n');
  const benchDir = path.dirname(resultsDir);
  fs.writeFileSync(path.join(benchDir, 'chart.png'), renderChart(rs));
  const md = resultsMarkdown(machine, scales, rs, gs, history);
  fs.writeFileSync(path.join(benchDir, 'RESULTS.md'), md);
  const goalLines = gs.map((g) => `${g.holds === null ? '  ?' : g.holds ? ' ok' : 'OFF'}  ${g.goal}: ${g.measured}`);
  return `${table(rs)}\n\n${goalLines.join('\n')}`;
}

function historyTable(history: HistoryRow[], users: number): string {
  const rows = history.filter((h) => h.users === users);
  if (!rows.length) return '(none recorded yet)';
  const head = ['finished', 'commit', 'job', 'items', 'CPU ms/item', 'job CPU s', 'wall s', 'floor s', 'job/floor', 'peak RSS MB', "others' CPU %"];
  const body = rows.map((h) => [h.finishedAt.slice(0, 16).replace('T', ' '), h.commit.slice(0, 8), h.job, h.items, h.cpuMsPerItem, h.cpuS, h.wallS, h.floorS, h.ratio === null ? null : `${h.ratio}×`, h.peakRssMb, h.othersCpuPercent].map(fmt));
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
}

function resultsMarkdown(machine: Record<string, unknown>, scales: ScaleResult[], rs: SummaryRow[], gs: Goal[], history: HistoryRow[]): string {
  const pg = machine.postgres as Record<string, string> | undefined;
  const dataRows = scales.map((s) => `| ${fmt(s.users)} | ${fmt(s.counts.companies)} | ${fmt(s.counts.user_sessions)} | ${fmt(s.counts.assessments)} | ${fmt(s.counts.tasks)} | ${fmt(s.counts.financial_periods)} | ${fmt(s.counts.quickbooks_integrations)} | ${fmt(s.databaseMb)} | ${s1(s.generateMs.total ?? 0)} |`);
  const sharding = scales.flatMap((s) => s.sharded.map((sh) => `| ${fmt(s.users)} | ${sh.job} | ${s1(sh.wallMs)} | ${sh.speedup}× | ${sh.perShard.map((p) => fmt(p.items)).join(' / ')} | ${sh.perShard.map((p) => p.peakRssMb).join(' / ')} | ${sh.limits ? `${sh.limits.maxInFlightPerRealm} (limit 10)` : '–'} | ${sh.exactlyOnce ? 'yes' : `NO: ${sh.differences.join('; ')}`} |`));
  return `# Benchmark results (issues 8 and 16)

Generated by \`npm run bench\` (bench/run.ts); do not edit by hand. Latest run: ${scales.map((s) => `${fmt(s.users)} users at ${s.finishedAt}`).join(', ')}.
How the numbers are made, and what they mean: bench/README.md. What the profiles showed: bench/FINDINGS.md.

## Machine

${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB} GiB, ${machine.os}; Node ${machine.node};
PostgreSQL ${pg?.server_version ?? '?'} on the same machine (shared_buffers ${pg?.shared_buffers ?? '?'}, work_mem ${pg?.work_mem ?? '?'}, random_page_cost ${pg?.random_page_cost ?? '?'}, synchronous_commit ${pg?.synchronous_commit ?? '?'}, jit ${pg?.jit ?? '?'}; pg_stat_statements not loaded);
suite at commit ${machine.commit}. QuickBooks latency ${scales[0]?.latencyMs ?? '?'} ms per report call; SendGrid a loopback answering 202 at once.
The jobs run as the image runs them: the compiled CLI (\`dist/\`), NODE_ENV=production, NODE_OPTIONS=\`${String(machine.jobNodeOptions ?? '?')}\` (the Dockerfile's).
The job, PostgreSQL, and the loopback servers share the 2 cores.

## Data

| users | companies | sessions | assessments | tasks | financial periods | QuickBooks integrations | database MB | generated in s |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${dataRows.join('\n')}

## Single process

${table(rs)}

- others' CPU %: the share of the machine's 2 cores used during the run by everything but the job process (PostgreSQL, the bench's
  loopback servers, and whatever else ran: other people's test suites on a shared machine). High values mean the wall times are pessimistic;
  the job/floor ratio, with the floor timed in the same conditions just before, is the steadier figure.
- items: what the job works through (inactive owners = \`usersChecked\`; active companies = \`totalCompanies\`; integrations = \`integrationsChecked\`).
- peak RSS: the job process's VmHWM at exit. SQL stmts: statements the process sent (every \`pg.Client#query\`, counted by a preload in the child).
- floor: the same reads and writes as bare set-based SQL in one rolled-back transaction, timed in the same run on the same data
  (sync-quickbooks: report requests × latency ÷ allowed concurrency, or the busiest realm's bound when larger).
- CPU ms/item: user + system CPU of the job process ÷ items, start-up included (its share is the next column: module loading and
  configuration, before the first SQL statement). CPU time moves far less than wall time on a shared machine: the main figure.
  GC s: the summed pauses of garbage collection (PerformanceObserver \`gc\` entries). They are wall time: on an overloaded machine
  (others' CPU near 90%) a pause waits for a core, and the sum can exceed the job's CPU time. The count of collections is in the JSON.

![wall time and peak RSS against users](chart.png)

## Every run at 1M users

The table above shows the latest run at each scale; these are all the runs at 1M recorded by \`npm run bench\` (bench/results/history.json).

${historyTable(history, 1_000_000)}

## Four shards (SHARD_COUNT=4, four processes at once, on a fresh copy of the same data)

${sharding.length ? `| users | job | wall s | speed-up vs 1 process | items per shard | peak RSS MB per shard | QuickBooks: most in flight for one realm, all shards | every item exactly once |
| --- | --- | --- | --- | --- | --- | --- | --- |
${sharding.join('\n')}` : 'Not run with the latest results (--shards 0). The last sharded runs (bench/FINDINGS.md, round one) processed every item exactly once at 10k, 100k and 1M.'}

Exactly once: the rows the sharded run wrote (signals, ledger entries, nudges, reports, report emails, synced integrations and periods, hashed by item id)
equal the single process's, with no item written twice. The machine has 2 cores, so 4 processes cannot be 4× faster here.

## Goals

| goal | holds | measured |
| --- | --- | --- |
${gs.map((g) => `| ${g.goal} | ${g.holds === null ? 'not measured' : g.holds ? 'yes' : '**no**'} | ${g.measured} |`).join('\n')}
`;
}
