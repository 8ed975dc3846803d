/**
 * Summarises a V8 CPU profile (`--cpu-prof`, e.g. `npm run bench -- --cpu-prof`):
 * self time by function and by file (node_modules grouped by package), largest
 * first.
 *
 *   node bench/profile-top.ts bench/results/profiles/100000-sync-quickbooks/*.cpuprofile [--top 25]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
const top = Number(values.top);

for (const file of positionals) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = (p.endTime - p.startTime) / 1000;
  const fn = new Map<string, number>();
  const where = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const url = n.callFrame.url.replace(/^file:\/\//, '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    const place = pkg ? `npm:${pkg}` : url ? url.replace(/^.*\/work\/main\//, '') : `(${n.callFrame.functionName || 'native'})`;
    const name = `${n.callFrame.functionName || '(anonymous)'} ${place}${url && !pkg ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    fn.set(name, (fn.get(name) ?? 0) + us / 1000);
    where.set(place, (where.get(place) ?? 0) + us / 1000);
  }
  const show = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, ms]) => `  ${ms.toFixed(0).padStart(7)} ms ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${k}`).join('\n');
  console.log(`${file}: ${total.toFixed(0)} ms profiled\nby file:\n${show(where)}\nby function:\n${show(fn)}\n`);
}
