/**
 * `exitosx-cron`: the one entrypoint of the image. Parses the command line
 * (commander), loads the configuration, creates what the run needs (logger,
 * signal handling, publishers) and owns their lifecycle. Returns the exit code.
 */
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { JOB_NAMES, JOBS } from '../../jobs/index.ts';
import { loadConfig, secretsOf, type Config } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { kubernetesRunDeps } from '../k8s/in-pod.ts';
import { triggerCommand } from '../k8s/trigger-command.ts';
import type { JobName } from '../runtime/job.ts';
import { runJob } from '../runtime/run.ts';
import { installShutdown } from '../runtime/shutdown.ts';
import { createLogger, type Logger } from '../telemetry/log.ts';
import { createMetricsPublisher } from '../telemetry/metrics.ts';
import { startTracing, traceCommand } from '../telemetry/tracing.ts';
import { redact, registerSecrets } from '../telemetry/redact.ts';
import { parseCompany, parseLimit, parseNow, parsePeriod, toRunOptions } from './flags.ts';
import { migrateCommand, runsCommand } from './commands.ts';
import { demoCommand } from './demo-command.ts';

export interface MainIo {
  env: Record<string, string | undefined>;
  stdout?: (line: string) => void;
}

/** Wraps a validator as a commander argument parser (its error becomes exit 2). */
const parser =
  <T>(fn: (text: string) => T) =>
  (text: string): T => {
    try {
      return fn(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message.replace(/^--\w+ /, ''));
    }
  };

function commonFlags(cmd: Command): Command {
  return cmd
    .option('--dry-run', 'read and compute everything; write, send and push nothing')
    .addOption(new Option('--now <iso>', "the run's clock (ISO-8601, UTC when no offset)").argParser(parser(parseNow)))
    .addOption(new Option('--company <id>', 'only this company').argParser(parser(parseCompany)));
}

/** Runs the command line `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: MainIo): Promise<number> {
  let exitCode = 0;
  let log: Logger | undefined;
  const config = (): Config => {
    const c = loadConfig(io.env);
    registerSecrets(...secretsOf(c));
    log ??= createLogger({ level: c.logLevel });
    return c;
  };

  const runJobCommand = async (name: JobName, raw: Record<string, unknown>) => {
    const c = config();
    const shutdown = installShutdown(() => log);
    // Tracing starts before the job's modules load and is flushed (bounded) on every path.
    const tracing = await startTracing(c, { job: name, log });
    try {
      // One trace per run, from the Kubernetes look-up to the metrics push.
      const result = await traceCommand(name, c.shard, async () => {
        const def = await JOBS[name]();
        // In a pod: the CronJob's scheduled time as the clock, the Job annotated with the outcome.
        const k8s = await kubernetesRunDeps(c, log!);
        const publishers = [createMetricsPublisher(c), ...k8s.publishers];
        const scheduled = k8s.scheduledTime ? { scheduledTime: k8s.scheduledTime } : {};
        return runJob(def, toRunOptions(raw), { config: c, log: log!, signal: shutdown.signal, publishers, ...scheduled, ...(io.stdout ? { stdout: io.stdout } : {}) });
      });
      exitCode = result.exitCode;
    } finally {
      await tracing.shutdown();
      shutdown.dispose();
    }
  };

  const program = new Command('exitosx-cron')
    .description('Exit OSx scheduled jobs: monthly drift reports, daily inactivity signals, daily QuickBooks sync.')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (text, write) => write(text.split('\n').find((l) => l.trim()) + '\n') });

  commonFlags(program.command('generate-drift-reports').description('monthly: a drift report per active company for last month, stored and emailed to its owners'))
    .addOption(new Option('--period <YYYY-MM>', 'report on this month instead of last month (backfill)').argParser(parser(parsePeriod)))
    .action((opts) => runJobCommand('generate-drift-reports', opts));
  commonFlags(program.command('detect-inactivity').description('daily: signals and one nudge email for owners inactive 21+ days; resolves returners')).action((opts) =>
    runJobCommand('detect-inactivity', opts),
  );
  commonFlags(program.command('sync-quickbooks').description("daily: pulls each connected company's monthly P&L and balance sheet from QuickBooks Online"))
    .option('--force', 'sync even integrations synced in the last 12 hours')
    .action((opts) => runJobCommand('sync-quickbooks', opts));
  program
    .command('migrate')
    .description("creates the product schema on an empty database, and the suite's own tables")
    .action(async () => {
      exitCode = await migrateCommand(config(), log!, io.stdout);
    });
  program
    .command('demo')
    .description('fills the embedded database with a realistic sample and runs every job')
    .action(async () => {
      const c = config();
      const shutdown = installShutdown(() => log);
      try {
        exitCode = await demoCommand(c, log!, shutdown.signal, io.stdout);
      } finally {
        shutdown.dispose();
      }
    });
  program
    .command('doctor')
    .description('checks, changing nothing, that the suite can work here: configuration, database, SendGrid, Intuit, token key, Pushgateway, OTLP, Kubernetes RBAC')
    .action(async () => {
      // Loaded only for doctor: it reaches every client library (SendGrid, Intuit, Kubernetes), which the other commands should not pay for at start.
      const { doctorCommand } = await import('./doctor-command.ts');
      exitCode = await doctorCommand(config, () => log, io.stdout);
    });
  program
    .command('runs')
    .description('recent run history')
    .addOption(new Option('--job <name>', 'only this job').choices(JOB_NAMES))
    .addOption(new Option('--limit <n>', 'how many runs').argParser(parser(parseLimit)).default(20))
    .action(async (opts: { job?: string; limit: number }) => {
      exitCode = await runsCommand(config(), log!, opts, io.stdout);
    });
  program
    .command('trigger')
    .description('ad-hoc run in the cluster: a Job from the CronJob <release>-<job> (like kubectl create job --from=cronjob/…), job flags after --')
    .addArgument(new Argument('<job>', 'the job to run').choices(JOB_NAMES))
    .argument('[job-flags...]', 'flags for the job, after -- (e.g. -- --period 2026-01)')
    .option('--namespace <ns>', "the release's namespace (default: the kubeconfig context's)")
    .option('--release <name>', 'the Helm release: its CronJobs are named <release>-<job>', 'exitosx-cron')
    .option('--wait', "follow the run's log, print its summary and exit with its exit code")
    .addOption(new Option('--poll-ms <ms>', 'how often --wait polls the Job').argParser(parser(parseLimit)).default(1000).hideHelp())
    .action(async (job: string, jobFlags: string[], opts: { namespace?: string; release: string; wait?: boolean; pollMs: number }) => {
      const triggerOpts = { job, release: opts.release, namespace: opts.namespace, wait: Boolean(opts.wait), jobArgs: jobFlags, pollMs: opts.pollMs };
      exitCode = await triggerCommand(config(), log!, triggerOpts, io.stdout);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return 2;
    }
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version are not errors; everything else commander rejects is usage (exit 2).
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' ? 0 : 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`exitosx-cron: ${redact(err.message)}\n`);
      return 2;
    }
    process.stderr.write(`exitosx-cron: unexpected error: ${redact((err as Error)?.stack ?? String(err))}\n`);
    return 1;
  } finally {
    log?.close();
  }
}
