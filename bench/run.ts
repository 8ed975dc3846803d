/**
 * Issue 8's benchmark: the three jobs against generated product data at scale.
 *
 *   npm run bench -- --users 10000,100000,1000000
 *
 * For each scale: a template database is generated (or reused when it matches),
 * copied fresh for a single-process run of each job (its SQL floor timed first,
 * in a rolled-back transaction on the same data), and copied again for the same
 * run as 4 shards in parallel, checked to process every item exactly once. Prints
 * a table, writes bench/results/*.json, bench/RESULTS.md and bench/chart.png.
 * Flags: `node bench/run.ts --help`.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openPostgresUrl } from '../lib/db/connect.ts';
import { buildCli, runChild, ROOT, type ChildResult } from './lib/child.ts';
import { copyDatabase, databaseSize, dbStats, dropDatabase, generateTemplate, GENERATOR_VERSION, keyId, quiesce, readTemplateMeta, serverInfo, statsDelta, urlFor, withAdmin, type DbStats, type TemplateMeta } from './lib/database.ts';
import { driftFloor, inactivityFloor, syncFloor, type Floor } from './lib/floors.ts';
import { scaleFor } from './lib/generate.ts';
import { BENCH_JOBS, JOB_NAMES, shortSummary, type JobName } from './lib/jobs.ts';
import { startQuickBooksFront, type QuickBooksFront, type RealmLimitsReport } from './lib/quickbooks-front.ts';
import { recordHistory, writeReport, type JobResult, type ScaleResult, type ShardedResult } from './lib/report.ts';
import { startSendGridSink, type SendGridSink } from './lib/sendgrid-sink.ts';
import { exactlyOnce, fingerprint, type Fingerprint } from './lib/verify.ts';

const HELP = `npm run bench -- [flags]
  --users LIST        users per scale, comma-separated (companies = users/10) [10000]
  --jobs LIST         jobs to run [${JOB_NAMES.join(',')}]
  --latency-ms N      QuickBooks latency per report call [50]
  --shards N          also run as N shards in parallel, 0 to skip [4]
  --now ISO           the fixed clock of data and runs [2026-03-02T08:00:00Z]
  --server URL        PostgreSQL server [postgres://postgres@127.0.0.1:5432/postgres]
  --regenerate        regenerate the data even when a matching template exists
  --cpu-prof          write V8 CPU profiles of the single runs to bench/results/profiles
  --node-args STR     extra flags on the jobs' node command line (V8 flags NODE_OPTIONS refuses, e.g. --heap-growing-percent=50)
  --heap-sample       write a sampling heap profile of all allocations (collected ones included) per single run
  --log-level LEVEL   the jobs' LOG_LEVEL [info]
  --keep              keep the run databases (for EXPLAIN)
  --node-options STR  extra NODE_OPTIONS for the job processes (e.g. --max-old-space-size=150)
  --env K=V,...       extra environment for the job processes (e.g. EMAIL_CONCURRENCY=16)
  --db-setting K=V    ALTER DATABASE … SET on the run copies (e.g. synchronous_commit=off)
  --tag NAME          write bench/results/users-<N>-<NAME>.json instead (experiments; not in RESULTS.md)
  --no-report         do not rewrite RESULTS.md and chart.png
  --report-only       only rewrite RESULTS.md, summary.json and chart.png from bench/results/users-*.json`;

const { values: flags } = parseArgs({
  options: {
    users: { type: 'string', default: '10000' },
    jobs: { type: 'string', default: JOB_NAMES.join(',') },
    'latency-ms': { type: 'string', default: '50' },
    shards: { type: 'string', default: '4' },
    now: { type: 'string', default: '2026-03-02T08:00:00Z' },
    server: { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    regenerate: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    'heap-sample': { type: 'boolean', default: false },
    'node-args': { type: 'string', default: '' },
    'log-level': { type: 'string', default: 'info' },
    keep: { type: 'boolean', default: false },
    'node-options': { type: 'string', default: '' },
    env: { type: 'string', default: '' },
    tag: { type: 'string', default: '' },
    'db-setting': { type: 'string', default: '' },
    'no-report': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

const NOW = new Date(flags.now);
const SERVER = flags.server;
const LATENCY = Number(flags['latency-ms']);
const SHARDS = Number(flags.shards);
const SCALES = flags.users.split(',').map((s) => Number(s.trim()));
const JOBS = flags.jobs.split(',').map((s) => s.trim()) as JobName[];
for (const j of JOBS) if (!JOB_NAMES.includes(j)) throw new Error(`unknown job ${j}`);
const RESULTS = path.join(ROOT, 'bench/results');
const EXTRA_ENV: Record<string, string> = Object.fromEntries(flags.env.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const TAG = flags.tag ? `-${flags.tag.replace(/[^a-z0-9_-]/gi, '')}` : '';
fs.mkdirSync(RESULTS, { recursive: true });

// The job processes' configuration, as an operator would set it (defaults otherwise).
const TOKEN_KEY = crypto.createHash('sha256').update('exitosx-bench-token-key').digest();
const QBO = { clientId: 'bench-client-id', clientSecret: 'bench-client-secret' };
const QBO_CONCURRENCY = 50;
const QBO_PER_REALM_IN_FLIGHT = 10;
const QBO_PER_REALM_PER_MINUTE = 500;

/** The image's NODE_OPTIONS (Dockerfile `ENV NODE_OPTIONS=…`): the jobs run as deployed. */
const IMAGE_NODE_OPTIONS = /^\s*(?:ENV\s+)?NODE_OPTIONS=("[^"]*"|\S+)/m.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1]?.replace(/^"|"$/g, '') ?? '';

const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

function jobEnv(dbName: string, sendgrid: SendGridSink, qbo: QuickBooksFront, shard?: { count: number; index: number }): Record<string, string> {
  return {
    NODE_OPTIONS: `--disable-warning=ExperimentalWarning ${IMAGE_NODE_OPTIONS} ${flags['node-options']}`.trim(),
    NODE_ENV: 'production', // as in the image
    DATABASE_URL: urlFor(SERVER, dbName),
    LOG_LEVEL: flags['log-level'],
    SENDGRID_API_KEY: sendgrid.apiKey,
    SENDGRID_API_URL: sendgrid.url,
    EMAIL_OUTBOX_DIR: path.join(RESULTS, 'outbox'),
    EMBEDDED_DB_DIR: path.join(RESULTS, 'embedded-unused'),
    QUICKBOOKS_CLIENT_ID: QBO.clientId,
    QUICKBOOKS_CLIENT_SECRET: QBO.clientSecret,
    QUICKBOOKS_API_URL: qbo.apiUrl,
    QUICKBOOKS_TOKEN_URL: qbo.tokenUrl,
    QUICKBOOKS_CONCURRENCY: String(QBO_CONCURRENCY),
    QUICKBOOKS_MAX_IN_FLIGHT: String(QBO_PER_REALM_IN_FLIGHT),
    QUICKBOOKS_MAX_PER_MINUTE: String(QBO_PER_REALM_PER_MINUTE),
    TOKEN_ENCRYPTION_KEY: TOKEN_KEY.toString('base64'),
    ...EXTRA_ENV,
    ...(shard ? { SHARD_COUNT: String(shard.count), SHARD_INDEX: String(shard.index) } : {}),
  };
}

/** The report windows the sync asks for at NOW: 24 months back, and the re-fetch window of companies with stored months. */
function syncWindows(now: Date): Array<{ startDate: string; endDate: string }> {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const day = (d: Date) => d.toISOString().slice(0, 10);
  const end = day(new Date(Date.UTC(y, m + 1, 0)));
  return [{ startDate: day(new Date(Date.UTC(y, m - 24, 1))), endDate: end }, { startDate: day(new Date(Date.UTC(y, m - 3, 1))), endDate: end }];
}

function driftPeriod(now: Date) {
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  return { start, end, month: start.toISOString().slice(0, 7) };
}

async function ensureTemplate(users: number): Promise<TemplateMeta> {
  const name = `exitosx_bench_${users}`;
  const scale = scaleFor(users);
  const meta = await readTemplateMeta(SERVER, name);
  if (!flags.regenerate && meta && meta.version === GENERATOR_VERSION && meta.now === NOW.toISOString() && meta.tokenKeyId === keyId(TOKEN_KEY) && JSON.stringify(meta.scale) === JSON.stringify(scale)) {
    log(`reusing ${name} (generated in ${meta.generateMs.total} ms)`);
    return meta;
  }
  log(`generating ${name}: ${JSON.stringify(scale)}`);
  const made = await generateTemplate({ serverUrl: SERVER, name, scale, now: NOW, tokenKey: TOKEN_KEY, log });
  log(`generated ${name} in ${made.generateMs.total} ms (load ${made.generateMs.load} ms, vacuum analyze ${made.generateMs.vacuumAnalyze} ms)`);
  return made;
}

async function withDb<T>(name: string, fn: (db: Awaited<ReturnType<typeof openPostgresUrl>>) => Promise<T>): Promise<T> {
  const db = await openPostgresUrl(urlFor(SERVER, name), 'exitosx-bench', 2);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Waits until the job's backends have exited and flushed their statistics. */
const settle = () => new Promise((r) => setTimeout(r, 700));

async function runSingle(users: number, job: JobName, dbName: string, sendgrid: SendGridSink, qbo: QuickBooksFront): Promise<{ result: JobResult; print: Fingerprint }> {
  const bench = BENCH_JOBS[job];
  let floor: Floor | null = null;
  let floorError: string | undefined;
  const quiet = await quiesce(SERVER);
  log(`  ${job}: database quiet (checkpoint ${quiet.checkpointMs} ms, waited ${quiet.vacuumWaitMs} ms for autovacuum)`);
  if (job !== 'sync-quickbooks') {
    try {
      floor = await withDb(dbName, (db) => (job === 'detect-inactivity' ? inactivityFloor(db.knex, NOW) : driftFloor(db.knex, NOW, driftPeriod(NOW))));
      log(`  ${job} floor: ${floor.ms} ms`);
    } catch (err) {
      floorError = (err as Error).message;
      log(`  ${job} floor FAILED: ${floorError}`);
    }
  }
  // The floor's rolled-back writes, too, are written back before the job starts.
  if (floor) await quiesce(SERVER);
  await settle();
  const before = await dbStats(SERVER, dbName);
  const sentBefore = sendgrid.accepted;
  const requestsBefore = sendgrid.requests;
  const bytesBefore = sendgrid.bytes;
  qbo.reset();
  const child = await runChild({
    args: [job, '--now', NOW.toISOString(), ...bench.args],
    env: jobEnv(dbName, sendgrid, qbo),
    logFile: path.join(RESULTS, 'logs', `${users}${TAG}-${job}.log`),
    ...(flags['cpu-prof'] ? { cpuProfDir: path.join(RESULTS, 'profiles', `${users}${TAG}-${job}`) } : {}),
    ...(flags['heap-sample'] ? { heapSampleFile: path.join(RESULTS, 'profiles', `${users}${TAG}-${job}.heapprofile`) } : {}),
    ...(flags['node-args'] ? { nodeArgs: flags['node-args'].split(' ').filter(Boolean) } : {}),
  });
  await settle();
  const pgStats = statsDelta(before, await dbStats(SERVER, dbName));
  const limits = job === 'sync-quickbooks' ? qbo.report() : null;
  const print = await withDb(dbName, (db) => fingerprint(db.knex, job, NOW));
  const result = summarise(users, job, child, pgStats, sendgrid.accepted - sentBefore, floor, floorError, limits, sendgrid.bytes - bytesBefore);
  log(`  ${job}: exit ${child.exitCode}, ${child.wallMs} ms, ${result.items} ${bench.itemLabel}, peak RSS ${child.peakRssMb} MB, ${child.statements} statements, CPU ${child.cpuMs} ms (user ${child.cpuUserMs}, system ${child.cpuSystemMs}), waiting on SQL ${child.sqlBusyMs} ms (${Object.entries(child.sqlMsByVerb).map(([v, ms]) => `${v} ${ms}`).join(', ')}), ${result.emailsAccepted ? `${result.emailsAccepted} emails in ${sendgrid.requests - requestsBefore} requests, ${result.bytesPerEmail} bytes per email, ` : ''}load ${child.loadAverage}, others ${child.othersCpuPercent}% of the CPUs` +
    (result.floorMs ? `, floor ${result.floorMs} ms, ratio ${result.ratio}` : ''));
  return { result, print };
}

function summarise(users: number, job: JobName, child: ChildResult, pgStats: DbStats, emailsAccepted: number, floor: Floor | null, floorError: string | undefined, limits: RealmLimitsReport | null, emailBytes = 0): JobResult {
  const bench = BENCH_JOBS[job];
  const summary = child.summary ?? {};
  const items = bench.items(summary);
  const seconds = child.wallMs / 1000;
  let floorMs = floor?.ms ?? null;
  let floorBound: string | undefined;
  let floorParts: Record<string, number> | undefined;
  if (limits) {
    const f = syncFloor({ requests: limits.reportRequests, latencyMs: LATENCY, globalConcurrency: QBO_CONCURRENCY * 2, perRealmInFlight: QBO_PER_REALM_IN_FLIGHT, perRealmPerMinute: QBO_PER_REALM_PER_MINUTE, busyRealms: limits.busyRealms });
    floorMs = f.ms;
    floorBound = f.bound;
    floorParts = f.parts;
  }
  const emails = bench.emails(summary);
  return {
    job,
    users,
    exitCode: child.exitCode,
    crashed: child.summary === null,
    wallMs: child.wallMs,
    items,
    itemLabel: bench.itemLabel,
    itemsPerSecond: items ? Math.round((items / seconds) * 10) / 10 : 0,
    msPerItem: items ? Math.round((child.wallMs / items) * 1000) / 1000 : null,
    peakRssMb: child.peakRssMb,
    peakRssSource: child.peakRssSource,
    statements: child.statements,
    cpuMs: child.cpuMs,
    cpuMsPerItem: items && child.cpuMs !== null ? Math.round((child.cpuMs / items) * 1000) / 1000 : null,
    startupCpuMs: child.startupCpuMs,
    cpuUserMs: child.cpuUserMs,
    cpuSystemMs: child.cpuSystemMs,
    sqlBusyMs: child.sqlBusyMs,
    sqlMsByVerb: child.sqlMsByVerb,
    gc: child.gc,
    loadAverage: child.loadAverage,
    othersCpuPercent: child.othersCpuPercent,
    statementsPerItem: items && child.statements ? Math.round((child.statements / items) * 100) / 100 : null,
    statementsByVerb: child.statementsByVerb,
    pgStatDatabase: pgStats,
    emailsSent: emails,
    emailsAccepted,
    bytesPerEmail: emailsAccepted ? Math.round(emailBytes / emailsAccepted) : null,
    emailsPerSecond: Math.round((emails / seconds) * 10) / 10,
    floorMs,
    ...(floorBound ? { floorBound, floorParts } : {}),
    ...(floorError ? { floorError } : {}),
    floorStatements: floor?.statements ?? [],
    ratio: floorMs ? Math.round((child.wallMs / floorMs) * 100) / 100 : null,
    limits: limits ? { ...limits, busyRealms: Object.fromEntries(Object.entries(limits.busyRealms).slice(0, 10)) } : null,
    summary: shortSummary(child.summary),
    stdoutTail: child.summary ? undefined : child.stdoutTail,
    logFile: path.relative(ROOT, child.logFile),
  };
}

async function runSharded(users: number, job: JobName, dbName: string, sendgrid: SendGridSink, qbo: QuickBooksFront, single: JobResult, singlePrint: Fingerprint): Promise<ShardedResult> {
  await quiesce(SERVER);
  qbo.reset();
  const started = performance.now();
  const children = await Promise.all(Array.from({ length: SHARDS }, (_, index) => runChild({
    args: [job, '--now', NOW.toISOString(), ...BENCH_JOBS[job].args],
    env: jobEnv(dbName, sendgrid, qbo, { count: SHARDS, index }),
    logFile: path.join(RESULTS, 'logs', `${users}${TAG}-${job}-shard${index}.log`),
  })));
  const wallMs = Math.round(performance.now() - started);
  const limits = job === 'sync-quickbooks' ? qbo.report() : null;
  const print = await withDb(dbName, (db) => fingerprint(db.knex, job, NOW));
  const check = exactlyOnce(singlePrint, print);
  const items = children.reduce((a, c) => a + BENCH_JOBS[job].items(c.summary ?? {}), 0);
  const result: ShardedResult = {
    job,
    users,
    shards: SHARDS,
    wallMs,
    speedup: Math.round((single.wallMs / wallMs) * 100) / 100,
    items,
    exactlyOnce: check.ok && children.every((c) => c.summary !== null),
    differences: check.differences,
    single: singlePrint,
    sharded: print,
    perShard: children.map((c, index) => ({ index, exitCode: c.exitCode, wallMs: c.wallMs, cpuMs: c.cpuMs, loadAverage: c.loadAverage, peakRssMb: c.peakRssMb, items: BENCH_JOBS[job].items(c.summary ?? {}), statements: c.statements })),
    ...(limits ? { limits: { maxInFlightPerRealm: limits.maxInFlightPerRealm, maxPerMinutePerRealm: limits.maxPerMinutePerRealm, maxInFlight: limits.maxInFlight, reportRequests: limits.reportRequests } } : {}),
  };
  log(`  ${job} × ${SHARDS} shards: ${wallMs} ms (speed-up ${result.speedup}×), ${items} items, exactly once: ${result.exactlyOnce}${check.differences.length ? ` (${check.differences.join('; ')})` : ''}`);
  return result;
}

/** --db-setting: server settings for the run copies (experiments). */
async function applyDbSettings(name: string): Promise<void> {
  for (const kv of flags['db-setting'].split(',').filter(Boolean)) {
    const [k, v] = [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)];
    if (!/^[a-z_]+$/.test(k) || !/^[a-zA-Z0-9_.]+$/.test(v) || !/^[a-z0-9_]+$/.test(name)) throw new Error(`bad --db-setting ${kv}`);
    await withAdmin(SERVER, (c) => c.query(`alter database "${name}" set ${k} = '${v}'`));
  }
}

async function runScale(users: number, sendgrid: SendGridSink, qbo: QuickBooksFront): Promise<ScaleResult> {
  const meta = await ensureTemplate(users);
  const template = `exitosx_bench_${users}`;
  const runDb = `${template}_run${TAG.replace(/-/g, '_').toLowerCase()}`;
  const copyMs = await copyDatabase(SERVER, template, runDb);
  await applyDbSettings(runDb);
  const sizeBytes = await databaseSize(SERVER, template);
  log(`scale ${users} users: ${template} is ${(sizeBytes / 2 ** 20).toFixed(0)} MB; copied in ${copyMs} ms`);
  const jobs: JobResult[] = [];
  const prints: Partial<Record<JobName, Fingerprint>> = {};
  // Saved after every job: a long run stopped half-way keeps what it measured.
  const sharded: ShardedResult[] = [];
  const save = () => {
    const result: ScaleResult = {
      users, ...(TAG ? { tag: flags.tag, env: EXTRA_ENV, nodeOptions: flags['node-options'], dbSettings: flags['db-setting'] } : {}),
      scale: { ...meta.scale }, counts: meta.counts, generateMs: meta.generateMs, databaseMb: Math.round(sizeBytes / 2 ** 20), latencyMs: LATENCY, now: NOW.toISOString(), jobs, sharded, finishedAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(RESULTS, `users-${users}${TAG}.json`), JSON.stringify(result, null, 2) + '\n');
    return result;
  };
  for (const job of JOBS) {
    const { result, print } = await runSingle(users, job, runDb, sendgrid, qbo);
    jobs.push(result);
    prints[job] = print;
    save();
  }
  if (!flags.keep) await dropDatabase(SERVER, runDb);

  if (SHARDS > 1) {
    const shardDb = `${template}_shards${TAG.replace(/-/g, '_').toLowerCase()}`;
    await copyDatabase(SERVER, template, shardDb);
    await applyDbSettings(shardDb);
    for (const job of JOBS) {
      const single = jobs.find((j) => j.job === job)!;
      sharded.push(await runSharded(users, job, shardDb, sendgrid, qbo, single, prints[job]!));
      save();
    }
    if (!flags.keep) await dropDatabase(SERVER, shardDb);
  }
  const result = save();
  return result;
}

async function machine(): Promise<Record<string, unknown>> {
  const cpus = os.cpus();
  // git itself: in a worktree .git is a file, not a folder.
  const rev = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const commit = rev.status === 0 ? rev.stdout.trim() : 'unknown';
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: await serverInfo(SERVER),
    commit: commit.slice(0, 12),
    jobNodeOptions: IMAGE_NODE_OPTIONS,
  };
}

if (flags['report-only']) {
  console.log(await writeReport(RESULTS, await machine()));
  process.exit(0);
}

log('building the CLI (dist/, as the image runs it)');
buildCli();
const sendgrid = await startSendGridSink();
const qbo = await startQuickBooksFront({ ...QBO, latencyMs: LATENCY });
try {
  if (JOBS.includes('sync-quickbooks')) {
    const t = performance.now();
    const made = await qbo.prewarm(syncWindows(NOW));
    log(`QuickBooks front: ${made} reports generated by the loopback in ${Math.round(performance.now() - t)} ms (cached for the runs)`);
  }
  const scales: ScaleResult[] = [];
  for (const users of SCALES) scales.push(await runScale(users, sendgrid, qbo));
  const info = await machine();
  fs.writeFileSync(path.join(RESULTS, 'latest.json'), JSON.stringify({ machine: info, scales }, null, 2) + '\n');
  if (!TAG) recordHistory(RESULTS, scales, info);
  if (!flags['no-report'] && !TAG) {
    const printed = await writeReport(RESULTS, info);
    console.log(printed);
  }
} finally {
  await sendgrid.close();
  await qbo.close();
}
