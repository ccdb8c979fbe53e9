// Child processes of the benchmark: started with their output in a log file (cheap to write, and read
// back when something fails), waited for until they answer HTTP, stopped by their own pid.
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { trackChild } from './cleanup.ts';

export { freePort } from '../../test/helpers/free-port.ts';

export function findExecutable(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin', '/usr/local/bin'])) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

export interface LoggedProcess {
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<void>;
}

/** Starts `command` with stdout and stderr appended to `logFile`. */
export function spawnLogged(command: string, args: string[], logFile: string, options: SpawnOptions = {}): LoggedProcess {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { ...options, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  trackChild(child);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  if (child.pid === undefined) throw new Error(`cannot start ${command}`);
  return { child, pid: child.pid, logFile, exited };
}

export function logTail(logFile: string, characters = 3_000): string {
  try {
    return readFileSync(logFile, 'utf8').slice(-characters);
  } catch {
    return '';
  }
}

/** Waits until GET url answers with any HTTP status; fails early when the process exits. */
export async function waitForHttp(url: string, started: LoggedProcess, timeoutMs = 30_000): Promise<void> {
  let exited = false;
  void started.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${path.basename(started.logFile)}: the process exited while starting:\n${logTail(started.logFile)}`);
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s:\n${logTail(started.logFile)}`);
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(started: LoggedProcess, graceMs = 10_000): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await started.exited;
  clearTimeout(timer);
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (asynchronously: the caches may live in this process's event loop). */
export function runCommand(command: string, args: string[], options: SpawnOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout = (stdout + chunk).slice(-200_000);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-20_000);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
