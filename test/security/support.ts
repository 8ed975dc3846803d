/**
 * Servers and scanners for the secrets test: a real Prometheus Pushgateway (the
 * Debian binary) on a free loopback port, a loopback OTLP/HTTP collector that keeps
 * every request body as received (JSON or protobuf, scanned as bytes), and a scan
 * of text for known secret values.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

export const PUSHGATEWAY_BIN = ['/usr/bin/prometheus-pushgateway', '/usr/local/bin/pushgateway'].find((p) => fs.existsSync(p));

export interface Pushgateway {
  url: string;
  /** The whole text exposition (what Prometheus scrapes). */
  scrape(): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts the Pushgateway (no persistence); `stop()` ends this child only. */
export async function startPushgateway(bin: string): Promise<Pushgateway> {
  const port = await freePort();
  const child: ChildProcess = spawn(bin, [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file='], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pushgateway exited: ${output}`);
    const ok = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`pushgateway not ready at ${url}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    scrape: async () => (await (await fetch(`${url}/metrics`)).text()) + (await (await fetch(`${url}/api/v1/metrics`)).text()),
    stop,
  };
}

export interface RawCollector {
  endpoint: string;
  /** Every request: path, content type and the body as bytes. */
  requests: Array<{ path: string; contentType: string; body: Buffer }>;
  close(): Promise<void>;
}

/** An OTLP/HTTP collector that accepts anything on /v1/* and keeps the raw bodies. */
export async function startRawCollector(): Promise<RawCollector> {
  const requests: RawCollector['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: String(req.headers['content-type'] ?? ''), body: Buffer.concat(chunks) });
      const json = String(req.headers['content-type']).includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Finding {
  where: string;
  secret: string;
  /** Up to 60 characters around the hit, the secret itself shown as «…». */
  context: string;
}

/**
 * Every occurrence of a secret (by name → the forms it may take) in `text`. Also
 * checks JSON-escaped forms, so a secret inside an escaped string is still found.
 */
export function scan(where: string, text: string, secrets: Map<string, string[]>): Finding[] {
  const out: Finding[] = [];
  for (const [name, forms] of secrets) {
    for (const form of forms) {
      if (form.length < 6) continue;
      for (const needle of new Set([form, JSON.stringify(form).slice(1, -1)])) {
        const i = text.indexOf(needle);
        if (i >= 0) {
          out.push({ where, secret: name, context: `${text.slice(Math.max(0, i - 30), i)}«${name}»${text.slice(i + needle.length, i + needle.length + 30)}` });
          break;
        }
      }
    }
  }
  return out;
}
