// The Debian tools the benchmark drives: checked for, installed with apt-get when missing and allowed.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { findExecutable } from './processes.ts';

const TOOLS = [
  { binary: 'docker-registry', packageName: 'docker-registry' },
  { binary: 'skopeo', packageName: 'skopeo' },
  { binary: 'wrk', packageName: 'wrk' },
];

/** Installs missing tools with apt-get when running as root (BENCH_NO_INSTALL=1 forbids it); throws otherwise. */
export function ensureTools(): void {
  const missing = TOOLS.filter((tool) => !findExecutable(tool.binary));
  if (missing.length === 0) return;
  const packages = missing.map((tool) => tool.packageName);
  const root = process.getuid?.() === 0;
  if (!root || process.env.BENCH_NO_INSTALL === '1') {
    throw new Error(`missing: ${packages.join(', ')}; install them with: apt-get install ${packages.join(' ')}`);
  }
  console.error(`installing ${packages.join(', ')} with apt-get`);
  const install = () => execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit' });
    install();
  }
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch (error) {
    // wrk prints its version on stdout and exits 1 for `-v`.
    const output = (error as { stdout?: string }).stdout ?? '';
    return output.split('\n')[0].trim() || 'unknown';
  }
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface Environment {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  distribution: string;
  skopeo: string;
  wrk: string;
}

export function describeEnvironment(): Environment {
  return {
    cpus: os.availableParallelism(),
    cpuModel: cpuModel(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    distribution: firstLine('docker-registry', ['--version']),
    skopeo: firstLine('skopeo', ['--version']),
    wrk: firstLine('wrk', ['-v']).replace(/\s*Copyright.*$/, ''),
  };
}
