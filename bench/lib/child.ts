/**
 * Runs the real command line as the image does, the compiled
 * `node dist/bin/exitosx-cron.js <job> --now <fixed>` (`buildCli` first), as a
 * child process and measures it: wall time, peak RSS (VmHWM written by the preload
 * at exit; VmRSS polled every 50 ms as a fallback), SQL statements sent (counted by
 * the preload), and the summary (last line of stdout). Logs go to a file.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/bin/exitosx-cron.js');
const PRELOAD = path.join(ROOT, 'bench/lib/preload.mjs');

/**
 * Compiles the CLI to dist/ (`npm run build`, as the image's build stage does). The
 * jobs run from it: running the .ts sources would also load Node's TypeScript
 * stripper, ~27 MB of RSS and some CPU the deployed process does not have.
 */
export function buildCli(): void {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status})`);
}

export interface ChildRun {
  args: string[];
  env: Record<string, string>;
  /** Where stderr (the JSON log lines) goes. */
  logFile: string;
  /** Write a V8 CPU profile into this folder. */
  cpuProfDir?: string;
  /** Write a sampling heap profile of every allocation (preload.mjs) to this file. */
  heapSampleFile?: string;
  /** Flags for node's command line (V8 flags that NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  timeoutMs?: number;
}

export interface ChildResult {
  exitCode: number | null;
  signal: string | null;
  wallMs: number;
  peakRssMb: number;
  /** Where the peak came from: the process's own VmHWM at exit, or the 50 ms poll. */
  peakRssSource: 'VmHWM' | 'poll';
  statements: number | null;
  /** CPU time of the job process (user + system), ms. */
  cpuMs: number | null;
  /** CPU time before its first SQL statement (start-up: modules, configuration), ms. */
  startupCpuMs: number | null;
  /** Of cpuMs, in user space and in the kernel (system: socket writes to the loopbacks and PostgreSQL, mostly), ms. */
  cpuUserMs: number | null;
  cpuSystemMs: number | null;
  /** Wall time with at least one SQL statement outstanding (the job waiting on PostgreSQL), ms. */
  sqlBusyMs: number | null;
  /** Summed latency of the statements by leading verb (issue to answer; overlapping ones each count), ms. */
  sqlMsByVerb: Record<string, number>;
  /** Time in garbage collection (PerformanceObserver 'gc' entries), ms by kind, and how many. */
  gc: { minorMs: number; majorMs: number; incrementalMs: number; otherMs: number; count: number; peakLiveAfterMajorMb?: number; heapUsedAtExitMb?: number } | null;
  statementsByVerb: Record<string, number>;
  summary: Record<string, unknown> | null;
  stdoutTail: string;
  logFile: string;
  /** The machine's 1-minute load average at the end (other work on the 2 cores skews every number). */
  loadAverage: number;
  /** Share of the machine's CPU time during the run spent outside this process (others' tests, PostgreSQL, the bench's servers), %. */
  othersCpuPercent: number | null;
}

/** Busy and total jiffies of all CPUs (/proc/stat). */
function cpuTimes(): { busy: number; total: number } {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

function readRssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function readJson<T>(text: () => string): T | null {
  try {
    return JSON.parse(text()) as T;
  } catch {
    return null;
  }
}

export function runChild(o: ChildRun): Promise<ChildResult> {
  const statsFile = `${o.logFile}.stats.json`;
  fs.rmSync(statsFile, { force: true });
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true });
  const log = fs.openSync(o.logFile, 'w');
  const nodeArgs = ['--disable-warning=ExperimentalWarning', ...(o.nodeArgs ?? []), '--import', PRELOAD];
  if (o.cpuProfDir) {
    fs.mkdirSync(o.cpuProfDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`);
  }
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...o.env, BENCH_STATS_FILE: statsFile };
  if (o.heapSampleFile) {
    fs.mkdirSync(path.dirname(o.heapSampleFile), { recursive: true });
    env.BENCH_HEAP_SAMPLE_FILE = o.heapSampleFile;
  }
  const started = performance.now();
  const cpuBefore = cpuTimes();
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...o.args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', log] });
  let polledKb = 0;
  const poll = setInterval(() => (polledKb = Math.max(polledKb, readRssKb(child.pid!))), 50);
  let stdout = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
    if (stdout.length > 1_000_000) stdout = stdout.slice(-500_000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 3_600_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const wallMs = performance.now() - started;
      clearTimeout(timer);
      clearInterval(poll);
      fs.closeSync(log);
      const stats = readJson<{ statements: number; byVerb: Record<string, number>; vmHWMKb: number; cpuMs: number; cpuUserMs?: number; cpuSystemMs?: number; sqlBusyMs?: number; msByVerb?: Record<string, number>; startupCpuMs: number | null; gc: ChildResult['gc'] }>(() => fs.readFileSync(statsFile, 'utf8'));
      const last = stdout.trim().split('\n').pop() ?? '';
      const summary = last ? readJson<Record<string, unknown>>(() => last) : null;
      const hwm = stats?.vmHWMKb ?? 0;
      const cpuAfter = cpuTimes();
      const ticks = 100; // USER_HZ
      const machineBusyMs = ((cpuAfter.busy - cpuBefore.busy) / ticks) * 1000;
      const machineTotalMs = ((cpuAfter.total - cpuBefore.total) / ticks) * 1000;
      const othersCpuPercent = stats?.cpuMs !== undefined && machineTotalMs > 0 ? Math.round(((machineBusyMs - stats.cpuMs) / machineTotalMs) * 1000) / 10 : null;
      const loadAverage = Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
      resolve({
        exitCode: code,
        signal,
        wallMs: Math.round(wallMs),
        peakRssMb: Math.round((Math.max(hwm, polledKb) / 1024) * 10) / 10,
        peakRssSource: hwm >= polledKb ? 'VmHWM' : 'poll',
        statements: stats?.statements ?? null,
        cpuMs: stats?.cpuMs ?? null,
        startupCpuMs: stats?.startupCpuMs ?? null,
        cpuUserMs: stats?.cpuUserMs ?? null,
        cpuSystemMs: stats?.cpuSystemMs ?? null,
        sqlBusyMs: stats?.sqlBusyMs ?? null,
        sqlMsByVerb: stats?.msByVerb ?? {},
        gc: stats?.gc ?? null,
        statementsByVerb: stats?.byVerb ?? {},
        summary,
        stdoutTail: stdout.slice(-2000),
        logFile: o.logFile,
        loadAverage,
        othersCpuPercent,
      });
    });
  });
}
