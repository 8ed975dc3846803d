/**
 * Running jobs in tests: in-process against a test database (logs captured), or
 * as the real command line in a child process.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../lib/config.ts';
import type { Database } from '../../lib/db/connect.ts';
import type { JobDefinition, RunOptions } from '../../lib/runtime/job.ts';
import { runJob, type RunPublisher } from '../../lib/runtime/run.ts';
import { createLogger } from '../../lib/telemetry/log.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin/exitosx-cron.ts');

/** A fixed reference time for tests: a Sunday morning in March. */
export const NOW = new Date('2026-03-15T08:00:00Z');

export interface InProcessResult {
  exitCode: number;
  summary: Record<string, unknown>;
  logs: Array<Record<string, unknown>>;
}

export interface InProcessOptions {
  database: Database;
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
  publishers?: RunPublisher[];
}

/** Runs a job in this process on `database`; returns exit code, summary and log lines. */
export async function runInProcess(def: JobDefinition, options: Partial<RunOptions>, deps: InProcessOptions): Promise<InProcessResult> {
  const stream = new PassThrough();
  const logs: Array<Record<string, unknown>> = [];
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  const log = createLogger({ level: 'debug', pretty: false, stream });
  const lines: string[] = [];
  const config = loadConfig({ EMAIL_OUTBOX_DIR: path.join(ROOT, '.exitosx/test-outbox'), ...deps.env });
  const result = await runJob(def, { dryRun: false, now: NOW, ...options }, {
    config,
    log,
    signal: deps.signal ?? new AbortController().signal,
    database: deps.database,
    stdout: (l) => lines.push(l),
    ...(deps.publishers ? { publishers: deps.publishers } : {}),
  });
  log.close();
  await new Promise((r) => setImmediate(r));
  return { exitCode: result.exitCode, summary: result.summary ?? {}, logs };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last line of stdout parsed as JSON, when it is. */
  summary: Record<string, unknown> | undefined;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Called with the child once it runs (to send signals). */
  onSpawn?: (child: ReturnType<typeof spawn>) => void;
  /** Called for every stderr chunk. */
  onStderr?: (text: string, child: ReturnType<typeof spawn>) => void;
}

/** Runs `exitosx-cron args…` as a child process with a clean environment plus `env`. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_OPTIONS: '--disable-warning=ExperimentalWarning' };
    for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      options.onStderr?.(c.toString(), child);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`exitosx-cron ${args.join(' ')} timed out; stderr: ${stderr.slice(-2000)}`));
    }, options.timeoutMs ?? 60_000);
    options.onSpawn?.(child);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop();
      let summary: Record<string, unknown> | undefined;
      try {
        summary = last ? (JSON.parse(last) as Record<string, unknown>) : undefined;
      } catch {
        summary = undefined;
      }
      resolve({ code, signal, stdout, stderr, summary });
    });
  });
}
