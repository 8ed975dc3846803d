/**
 * A minimal loopback SendGrid for the bench: `POST /v3/mail/send` on 127.0.0.1
 * answers 202 with `X-Message-Id`, as SendGrid does, after checking the bearer key
 * and that the body is JSON with personalizations. No schema validation (the test
 * suite's test/support/sendgrid-server.ts does that): at 100k emails a run, the
 * sink must cost next to nothing in the bench's own process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SendGridSink {
  url: string;
  apiKey: string;
  /** Emails accepted so far: the personalizations of the requests answered 202 (one request may carry many). */
  accepted: number;
  /** Requests answered 202. */
  requests: number;
  /** Request body bytes received, all requests. */
  bytes: number;
  refused: number;
  close(): Promise<void>;
}

export async function startSendGridSink(apiKey = 'SG.bench-key.0123456789abcdef'): Promise<SendGridSink> {
  let seq = 0;
  const sink: SendGridSink = { url: '', apiKey, accepted: 0, requests: 0, refused: 0, bytes: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      sink.bytes += c.length;
    });
    req.on('end', () => {
      let ok = req.method === 'POST' && req.url === '/v3/mail/send' && req.headers.authorization === `Bearer ${apiKey}`;
      let emails = 0;
      if (ok) {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { personalizations?: unknown[] };
          emails = Array.isArray(body.personalizations) ? body.personalizations.length : 0;
          ok = emails > 0;
        } catch {
          ok = false;
        }
      }
      if (!ok) {
        sink.refused++;
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ message: 'bad request', field: null }] }));
        return;
      }
      sink.accepted += emails;
      sink.requests++;
      res.writeHead(202, { 'X-Message-Id': `bench-${++seq}` });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return sink;
}
