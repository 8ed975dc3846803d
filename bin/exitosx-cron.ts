#!/usr/bin/env node
/**
 * The image's entrypoint. Runs the command and exits with its code once stdout has
 * drained (a piped stdout is asynchronous: exiting at once could cut the summary).
 */
import { main } from '../lib/cli/main.ts';

const code = await main(process.argv.slice(2), { env: process.env });
process.exitCode = code;
process.stdout.write('', () => {
  // Leave a moment for open handles to close by themselves, then go regardless.
  setTimeout(() => process.exit(code), 1000).unref();
});
