// Manifold as a child process (`node src/cli/main.ts serve`, or with `asShipped` what `npm start` runs: the
// server build with its flags), for what the in-process server cannot show: a SIGKILL in the middle of a fill,
// the shipped build. The data directory and database
// are prepared beforehand with the in-process server (`prepareManifold`), which then stops; the child
// starts on the same directory and database.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { freePort, startWithFreePorts } from './free-port.ts';
import { ADMIN_PASSWORD } from './manifold.ts';
import { REPOSITORY_ROOT, npmStart } from './npm-start.ts';

const MAIN = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

export interface ManifoldProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  host: string;
  /** Everything it wrote so far (JSON log on stdout, console on stderr). */
  output(): string;
  /** Ends it with `signal` and resolves when it exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface ManifoldProcessOptions {
  dataDir: string;
  /** postgres://… (with its search_path) or undefined for SQLite in dataDir. */
  databaseUrl?: string;
  /** Extra environment; a function is called again for each try, to take new ports (freePort) after a port clash. */
  env?: Record<string, string> | (() => Promise<Record<string, string>>);
  /** Run as `npm start` does (test/helpers/npm-start.ts): dist/server/main.js with its Node flags and environment. */
  asShipped?: boolean;
  /** With asShipped: another build to run (a path), instead of npm start's. */
  main?: string;
}

/**
 * Starts `manifold serve` on 127.0.0.1 and a free port; resolves once /healthz answers (whatever the log level).
 * A port another process took between freePort and the bind is tried again with new ports.
 */
export function spawnManifold(options: ManifoldProcessOptions): Promise<ManifoldProcess> {
  return startWithFreePorts(() => spawnOnce(options));
}

async function spawnOnce(options: ManifoldProcessOptions): Promise<ManifoldProcess> {
  const port = await freePort();
  const extraEnv = typeof options.env === 'function' ? await options.env() : options.env;
  const shipped = options.asShipped ? npmStart() : null;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...shipped?.env,
    MANIFOLD_DATA_DIR: options.dataDir,
    MANIFOLD_SERVER_HOST: '127.0.0.1',
    PORT: String(port),
    MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'true',
    MANIFOLD_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MANIFOLD_LOG_LEVEL: 'info',
    ...extraEnv,
  };
  delete env.DATABASE_URL;
  if (options.databaseUrl) env.DATABASE_URL = options.databaseUrl;
  const args = shipped ? [...shipped.nodeFlags, options.main ?? shipped.main, 'serve'] : ['--disable-warning=ExperimentalWarning', MAIN, 'serve'];
  const child = spawn(process.execPath, args, { env, cwd: REPOSITORY_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: string) => {
    output = (output + chunk).slice(-200_000);
  };
  child.stdout!.setEncoding('utf8').on('data', collect);
  child.stderr!.setEncoding('utf8').on('data', collect);
  const exited = once(child, 'exit');
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  // Generous: a start on a loaded 2-core machine (type stripping, migrations) can take most of a minute.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (gone) throw new Error(`manifold exited before answering:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`manifold did not answer on ${url} within 60 s:\n${output}`);
    }
    try {
      const response = await fetch(`${url}/healthz`);
      await response.arrayBuffer();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    child,
    pid: child.pid!,
    url,
    host: `127.0.0.1:${port}`,
    output: () => output,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
  };
}
