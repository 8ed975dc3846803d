/**
 * Summarises a V8 CPU profile (`--cpu-prof`, e.g. `npm run bench -- --cpu-prof`):
 * self time by function and by file (node_modules grouped by package), largest
 * first. A sampling heap profile (`--heap-sample`, *.heapprofile) is summarised the
 * same way in bytes allocated, with the allocating function's caller beside it.
 *
 *   node bench/profile-top.ts bench/results/profiles/100000-sync-quickbooks/*.cpuprofile [--top 25]
 *   node bench/profile-top.ts bench/results/profiles/100000-sync-quickbooks.heapprofile
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

interface HeapNode {
  callFrame: Node['callFrame'];
  selfSize: number;
  children: HeapNode[];
}

function place(frame: Node['callFrame']): { place: string; name: string } {
  const url = frame.url.replace(/^file:\/\//, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  const where = pkg ? `npm:${pkg}` : url ? url.replace(/^.*\/work\/[^/]+\//, '') : `(${frame.functionName || 'native'})`;
  return { place: where, name: `${frame.functionName || '(anonymous)'} ${where}${url && !pkg ? `:${frame.lineNumber + 1}` : ''}` };
}

function heapSummary(file: string): void {
  const head = (JSON.parse(fs.readFileSync(file, 'utf8')) as { head: HeapNode }).head;
  const fn = new Map<string, number>();
  const where = new Map<string, number>();
  const withCaller = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, parent: string) => {
    const p = place(n.callFrame);
    if (n.selfSize) {
      total += n.selfSize;
      fn.set(p.name, (fn.get(p.name) ?? 0) + n.selfSize);
      where.set(p.place, (where.get(p.place) ?? 0) + n.selfSize);
      const k = `${p.name}  <-  ${parent}`;
      withCaller.set(k, (withCaller.get(k) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, p.name);
  };
  walk(head, '');
  const show = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, b]) => `  ${(b / 1048576).toFixed(1).padStart(8)} MB ${((b / total) * 100).toFixed(1).padStart(5)}%  ${k}`).join('\n');
  console.log(`${file}: ${(total / 1048576).toFixed(0)} MB allocated (sampled)\nby file:\n${show(where)}\nby function:\n${show(fn)}\nby function and caller:\n${show(withCaller)}\n`);
}

for (const file of positionals) {
  if (file.endsWith('.heapprofile')) {
    heapSummary(file);
    continue;
  }
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
