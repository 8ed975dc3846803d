import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { forEachItem, Tally } from '../../lib/runtime/items.ts';
import { Progress } from '../../lib/runtime/progress.ts';
import { Cleanups, installShutdown } from '../../lib/runtime/shutdown.ts';
import { createLogger } from '../../lib/telemetry/log.ts';
import { redact, registerSecrets, clearSecrets } from '../../lib/telemetry/redact.ts';

function capture() {
  const stream = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  stream.on('data', (c: Buffer) => c.toString().split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l))));
  return { log: createLogger({ level: 'debug', pretty: false, stream }), lines, stream };
}

describe('runtime parts', () => {
  it('drops a line below the log level before formatting it (no redaction, no JSON), and still writes the others', async () => {
    const stream = new PassThrough();
    const lines: Array<Record<string, unknown>> = [];
    stream.on('data', (c: Buffer) => c.toString().split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l))));
    const log = createLogger({ level: 'info', pretty: false, stream });
    // A nested value is read only by formatting (winston copies the top level alone).
    let reads = 0;
    const meta = () => ({ detail: { get key() {
      reads++;
      return 'k';
    } } });
    log.debug('email:sent', meta());
    expect(reads, 'a debug line in an info run is not formatted').to.equal(0);
    log.info('email:retrying-failed', meta());
    await new Promise((r) => setImmediate(r));
    expect(reads, 'an info line is formatted').to.be.greaterThan(0);
    expect(lines.map((l) => l.message)).to.deep.equal(['email:retrying-failed']);
  });

  it('logs progress with done/total, rate and ETA on its interval', async () => {
    const { log, lines } = capture();
    const p = new Progress({ log, phase: 'users', total: 100, intervalMs: 30, bar: false });
    p.tick(25);
    await new Promise((r) => setTimeout(r, 80));
    p.stop();
    const line = lines.find((l) => l.message === 'progress');
    expect(line).to.include({ phase: 'users', done: 25, total: 100 });
    expect(line!.ratePerSecond).to.be.a('number').greaterThan(0);
    expect(line!.etaSeconds).to.be.a('number');
  });

  describe('forEach with handleBatch', () => {
    const deps = (over: { signal?: AbortSignal } = {}) => ({ ...capture(), tally: new Tally(), signal: over.signal ?? new AbortController().signal, dryRun: false });
    const pages = [[1, 2, 3], [4, 5], [6]];

    it('hands each batch whole and counts one outcome, one duration and one progress tick per item', async () => {
      const d = deps();
      const seen: number[][] = [];
      await forEachItem(d, { phase: 'n', kind: 'number', source: pages, id: String, concurrency: 2, handleBatch: async (b) => (seen.push(b), b.map((n) => (n % 2 ? 'odd' : 'even'))) });
      expect(seen).to.deep.equal(pages);
      expect(d.tally.outcomes).to.deep.equal({ odd: 3, even: 3 });
      expect(d.tally.durations).to.have.length(6);
      expect(d.tally.errors).to.equal(0);
    });

    it('reads the next batch while one is handled (not in a dry run, which has one connection)', async () => {
      for (const dryRun of [false, true]) {
        const events: string[] = [];
        async function* source() {
          for (const page of pages) {
            events.push(`read ${page[0]}`);
            yield page;
          }
        }
        await forEachItem({ ...deps(), dryRun }, {
          phase: 'n', kind: 'number', source: source(), id: String,
          handleBatch: async (b) => {
            events.push(`start ${b[0]}`);
            await new Promise((r) => setTimeout(r, 10));
            events.push(`end ${b[0]}`);
            return b.map(() => 'done');
          },
        });
        expect(events.filter((e) => e.startsWith('end')), String(dryRun)).to.deep.equal(['end 1', 'end 4', 'end 6']);
        expect(events.indexOf('read 4') < events.indexOf('end 1'), `dry run ${String(dryRun)}: ${events.join(', ')}`).to.equal(!dryRun);
      }
    });

    it('does a failed batch again item by item, so that only the bad item fails', async () => {
      const d = deps();
      const calls: number[][] = [];
      await forEachItem(d, {
        phase: 'n', kind: 'number', source: pages, id: String,
        handleBatch: async (b) => {
          calls.push(b);
          if (b.includes(2)) throw new Error('item 2 is broken');
          return b.map(() => 'done');
        },
      });
      expect(calls).to.deep.equal([[1, 2, 3], [1], [2], [3], [4, 5], [6]]);
      expect(d.tally.outcomes).to.deep.equal({ done: 5, error: 1 });
      expect(d.tally.errorDetails).to.deep.equal([{ kind: 'number', id: '2', error: 'item 2 is broken' }]);
      await new Promise((r) => setTimeout(r, 20)); // the log stream delivers its lines asynchronously
      expect(d.lines.find((l) => l.message === 'batch:failed')).to.include({ kind: 'number', size: 3, first: '1' });
    });

    it('stops at a lost connection (no item-by-item retry) and starts no batch after a stop request', async () => {
      const lost = deps();
      const calls: number[][] = [];
      const gone = Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      const thrown = await forEachItem(lost, { phase: 'n', kind: 'number', source: pages, id: String, handleBatch: async (b) => (calls.push(b), Promise.reject(gone)) }).then(() => null, (err: Error) => err);
      expect(thrown?.message).to.match(/^database connection lost/);
      expect(calls).to.deep.equal([[1, 2, 3]]);

      const stop = new AbortController();
      const stopped = deps({ signal: stop.signal });
      const done: number[][] = [];
      await forEachItem(stopped, { phase: 'n', kind: 'number', source: pages, id: String, handleBatch: async (b) => (done.push(b), stop.abort(), b.map(() => 'done')) });
      expect(done).to.deep.equal([[1, 2, 3]]);
    });
  });

  it('runs cleanups last-in-first-out, each in its own try/catch', async () => {
    const order: string[] = [];
    const c = new Cleanups();
    c.push('db', () => void order.push('db'));
    c.push('broken', () => {
      throw new Error('boom');
    });
    c.push('server', async () => void order.push('server'));
    const { log, lines } = capture();
    await c.runAll(log);
    expect(order).to.deep.equal(['server', 'db']);
    expect(lines.some((l) => l.message === 'cleanup:failed' && l.cleanup === 'broken')).to.equal(true);
  });

  it('aborts the run on the first SIGTERM and forces exit 143 on the second', () => {
    const exits: number[] = [];
    const { log } = capture();
    const h = installShutdown(() => log, (code) => exits.push(code));
    try {
      process.emit('SIGTERM', 'SIGTERM');
      expect(h.signal.aborted).to.equal(true);
      expect(exits).to.deep.equal([]);
      process.emit('SIGTERM', 'SIGTERM');
      expect(exits).to.deep.equal([143]);
    } finally {
      h.dispose();
    }
  });

  it('redacts registered secrets, bearer tokens, URL passwords and encrypted tokens', () => {
    registerSecrets('super-secret-sendgrid-key');
    try {
      const text = redact(
        'key super-secret-sendgrid-key; Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc; postgres://app:pw123@db/x; enc:v1:AAAA:BBBB:CCCC; {"refresh_token":"AB11"}',
      );
      for (const secret of ['super-secret-sendgrid-key', 'eyJhbGciOiJIUzI1NiJ9', 'pw123', 'enc:v1:AAAA', 'AB11']) expect(text).not.to.contain(secret);
      expect(text).to.contain('postgres://app:[REDACTED]@db/x');
    } finally {
      clearSecrets();
    }
  });

  it('redacts secrets inside log metadata and errors', async () => {
    registerSecrets('client-secret-xyz');
    try {
      const { log, lines, stream } = capture();
      const written = once(stream, 'data');
      log.error('item:failed', { error: new Error('refused with client-secret-xyz'), detail: { access_token: 'tok-123456', status: 400 } });
      await written;
      // The line was written, with everything but the secrets in it.
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ level: 'error', message: 'item:failed' });
      expect(lines[0]!.error).to.include({ name: 'Error', message: 'refused with [REDACTED]' });
      expect(lines[0]!.detail).to.deep.equal({ access_token: '[REDACTED]', status: 400 });
      const out = JSON.stringify(lines);
      expect(out).not.to.contain('client-secret-xyz');
      expect(out).not.to.contain('tok-123456');
    } finally {
      clearSecrets();
    }
  });
});
