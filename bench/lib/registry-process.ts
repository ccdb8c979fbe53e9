// Debian's `docker-registry` (CNCF Distribution 2.8) as a child process of the benchmark: the upstream
// (a plain registry the images are pushed to) or the proxy under test (`proxy.remoteurl`). Its access
// log (Apache combined format, on stdout) lands in its log file, where the upstream's is counted.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findExecutable, freePort, spawnLogged, stopProcess, waitForHttp } from './processes.ts';
import type { LoggedProcess } from './processes.ts';

export interface RegistryOptions {
  /** Where its config and log go. */
  workDir: string;
  /** Names the config and log files. */
  name: string;
  storage: string;
  /** Proxy mode: the registry it caches. */
  proxyRemoteUrl?: string;
  /** Its own log level; Distribution's default (info) when unset. The access log is written either way. */
  logLevel?: 'warn' | 'info';
}

export interface AccessLogEntry {
  method: string;
  path: string;
  status: number;
}

const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/;

function configYaml(options: RegistryOptions, port: number): string {
  const lines = ['version: 0.1'];
  if (options.logLevel) lines.push('log:', `  level: ${options.logLevel}`);
  lines.push(
    'storage:',
    // As in Debian's /etc/docker/registry/config.yml and the registry:2 image's configuration.
    '  cache:',
    '    blobdescriptor: inmemory',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(options.storage)}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${JSON.stringify(`manifold-bench-${process.pid}-${port}`)}`,
  );
  if (options.proxyRemoteUrl) lines.push('proxy:', `  remoteurl: ${JSON.stringify(options.proxyRemoteUrl)}`);
  return lines.join('\n') + '\n';
}

export class RegistryProcess {
  readonly port: number;
  readonly url: string;
  readonly #process: LoggedProcess;

  private constructor(port: number, started: LoggedProcess) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.#process = started;
  }

  static async start(options: RegistryOptions): Promise<RegistryProcess> {
    const binary = findExecutable('docker-registry');
    if (!binary) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
    const port = await freePort();
    const configPath = path.join(options.workDir, `${options.name}.yml`);
    writeFileSync(configPath, configYaml(options, port));
    const started = spawnLogged(binary, ['serve', configPath], path.join(options.workDir, `${options.name}.log`));
    await waitForHttp(`http://127.0.0.1:${port}/v2/`, started);
    return new RegistryProcess(port, started);
  }

  get pid(): number {
    return this.#process.pid;
  }

  /** A position in the log: pass it to accessLogSince. */
  logPosition(): number {
    try {
      return statSync(this.#process.logFile).size;
    } catch {
      return 0;
    }
  }

  /** Access log entries written since `position` (lines are written just after their response). */
  accessLogSince(position: number): AccessLogEntry[] {
    const text = readFileSync(this.#process.logFile).subarray(position).toString('utf8');
    const entries: AccessLogEntry[] = [];
    for (const line of text.split('\n')) {
      const match = ACCESS_LINE.exec(line);
      if (match) entries.push({ method: match[1], path: match[2].split('?')[0], status: Number(match[3]) });
    }
    return entries;
  }

  stop(): Promise<void> {
    return stopProcess(this.#process);
  }
}
