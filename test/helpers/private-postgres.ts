// A PostgreSQL cluster of the test's own (initdb + pg_ctl from PostgreSQL 15, in a temporary directory,
// on a private port with its unix socket in that directory), for fault tests that stop, freeze or cut
// the database: the shared server on 5432 is never touched. Run as the `postgres` user when the test
// runs as root (initdb refuses root). Missing binaries fail the test loudly; it is never skipped.
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port.ts';

const run = promisify(execFile);

export const POSTGRES_BIN = process.env.MANIFOLD_TEST_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** The postmaster's pid (changes at every start). */
  pid(): number;
  /** Fast shutdown by signal to the postmaster's pid; resolves once it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /**
   * SIGSTOP / SIGCONT of the postmaster and every backend: a database that no longer answers at all.
   * Resolves once every backend is stopped (listing them takes a while on a loaded machine, and a
   * backend not yet stopped still answers).
   */
  freeze(): Promise<void>;
  thaw(): void;
  /** pg_terminate_backend of every client connection but the one asking; returns how many. */
  terminateClients(): Promise<number>;
  destroy(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids of a process's children (the postmaster's backends and helpers). */
async function childrenOf(pid: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({ stdout: '' }));
  return stdout.split('\n').map((line) => Number(line.trim())).filter((child) => child > 0);
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  for (const tool of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(path.join(POSTGRES_BIN, tool))) {
      throw new Error(`${path.join(POSTGRES_BIN, tool)} is missing: the database fault tests need the PostgreSQL 15 server (apt-get install postgresql)`);
    }
  }
  const asRoot = userInfo().uid === 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'manifold-pg-'));
  const data = path.join(dir, 'data');
  const socketDir = path.join(dir, 'socket');
  mkdirSync(socketDir);
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
    chownSync(socketDir, Number(stdout.trim()), Number(gid.trim()));
  }
  const as = (tool: string, args: string[]) => (asRoot
    ? run('runuser', ['-u', 'postgres', '--', path.join(POSTGRES_BIN, tool), ...args])
    : run(path.join(POSTGRES_BIN, tool), args));
  await as('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  const port = await freePort();
  const logFile = path.join(dir, 'postgres.log');
  const options = `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60`;
  let postmasterPid = 0;

  const start = async () => {
    await as('pg_ctl', ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '30', 'start']);
    postmasterPid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  };
  const stop = async () => {
    if (!postmasterPid || !alive(postmasterPid)) return;
    process.kill(postmasterPid, 'SIGCONT');
    // SIGINT: fast shutdown (connections are cut, as in a restart or failover).
    process.kill(postmasterPid, 'SIGINT');
    const deadline = Date.now() + 30_000;
    while (alive(postmasterPid)) {
      if (Date.now() > deadline) throw new Error(`the private PostgreSQL (pid ${postmasterPid}) did not stop within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const signalAll = async (signal: NodeJS.Signals) => {
    for (const pid of [postmasterPid, ...(await childrenOf(postmasterPid))]) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone meanwhile
      }
    }
  };
  let frozenSignal: Promise<void> = Promise.resolve();

  await start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    pid: () => postmasterPid,
    stop,
    start,
    freeze() {
      // Synchronously the postmaster (no new backends), then its children as soon as they are listed.
      process.kill(postmasterPid, 'SIGSTOP');
      frozenSignal = signalAll('SIGSTOP');
      return frozenSignal;
    },
    thaw() {
      void frozenSignal.then(() => signalAll('SIGCONT'));
    },
    async terminateClients() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query("select pg_terminate_backend(pid) as done from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()");
        return rows.filter((row: { done: boolean }) => row.done).length;
      } finally {
        await client.end();
      }
    },
    async destroy() {
      if (postmasterPid && alive(postmasterPid)) {
        await signalAll('SIGCONT');
        await stop().catch(() => process.kill(postmasterPid, 'SIGKILL'));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
