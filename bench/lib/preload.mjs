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
import { PerformanceObserver, constants } from 'node:perf_hooks';

const out = process.env.BENCH_STATS_FILE;
if (out) {
  const require = createRequire(import.meta.url);
  const pg = require('pg');
  const byVerb = {};
  let total = 0;
  let startupCpuMs = null;
  const cpuMs = (c = process.cpuUsage()) => Math.round((c.user + c.system) / 1000);
  const gc = { minorMs: 0, majorMs: 0, incrementalMs: 0, otherMs: 0, count: 0 };
  const kinds = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'minorMs', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'majorMs', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incrementalMs' };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc[kinds[e.detail?.kind] ?? 'otherMs'] += e.duration;
      gc.count++;
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
    return original.apply(this, args);
  };
  process.on('exit', () => {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    for (const k of ['minorMs', 'majorMs', 'incrementalMs', 'otherMs']) gc[k] = Math.round(gc[k]);
    fs.writeFileSync(out, JSON.stringify({ statements: total, byVerb, vmHWMKb: kb('VmHWM'), vmRSSKb: kb('VmRSS'), cpuMs: cpuMs(), cpuUserMs: Math.round(process.cpuUsage().user / 1000), cpuSystemMs: Math.round(process.cpuUsage().system / 1000), startupCpuMs, gc }));
  });
}
