/**
 * lib/drift is the pure engine: facts in, report (and its words and numbers) out.
 * It imports nothing that does I/O (no database, email, HTTP, files, clock of its
 * own); delivery lives in lib/email/drift-delivery.ts and the reads in
 * lib/sql/drift-batches.ts. This keeps it that way.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from '../support/run.ts';

/** What an engine file may import: its siblings, the suite's error classes, and pure libraries. */
const ALLOWED = [/^\.\/[\w-]+\.ts$/, /^\.\.\/errors\.ts$/, /^decimal\.js$/];

describe('the drift engine folder', () => {
  it('imports nothing that does I/O: only its own files, lib/errors.ts and pure libraries', () => {
    const dir = path.join(ROOT, 'lib/drift');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files).to.include.members(['engine.ts', 'report.ts', 'narrative.ts', 'decimal.ts', 'period.ts']);
    const offending: string[] = [];
    for (const f of files) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm)) {
        const spec = m[1] ?? m[2] ?? m[3]!;
        if (!ALLOWED.some((re) => re.test(spec))) offending.push(`${f}: ${spec}`);
      }
    }
    expect(offending, 'imports outside the pure engine').to.deep.equal([]);
  });
});
