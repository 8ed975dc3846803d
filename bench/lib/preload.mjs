/**
 * Loaded into the job's process with `node --import` (the bench only): counts the
 * SQL statements the process sends (every `pg.Client#query`, by leading verb), and
 * at exit writes them with the peak resident set size (VmHWM) and the CPU time to
 * BENCH_STATS_FILE. The job's own code is untouched. Plain JavaScript, like the
 * compiled CLI it is loaded into: a .ts preload would load Node's TypeScript
 * stripper (tens of MB) into a process that the image runs without it.
 */
import fs from 'node:fs';
import process from 'node:process';
import { createRequire } from 'node:module';

const out = process.env.BENCH_STATS_FILE;
if (out) {
  const require = createRequire(import.meta.url);
  const pg = require('pg');
  const byVerb = {};
  let total = 0;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (...args) {
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
    const cpu = process.cpuUsage();
    fs.writeFileSync(out, JSON.stringify({ statements: total, byVerb, vmHWMKb: kb('VmHWM'), vmRSSKb: kb('VmRSS'), cpuMs: Math.round((cpu.user + cpu.system) / 1000) }));
  });
}
