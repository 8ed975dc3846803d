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
import { renderChart } from './chart.ts';

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
  loadAverage: number;
  othersCpuPercent: number | null;
  statementsPerItem: number | null;
  statementsByVerb: Record<string, number>;
  pgStatDatabase: DbStats;
  emailsSent: number;
  emailsAccepted: number;
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
      wallS: s1(j.wallMs)!, itemsPerSecond: j.itemsPerSecond, msPerItem: j.msPerItem, peakRssMb: j.peakRssMb, cpuS: s1(j.cpuMs), loadAverage: j.loadAverage, othersCpuPercent: j.othersCpuPercent, statements: j.statements,
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
  const head = ['users', 'job', 'exit', 'items', 'wall s', 'items/s', 'ms/item', 'peak RSS MB', 'job CPU s', "others' CPU %", 'SQL stmts', 'stmts/item', 'emails/s', 'floor s', 'job/floor', '4 shards s', 'speed-up', 'exactly once'];
  const body = rs.map((r) => [r.users, r.job, r.exitCode, `${fmt(r.items)} ${r.itemLabel}`, r.wallS, r.itemsPerSecond, r.msPerItem, r.peakRssMb, r.cpuS, r.othersCpuPercent, r.statements, r.statementsPerItem, r.emailsPerSecond, r.floorS, r.ratio === null ? null : `${r.ratio}×`, r.shardedWallS, r.speedup === null ? null : `${r.speedup}×`, r.exactlyOnce === null ? null : r.exactlyOnce ? 'yes' : 'NO'].map(fmt));
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
  const big = at(1_000_000, 'detect-inactivity');
  out.push({ goal: 'detect-inactivity at 1M users ≤ 6× its SQL floor', holds: big?.ratio != null ? big.ratio <= 6 : null, measured: big?.ratio != null ? `${big.ratio}× (${big.wallS} s vs floor ${big.floorS} s)` : 'not measured' });
  out.push({ goal: 'detect-inactivity at 1M users: peak RSS ≤ 300 MB', holds: big ? big.peakRssMb <= 300 : null, measured: big ? `${big.peakRssMb} MB` : 'not measured' });
  const drift = at(1_000_000, 'generate-drift-reports');
  out.push({ goal: 'generate-drift-reports at 100k companies ≤ 8× floor', holds: drift?.ratio != null ? drift.ratio <= 8 : null, measured: drift?.ratio != null ? `${drift.ratio}× (${drift.wallS} s vs floor ${drift.floorS} s)` : 'not measured' });
  out.push({ goal: 'generate-drift-reports at 100k companies: peak RSS ≤ 300 MB', holds: drift ? drift.peakRssMb <= 300 : null, measured: drift ? `${drift.peakRssMb} MB` : 'not measured' });
  const sync = at(1_000_000, 'sync-quickbooks');
  out.push({ goal: 'sync-quickbooks, 20k integrations at 50 ms: ≤ 1.5× its concurrency floor', holds: sync?.ratio != null ? sync.ratio <= 1.5 : null, measured: sync?.ratio != null ? `${sync.ratio}× (${sync.wallS} s vs floor ${sync.floorS} s, ${fmt(sync.items)} integrations)` : 'not measured' });
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
    out.push({ goal: `${job}: peak RSS at 1M ≤ 1.5× at 100k`, holds: rss === null ? null : rss <= 1.5, measured: rss === null ? 'not measured' : `${rss}× (${a!.peakRssMb} → ${b!.peakRssMb} MB)` });
    const per = a?.msPerItem && b?.msPerItem ? Math.round((b.msPerItem / a.msPerItem) * 100) / 100 : null;
    out.push({ goal: `${job}: time per item at 1M within 1.5× of 100k`, holds: per === null ? null : per <= 1.5, measured: per === null ? 'not measured' : `${per}× (${a!.msPerItem} → ${b!.msPerItem} ms/item)` });
  }
  return out;
}

/** Reads every scale's results, writes summary.json, RESULTS.md and chart.png; returns what to print. */
export async function writeReport(resultsDir: string, machine: Record<string, unknown>): Promise<string> {
  const scales = fs.readdirSync(resultsDir)
    .filter((f) => /^users-\d+\.json$/.test(f))
    .map((f) => JSON.parse(fs.readFileSync(path.join(resultsDir, f), 'utf8')) as ScaleResult)
    .sort((a, b) => a.users - b.users);
  const rs = rows(scales);
  const gs = goals(rs);
  fs.writeFileSync(path.join(resultsDir, 'summary.json'), JSON.stringify({ machine, rows: rs, goals: gs }, null, 2) + '\n');
  const benchDir = path.dirname(resultsDir);
  fs.writeFileSync(path.join(benchDir, 'chart.png'), renderChart(rs));
  const md = resultsMarkdown(machine, scales, rs, gs);
  fs.writeFileSync(path.join(benchDir, 'RESULTS.md'), md);
  const goalLines = gs.map((g) => `${g.holds === null ? '  ?' : g.holds ? ' ok' : 'OFF'}  ${g.goal}: ${g.measured}`);
  return `${table(rs)}\n\n${goalLines.join('\n')}`;
}

function resultsMarkdown(machine: Record<string, unknown>, scales: ScaleResult[], rs: SummaryRow[], gs: Goal[]): string {
  const pg = machine.postgres as Record<string, string> | undefined;
  const dataRows = scales.map((s) => `| ${fmt(s.users)} | ${fmt(s.counts.companies)} | ${fmt(s.counts.user_sessions)} | ${fmt(s.counts.assessments)} | ${fmt(s.counts.tasks)} | ${fmt(s.counts.financial_periods)} | ${fmt(s.counts.quickbooks_integrations)} | ${fmt(s.databaseMb)} | ${s1(s.generateMs.total ?? 0)} |`);
  const sharding = scales.flatMap((s) => s.sharded.map((sh) => `| ${fmt(s.users)} | ${sh.job} | ${s1(sh.wallMs)} | ${sh.speedup}× | ${sh.perShard.map((p) => fmt(p.items)).join(' / ')} | ${sh.perShard.map((p) => p.peakRssMb).join(' / ')} | ${sh.limits ? `${sh.limits.maxInFlightPerRealm} (limit 10)` : '–'} | ${sh.exactlyOnce ? 'yes' : `NO: ${sh.differences.join('; ')}`} |`));
  return `# Benchmark results (issue 8)

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

![wall time and peak RSS against users](chart.png)

## Four shards (SHARD_COUNT=4, four processes at once, on a fresh copy of the same data)

| users | job | wall s | speed-up vs 1 process | items per shard | peak RSS MB per shard | QuickBooks: most in flight for one realm, all shards | every item exactly once |
| --- | --- | --- | --- | --- | --- | --- | --- |
${sharding.join('\n')}

Exactly once: the rows the sharded run wrote (signals, ledger entries, nudges, reports, report emails, synced integrations and periods, hashed by item id)
equal the single process's, with no item written twice. The machine has 2 cores, so 4 processes cannot be 4× faster here.

## Goals

| goal | holds | measured |
| --- | --- | --- |
${gs.map((g) => `| ${g.goal} | ${g.holds === null ? 'not measured' : g.holds ? 'yes' : '**no**'} | ${g.measured} |`).join('\n')}
`;
}
