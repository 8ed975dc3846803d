/**
 * Real observability servers for tests: the Debian Prometheus Pushgateway and
 * Prometheus binaries on free loopback ports in temporary folders, promtool, a
 * loopback OTLP/HTTP collector, and probe jobs (tiny real JobDefinitions run
 * through the real runtime). Every server is stopped by its handle; tests call it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { JobDefinition, JobName } from '../../lib/runtime/job.ts';
import { ROOT } from '../support/run.ts';

export const ALERTS_FILE = path.join(ROOT, 'helm/exitosx-cron/files/alerts.yaml');
export const DASHBOARD_FILE = path.join(ROOT, 'helm/exitosx-cron/files/dashboard.json');
/** promtool unit tests: minute-scale alerts, and the day-scale silence alerts (evaluated hourly). */
export const ALERT_TEST_FILES = ['alerts.test.yaml', 'alerts-silence.test.yaml'].map((f) => path.join(ROOT, 'test/fixtures/observability', f));
export const RUNBOOK_FILE = path.join(ROOT, 'RUNBOOK.md');

const run = promisify(execFile);

/** Where a binary is: PATH first, then the Debian package's location. */
export function findBinary(name: string, debianPath: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  return fs.existsSync(debianPath) ? debianPath : undefined;
}

export const BINARIES = {
  promtool: () => findBinary('promtool', '/usr/bin/promtool'),
  prometheus: () => findBinary('prometheus', '/usr/bin/prometheus'),
  pushgateway: () => findBinary('prometheus-pushgateway', '/usr/bin/prometheus-pushgateway') ?? findBinary('pushgateway', '/usr/bin/pushgateway'),
};

/**
 * The binary, or: in CI (process.env.CI set) a failure, elsewhere a skip that says
 * what to install. The tools are Debian packages `prometheus` and `prometheus-pushgateway`.
 */
export function requireBinary(ctx: Mocha.Context, name: keyof typeof BINARIES): string {
  const found = BINARIES[name]();
  if (found) return found;
  const hint = `${name} not found (apt-get install -y prometheus prometheus-pushgateway: /usr/bin/promtool, /usr/bin/prometheus, /usr/bin/prometheus-pushgateway)`;
  if (process.env.CI) throw new Error(`${hint}; CI must run these tests`);
  console.warn(`      skipped: ${hint}`);
  ctx.skip();
}

export async function promtool(args: string[]): Promise<{ code: number; output: string }> {
  const bin = BINARIES.promtool();
  if (!bin) throw new Error('promtool not found');
  try {
    const { stdout, stderr } = await run(bin, args, { cwd: ROOT, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `exitosx-${prefix}-`));
}

/** A server child process; `stop()` ends it (SIGTERM, then SIGKILL) and removes its folder. */
export interface ServerHandle {
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

async function waitUntilReady(url: string, child: ChildProcess, output: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited (${child.exitCode}): ${output().slice(-2000)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not yet listening
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.spawnfile} not ready at ${url} after ${timeoutMs} ms: ${output().slice(-2000)}`);
}

async function startServer(bin: string, args: (port: number, dir: string) => string[], readyPath: string, prefix: string, dir = tempDir(prefix)): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawn(bin, args(port, dir), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  child.stderr?.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const handle: ServerHandle = {
    url,
    port,
    dir,
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntilReady(url + readyPath, child, () => out);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

/** Starts a real Pushgateway (no persistence) on a free loopback port. */
export function startPushgateway(bin: string): Promise<ServerHandle> {
  // Debian's build persists to /var/lib/prometheus by default: keep this one in memory.
  return startServer(bin, (port) => [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file=', '--web.enable-admin-api'], '/-/ready', 'pushgateway');
}

/**
 * Starts a real Prometheus scraping `pushgatewayUrl` every second with
 * honor_labels: true, evaluating `ruleFiles` every second.
 */
export function startPrometheus(bin: string, options: { pushgatewayUrl: string; ruleFiles: string[] }): Promise<ServerHandle> {
  const dir = tempDir('prometheus');
  const target = new URL(options.pushgatewayUrl).host;
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    ...options.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`),
    'scrape_configs:',
    '  - job_name: pushgateway',
    '    honor_labels: true',
    '    static_configs:',
    `      - targets: [${JSON.stringify(target)}]`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  return startServer(
    bin,
    (port, d) => [`--config.file=${path.join(d, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(d, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    '/-/ready',
    'prometheus',
    dir,
  );
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query against Prometheus' HTTP API. */
export async function promQuery(prometheusUrl: string, expr: string): Promise<PromSample[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
  if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
  return body.data?.result ?? [];
}

/** Polls `check` until it returns a value (not undefined) or the time runs out. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** The text exposition of the Pushgateway, parsed into samples (name, labels, value). */
export async function pushgatewaySamples(pushgatewayUrl: string): Promise<Array<{ name: string; labels: Record<string, string>; value: number }>> {
  const text = await (await fetch(`${pushgatewayUrl}/metrics`)).text();
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Deletes every group of the suite's job from the Pushgateway (test isolation). */
export async function wipePushgateway(pushgatewayUrl: string): Promise<void> {
  await fetch(`${pushgatewayUrl}/api/v1/admin/wipe`, { method: 'PUT' }).catch(() => undefined);
}

export interface DashboardQuery {
  panel: string;
  refId: string;
  /** The PromQL with the dashboard's variables replaced by "all". */
  expr: string;
}

/** Every PromQL expression of the Grafana dashboard, its variables set to "all". */
export function dashboardQueries(): DashboardQuery[] {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ refId: string; expr: string }> }> };
  return dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr.replace(/\$\{?(cron_job|shard)\}?/g, '.*').replace(/\$__rate_interval/g, '5m') })),
  );
}

// --- OTLP/HTTP collector -------------------------------------------------------

export interface CollectedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  scope: string;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
  events: Array<{ name: string; attributes: Record<string, unknown> }>;
  resource: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}
type OtlpAttributes = Array<{ key: string; value: OtlpValue }> | undefined;

function value(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(value);
  return undefined;
}
const attributes = (a: OtlpAttributes): Record<string, unknown> => Object.fromEntries((a ?? []).map(({ key, value: v }) => [key, value(v)]));

/** A loopback OTLP/HTTP collector (JSON encoding, what exporter-trace-otlp-http sends). */
export interface Collector {
  endpoint: string;
  spans: CollectedSpan[];
  requests: number;
  close(): Promise<void>;
}

export async function startCollector(): Promise<Collector> {
  const spans: CollectedSpan[] = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).includes('json')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: Array<{
          resource?: { attributes?: OtlpAttributes };
          scopeSpans?: Array<{ scope?: { name?: string }; spans?: Array<Record<string, unknown>> }>;
        }>;
      };
      for (const rs of body.resourceSpans ?? []) {
        const resource = attributes(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              traceId: String(s.traceId),
              spanId: String(s.spanId),
              parentSpanId: String(s.parentSpanId ?? ''),
              name: String(s.name),
              kind: Number(s.kind),
              scope: ss.scope?.name ?? '',
              attributes: attributes(s.attributes as OtlpAttributes),
              status: (s.status ?? {}) as CollectedSpan['status'],
              events: ((s.events ?? []) as Array<{ name: string; attributes?: OtlpAttributes }>).map((e) => ({ name: e.name, attributes: attributes(e.attributes) })),
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    get requests() {
      return requests;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// --- Probe jobs ------------------------------------------------------------------

export interface ProbeOptions {
  name: JobName;
  /** The table each item reads; a missing one makes every item fail for real. */
  table: () => string;
  /** The job's own summary counts, from the items it handled. */
  summary: (handled: number) => Record<string, unknown>;
  /** Called inside each item (after its query) with the item's index, e.g. to abort the run. */
  onItem?: (index: number) => void | Promise<void>;
}

/**
 * A tiny real job: one item per company, each reading `table()` for that company
 * through the job's database; it returns the summary fields of the real job it is
 * named after. Run through the real runtime (lock, history, spans, publishers).
 */
export function probeJob(options: ProbeOptions): JobDefinition {
  return {
    name: options.name,
    schedule: '0 8 * * *',
    description: `probe job standing in for ${options.name}`,
    requiredColumns: { companies: ['id'] },
    async run(ctx) {
      const ids = (await ctx.db('companies').select('id').orderBy('id')).map((r: { id: string }) => r.id);
      let handled = 0;
      let started = 0;
      await ctx.forEach({
        phase: 'companies',
        kind: 'company',
        source: [ids],
        total: ids.length,
        id: (id) => id,
        handle: async (id) => {
          const index = started++;
          await ctx.db(options.table()).where({ id }).first();
          await options.onItem?.(index);
          handled++;
          return 'checked';
        },
      });
      return options.summary(handled);
    },
  };
}
