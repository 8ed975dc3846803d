/**
 * A private PostgreSQL cluster that a test owns and may crash: Debian's `initdb`
 * (/usr/lib/postgresql/<version>/bin) in a temporary directory owned by the
 * `postgres` user, on a free loopback port, and `postgres` itself started as a
 * direct child of the test process (spawned with the postgres user's uid and gid),
 * never through `pg_ctl start`: a daemonized postmaster that is killed stays a
 * zombie on these machines and its pid file then blocks the restart, while a child
 * of ours is reaped by Node. `kill9()` kills the postmaster and its children at
 * once (a real crash: the next start runs crash recovery from the WAL);
 * `fastShutdown()` is SIGINT to the postmaster; `start()` starts a new postmaster
 * on the same directory, with extra settings if asked (`default_transaction_read_only=on`).
 *
 * Needs root (to run as `postgres`) and the Debian server package; `available()`
 * says whether this machine has them, so a suite can skip with a clear message.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

const PG_ROOT = '/usr/lib/postgresql';

/** The newest installed server's bin directory, if any. */
function binDir(): string | undefined {
  if (!fs.existsSync(PG_ROOT)) return undefined;
  const versions = fs.readdirSync(PG_ROOT).filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(PG_ROOT, v, 'bin/postgres'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(PG_ROOT, versions[0], 'bin') : undefined;
}

/** uid and gid of the `postgres` user. */
function postgresUser(): { uid: number; gid: number } | undefined {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Why a private cluster cannot be made here, or undefined when it can. */
export function unavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (the private cluster runs as the postgres user)';
  if (!binDir()) return `no PostgreSQL server under ${PG_ROOT} (Debian: apt-get install postgresql)`;
  if (!postgresUser()) return 'no postgres user';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Pids of the direct children of `pid` (the postmaster's backends and helpers). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces and parentheses: split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** True while `pid` exists and is not a zombie. */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export interface PrivatePostgres {
  readonly port: number;
  /** The cluster's directory (data in `data/`, the socket and the log beside it). */
  readonly dir: string;
  /** A URL for a database of this cluster. */
  url(database?: string): string;
  /** Starts a postmaster on the cluster's directory (after a crash: crash recovery) and waits until it accepts connections. */
  start(settings?: Record<string, string>): Promise<void>;
  /** kill -9 of the postmaster and all its children at once; waits until the postmaster is gone. */
  kill9(): Promise<void>;
  /** Fast shutdown (SIGINT): open transactions are rolled back, sessions ended; waits until it is down. */
  fastShutdown(): Promise<void>;
  /** True while the postmaster runs. */
  running(): boolean;
  /** The server's log so far (for failure messages). */
  log(): string;
  /** Stops the server and removes the directory. */
  destroy(): Promise<void>;
}

/** initdb's a new cluster in a temporary directory and starts it. */
export async function createPrivatePostgres(): Promise<PrivatePostgres> {
  const reason = unavailableReason();
  if (reason) throw new Error(`private PostgreSQL cluster unavailable: ${reason}`);
  const bin = binDir()!;
  const user = postgresUser()!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exitosx-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  fs.chownSync(dir, user.uid, user.gid);
  const asPostgres = { uid: user.uid, gid: user.gid, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' } };
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...asPostgres, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr || init.error}`);
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;

  const waitReady = async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const client = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 2000 });
      try {
        await client.connect();
        await client.query('select 1');
        await client.end();
        return;
      } catch (err) {
        await client.end().catch(() => undefined);
        if (child?.exitCode !== null || Date.now() > deadline) throw new Error(`private PostgreSQL did not start: ${(err as Error).message}\n${readLog().slice(-3000)}`, { cause: err });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const readLog = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');

  const start = async (settings: Record<string, string> = {}) => {
    if (child && child.exitCode === null && child.signalCode === null) throw new Error('private PostgreSQL is already running');
    const args = ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=60', '-c', 'shared_buffers=16MB'];
    // A process crash is what these tests make, not an OS crash: the WAL in the page
    // cache survives it either way, so fsync only costs time here.
    args.push('-c', 'fsync=off');
    for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
    const log = fs.openSync(logFile, 'a');
    fs.fchownSync(log, user.uid, user.gid);
    const proc = spawn(path.join(bin, 'postgres'), args, { ...asPostgres, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitReady();
  };

  const stopWith = async (signal: NodeJS.Signals, ms: number) => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    port,
    dir,
    url,
    start,
    log: readLog,
    running: () => Boolean(child && child.exitCode === null && child.signalCode === null),
    async kill9() {
      const proc = child;
      if (!proc?.pid || proc.exitCode !== null) return;
      const backends = childrenOf(proc.pid);
      for (const pid of [proc.pid, ...backends]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
      // The backends, now orphans, die at once (SIGKILL); wait until none is left holding the data directory.
      const deadline = Date.now() + 10_000;
      while (backends.some(isRunning) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    fastShutdown: () => stopWith('SIGINT', 30_000),
    async destroy() {
      await stopWith('SIGINT', 10_000);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
