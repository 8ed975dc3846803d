/**
 * `exitosx-cron doctor`: one line per check on stdout (`ok`, `fail`, `not
 * configured` or `skipped`, the check's name, the reason), then one JSON summary
 * as the last line of stdout. Exit 0 when all that is configured works, 1 when a
 * check failed, 2 when the configuration itself is invalid (nothing else checked).
 */
import { JOB_NAMES, JOBS } from '../../jobs/index.ts';
import type { Config } from '../config.ts';
import { ConfigError, messageOf } from '../errors.ts';
import { fail, type CheckResult } from '../doctor/check.ts';
import { CONFIGURATION } from '../doctor/configuration.ts';
import { runDoctor } from '../doctor/doctor.ts';
import type { Logger } from '../telemetry/log.ts';
import { redact } from '../telemetry/redact.ts';

type Out = ((line: string) => void) | undefined;
const print = (out: Out, line: string) => (out ? out(line) : process.stdout.write(line + '\n'));

/** `ok              database          reachable at …` */
export function checkLine(c: CheckResult): string {
  return `${c.status.padEnd(15)} ${c.check.padEnd(17)} ${c.detail}`;
}

/** The summary line: `{"command":"doctor","success":…,"failed":[…],"checks":{name:{status,detail}},"durationMs":…}`. */
export function summaryLine(checks: CheckResult[], durationMs: number): string {
  const failed = checks.filter((c) => c.status === 'fail').map((c) => c.check);
  return JSON.stringify({
    command: 'doctor',
    success: failed.length === 0,
    failed,
    checks: Object.fromEntries(checks.map((c) => [c.check, { status: c.status, detail: c.detail }])),
    durationMs,
  });
}

/**
 * Loads the configuration through `config` (main's, which registers the secrets
 * with the redactor) and runs the checks. Returns the exit code.
 */
export async function doctorCommand(config: () => Config, logger: () => Logger | undefined, out: Out): Promise<number> {
  const started = performance.now();
  const finish = (checks: CheckResult[], exitCode: number) => {
    for (const c of checks) print(out, checkLine(c));
    print(out, summaryLine(checks, Math.round(performance.now() - started)));
    logger()?.info('doctor:done', { exitCode, failed: checks.filter((c) => c.status === 'fail').map((c) => c.check) });
    return exitCode;
  };
  let c: Config;
  try {
    c = config();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // As every command: one line on stderr naming the variable, exit 2.
    process.stderr.write(`exitosx-cron: ${redact(messageOf(err))}\n`);
    return finish([fail(CONFIGURATION, messageOf(err))], 2);
  }
  const jobs = await Promise.all(JOB_NAMES.map((name) => JOBS[name]()));
  const report = await runDoctor(c, { jobs, now: new Date() });
  return finish(report.checks, report.exitCode);
}
