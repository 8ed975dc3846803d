#!/usr/bin/env node
/**
 * The image's entrypoint. First the Node version: the suite needs Node 24 (it uses
 * Map.groupBy, Iterator helpers and friends), and on an older Node it would start and
 * then fail half-way with something like "Map.groupBy is not a function". So this
 * file imports nothing statically (static imports are hoisted and evaluated before
 * any line here runs): it checks the version, and only then loads the program with
 * a dynamic import. Keep the check in syntax that any Node since 14 parses.
 *
 * Then it sets the heap's growth (below), runs the command and exits with its code
 * once stdout has drained (a piped stdout is asynchronous: exiting at once could cut
 * the summary).
 */
const NODE_MAJOR_NEEDED = 24;
const running = process.versions.node;
if (Number(running.split('.')[0]) < NODE_MAJOR_NEEDED) {
  process.stderr.write(`exitosx-cron needs Node.js ${NODE_MAJOR_NEEDED} or later; this is Node.js ${running} (${process.execPath})\n`);
  process.exit(2);
}

// The old generation grows to twice what survived the last full collection before
// the next one, not V8's up to 4x: the jobs keep ~25-40 MB alive, and V8's factor
// let the heap saw up to 100-120 MB of garbage, which put sync-quickbooks over a
// 256Mi limit (273 → 197 MB peak RSS at 1M users, the same CPU: bench/FINDINGS.md,
// round four). NODE_OPTIONS refuses this flag; a node command line that sets it wins.
if (!process.execArgv.some((a) => a.startsWith('--heap-growing-percent'))) {
  const { setFlagsFromString } = await import('node:v8');
  setFlagsFromString('--heap-growing-percent=100');
}

const { main } = await import('../lib/cli/main.ts');
const code = await main(process.argv.slice(2), { env: process.env });
process.exitCode = code;
process.stdout.write('', () => {
  // Leave a moment for open handles to close by themselves, then go regardless.
  setTimeout(() => process.exit(code), 1000).unref();
});
