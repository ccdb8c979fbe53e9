// A real CNCF Distribution registry for tests: Debian's `docker-registry` binary started on a free
// 127.0.0.1 port with a temporary config (filesystem storage, optional htpasswd Basic auth with bcrypt
// from apache2-utils). Its access log is captured so a test can count requests per path. A missing
// binary is an error, never a skip: .ci/run installs the packages.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startWithFreePorts } from './free-port.ts';

export interface DistributionOptions {
  /** htpasswd Basic auth with this user; anonymous access when omitted. */
  auth?: { username: string; password: string };
}

export interface AccessLogEntry {
  method: string;
  /** Path without the query. */
  path: string;
  status: number;
}

function findExecutable(name: string, packageName: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin'])) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error(`${name} is not installed (Debian package ${packageName}); the tests need it: apt-get install ${packageName} (.ci/run does)`);
}

function configYaml(root: string, port: number, htpasswdPath: string | null): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(path.join(root, 'data'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${JSON.stringify(`manifold-test-${process.pid}-${port}`)}`,
  ];
  if (htpasswdPath) lines.push('auth:', '  htpasswd:', '    realm: manifold-test', `    path: ${JSON.stringify(htpasswdPath)}`);
  return lines.join('\n') + '\n';
}

const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/;

export class Distribution {
  readonly url: string;
  readonly port: number;
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly #log: AccessLogEntry[] = [];
  #stderr = '';
  #exited: Promise<void>;

  private constructor(child: ChildProcess, dir: string, port: number) {
    this.#child = child;
    this.#dir = dir;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (error) => {
        this.#stderr += String(error);
        resolve();
      });
    });
    let pending = '';
    // The access log (Apache combined format) goes to stdout; everything else to stderr.
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const match = ACCESS_LINE.exec(line);
        if (match) this.#log.push({ method: match[1], path: match[2].split('?')[0], status: Number(match[3]) });
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-20_000);
    });
  }

  /** Starts a registry and waits until it answers; throws with its output when it cannot start. */
  static async start(options: DistributionOptions = {}): Promise<Distribution> {
    const binary = findExecutable('docker-registry', 'docker-registry');
    // Another process may take the port between freePort and the registry's bind: then again on another.
    return startWithFreePorts(async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'manifold-distribution-'));
      let htpasswdPath: string | null = null;
      if (options.auth) {
        const htpasswd = findExecutable('htpasswd', 'apache2-utils');
        const made = spawnSync(htpasswd, ['-Bbn', options.auth.username, options.auth.password], { encoding: 'utf8' });
        if (made.status !== 0) throw new Error(`htpasswd failed: ${made.stderr}`);
        htpasswdPath = path.join(dir, 'htpasswd');
        writeFileSync(htpasswdPath, made.stdout);
      }
      const port = await freePort();
      const configPath = path.join(dir, 'config.yml');
      writeFileSync(configPath, configYaml(dir, port, htpasswdPath));
      const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      const registry = new Distribution(child, dir, port);
      try {
        await registry.#waitUntilReady();
        return registry;
      } catch (error) {
        await registry.stop();
        throw error;
      }
    });
  }

  async #waitUntilReady(): Promise<void> {
    const deadline = Date.now() + 15_000;
    let exited = false;
    void this.#exited.then(() => {
      exited = true;
    });
    while (Date.now() < deadline) {
      if (exited) throw new Error(`docker-registry exited: ${this.#stderr.trim()}`);
      try {
        const response = await fetch(`${this.url}/v2/`);
        await response.arrayBuffer();
        if (response.status === 200 || response.status === 401) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`docker-registry did not answer within 15 s: ${this.#stderr.trim()}`);
  }

  /** Requests it has logged so far (the log line is written after the response; see waitForLog). */
  get accessLog(): readonly AccessLogEntry[] {
    return this.#log;
  }

  /** How many requests with this method and path it logged. */
  count(method: string, requestPath: string): number {
    return this.#log.filter((entry) => entry.method === method && entry.path === requestPath).length;
  }

  /** Waits until the access log satisfies `predicate` (log lines trail responses by a moment). */
  async waitForLog(predicate: (log: readonly AccessLogEntry[]) => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.#log)) {
      if (Date.now() > deadline) throw new Error(`the registry's access log did not reach the expected state: ${JSON.stringify(this.#log)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Its log output other than the access log (for failure messages). */
  get output(): string {
    return this.#stderr;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
      await this.#exited;
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
