/**
 * Loaded into the job's process with `node --import` (the bench only): counts the
 * SQL statements the process sends (every `pg.Client#query`, by leading verb), and
 * at exit writes them with the peak resident set size (VmHWM), the CPU time, the
 * CPU time spent before the first statement (start-up: module loading,
 * configuration; a fixed cost per run, not per item) and the time in garbage
 * collection by kind to BENCH_STATS_FILE. The job's own code is untouched. Plain JavaScript, like the
 * compiled CLI it is loaded into: a .ts preload would load Node's TypeScript
 * stripper (tens of MB) into a process that the image runs without it.
 */
import fs from 'node:fs';
import process from 'node:process';
import { createRequire } from 'node:module';
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import inspector from 'node:inspector';

// `npm run bench -- --heap-sample`: a sampling heap profile of everything the job
// allocates, objects that GC collected included (what makes scavenges frequent),
// written at exit next to the stats; summarised by bench/profile-top.ts --heap.
const heapSampleFile = process.env.BENCH_HEAP_SAMPLE_FILE;
if (heapSampleFile) {
  const session = new inspector.Session();
  session.connect();
  session.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  process.on('exit', () => {
    // A session of this thread answers synchronously, so this runs within 'exit'.
    session.post('HeapProfiler.stopSampling', (err, result) => {
      if (!err) fs.writeFileSync(heapSampleFile, JSON.stringify(result.profile));
    });
  });
}

const out = process.env.BENCH_STATS_FILE;
if (out) {
  const require = createRequire(import.meta.url);
  const pg = require('pg');
  const byVerb = {};
  let total = 0;
  let startupCpuMs = null;
  let outstanding = 0;
  let busySince = 0;
  let sqlBusyMs = 0;
  const msByVerb = {};
  const byStatement = {};
  const cpuMs = (c = process.cpuUsage()) => Math.round((c.user + c.system) / 1000);
  const gc = { minorMs: 0, majorMs: 0, incrementalMs: 0, otherMs: 0, count: 0 };
  const kinds = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'minorMs', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'majorMs', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incrementalMs' };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc[kinds[e.detail?.kind] ?? 'otherMs'] += e.duration;
      gc.count++;
      // Just after a mark-compact, the heap in use is about what is live: its peak
      // says whether the job holds more as a run gets longer, apart from V8's choice
      // of when to collect (which is what peak RSS mostly shows).
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.peakLiveAfterMajorMb = Math.max(gc.peakLiveAfterMajorMb ?? 0, Math.round(process.memoryUsage().heapUsed / 1048576));
    }
  }).observe({ entryTypes: ['gc'] });
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (...args) {
    startupCpuMs ??= cpuMs();
    const first = args[0];
    const text = typeof first === 'string' ? first : (first?.text ?? '');
    const verb = (/^\s*(?:\(\s*)?([a-zA-Z]+)/.exec(text)?.[1] ?? '?').toLowerCase();
    total++;
    byVerb[verb] = (byVerb[verb] ?? 0) + 1;
    // Wall time with at least one statement outstanding: what the job waits on PostgreSQL for.
    if (outstanding++ === 0) busySince = performance.now();
    const issued = performance.now();
    const done = () => {
      const ms = performance.now() - issued;
      msByVerb[verb] = (msByVerb[verb] ?? 0) + ms;
      const key = text.replace(/\s+/g, ' ').trim().slice(0, 70);
      const s = (byStatement[key] ??= { count: 0, ms: 0 });
      s.count++;
      s.ms += ms;
      if (--outstanding === 0) sqlBusyMs += performance.now() - busySince;
    };
    const last = args.length - 1;
    if (typeof args[last] === 'function') {
      const callback = args[last];
      args[last] = function (...r) {
        done();
        return callback.apply(this, r);
      };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    if (result && typeof result.then === 'function') result.then(done, done);
    else done();
    return result;
  };
  process.on('exit', () => {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    for (const k of ['minorMs', 'majorMs', 'incrementalMs', 'otherMs']) gc[k] = Math.round(gc[k]);
    gc.heapUsedAtExitMb = Math.round(process.memoryUsage().heapUsed / 1048576);
    fs.writeFileSync(out, JSON.stringify({ statements: total, byVerb, vmHWMKb: kb('VmHWM'), vmRSSKb: kb('VmRSS'), cpuMs: cpuMs(), cpuUserMs: Math.round(process.cpuUsage().user / 1000), cpuSystemMs: Math.round(process.cpuUsage().system / 1000), startupCpuMs, sqlBusyMs: Math.round(sqlBusyMs), slowest: Object.entries(byStatement).sort((a, b) => b[1].ms - a[1].ms).slice(0, 12).map(([sql, v]) => ({ sql, count: v.count, ms: Math.round(v.ms) })), msByVerb: Object.fromEntries(Object.entries(msByVerb).map(([k, v]) => [k, Math.round(v)])), gc }));
  });
}
