/**
 * The shape of the source's imports: no cycle among bin/, jobs/ and lib/ (static,
 * type-only and dynamic imports alike), and the stand-ins for outside services
 * (lib/stand-ins/) reached from the product only through the demo.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import ts from 'typescript';
import { ROOT } from '../support/run.ts';

/** Every .ts file under the given folders, relative to the repo root. */
function sourceFiles(dirs: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (rel.endsWith('.ts')) out.push(rel);
    }
  };
  dirs.forEach(walk);
  return out.sort();
}

/** file → the repo files it imports (relative specifiers only; packages are not ours). */
function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    // preProcessFile sees `import`, `import type`, `export … from` and `import()`.
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(path.join(ROOT, file), 'utf8'), true, true);
    graph.set(file, importedFiles.filter((i) => i.fileName.startsWith('.')).map((i) => path.normalize(path.join(path.dirname(file), i.fileName))));
  }
  return graph;
}

/** The strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v)!.includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('import graph', () => {
  const graph = importGraph(sourceFiles(['bin', 'jobs', 'lib']));

  it('finds the imports it checks (the graph is not empty)', () => {
    expect(graph.get(path.normalize('lib/k8s/in-pod.ts'))).to.include(path.normalize('lib/k8s/job-publisher.ts'));
    expect(graph.get(path.normalize('lib/demo/setups.ts'))).to.include(path.normalize('lib/stand-ins/quickbooks-server.ts'));
  });

  it('has no import cycle in bin/, jobs/ and lib/', () => {
    expect(cycles(graph)).to.deep.equal([]);
  });

  it('detects a cycle when there is one', () => {
    const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]);
    expect(cycles(g)).to.deep.equal([['a', 'b', 'c']]);
  });

  it('reaches lib/stand-ins/ only from lib/demo/ (the product never loads a stand-in)', () => {
    const standIns = `lib${path.sep}stand-ins${path.sep}`;
    const importers = [...graph].filter(([file, deps]) => !file.startsWith(standIns) && deps.some((d) => d.startsWith(standIns))).map(([file]) => file);
    expect(importers).to.deep.equal([path.normalize('lib/demo/setups.ts')]);
  });

  it('keeps lib/quickbooks/ the product client only (no loopback server beside it)', () => {
    const files = sourceFiles(['lib/quickbooks']);
    for (const f of files) expect(fs.readFileSync(path.join(ROOT, f), 'utf8'), f).not.to.match(/\bhttp\.createServer\b|node:http'/);
  });
});
