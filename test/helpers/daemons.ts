// Real container runtimes for the mirror tests: containerd (driven by `ctr`), dockerd (driven by
// `docker`) and podman, each with a private root, state directory and socket in a temporary directory,
// started once per test file and stopped by pid. A runtime that is missing or cannot start fails the
// test with its own log: .ci/run installs the Debian packages (containerd, docker.io, podman).
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function findExecutable(name: string, packageName: string): string {
  for (const dir of ['/usr/bin', '/usr/sbin', ...(process.env.PATH ?? '').split(path.delimiter)]) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error(`${name} is not installed (Debian package ${packageName}); the mirror tests need it: apt-get install ${packageName} (.ci/run does)`);
}

/** Runs a command asynchronously (the Manifold under test answers in this process meanwhile). */
export function run(binary: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(binary, args, { env: options.env ?? process.env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr: stderr + (error && typeof error.code !== 'number' ? `\n${error.message}` : '') });
    });
  });
}

/** A daemon process with its log file; stop() ends it by pid (SIGTERM, then SIGKILL) and removes its directory. */
class Daemon {
  readonly dir: string;
  readonly #child: ChildProcess;
  readonly #logPath: string;
  readonly #exited: Promise<void>;
  #gone = false;

  constructor(dir: string, binary: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.dir = dir;
    this.#logPath = path.join(dir, 'daemon.log');
    // A file the child writes to directly: no pipe for this process to drain.
    const log = openSync(this.#logPath, 'a');
    this.#child = spawn(binary, args, { stdio: ['ignore', log, log], env });
    closeSync(log);
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', () => {
        this.#gone = true;
        resolve();
      });
      this.#child.once('error', () => {
        this.#gone = true;
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  log(): string {
    try {
      return readFileSync(this.#logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits until `ready()` holds; throws with the daemon's log when it exits or takes too long. */
  async waitUntil(ready: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#gone) throw new Error(`${what} exited before it was ready:\n${this.log().slice(-4000)}`);
      if (await ready()) return;
      if (Date.now() > deadline) throw new Error(`${what} did not become ready within ${timeoutMs / 1000} s:\n${this.log().slice(-4000)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    if (!this.#gone && this.#child.pid !== undefined) {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
      await this.#exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CtrPullOptions {
  platform?: string;
  /** `user:password` sent to every host of the pull. */
  user?: string;
}

/** containerd with its own config, root, state and gRPC socket; `ctr` pulls through a hosts directory. */
export class Containerd {
  readonly #daemon: Daemon;
  readonly #ctr: string;
  readonly socket: string;
  /** `<dir>/certs.d`: write `_default/hosts.toml` or `<host>/hosts.toml` here. */
  readonly hostsDir: string;

  private constructor(daemon: Daemon, ctr: string, socket: string, hostsDir: string) {
    this.#daemon = daemon;
    this.#ctr = ctr;
    this.socket = socket;
    this.hostsDir = hostsDir;
  }

  static async start(): Promise<Containerd> {
    const binary = findExecutable('containerd', 'containerd');
    const ctr = findExecutable('ctr', 'containerd');
    const dir = mkdtempSync(path.join(tmpdir(), 'manifold-containerd-'));
    const socket = path.join(dir, 'containerd.sock');
    const hostsDir = path.join(dir, 'certs.d');
    mkdirSync(hostsDir);
    const config = [
      'version = 2',
      `root = ${JSON.stringify(path.join(dir, 'root'))}`,
      `state = ${JSON.stringify(path.join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
    ].join('\n');
    const configPath = path.join(dir, 'config.toml');
    writeFileSync(configPath, `${config}\n`);
    const daemon = new Daemon(dir, binary, ['--config', configPath]);
    const started = new Containerd(daemon, ctr, socket, hostsDir);
    try {
      await daemon.waitUntil(async () => (await started.ctr(['version'])).code === 0, 'containerd');
    } catch (error) {
      await daemon.stop();
      throw error;
    }
    return started;
  }

  ctr(args: string[]): Promise<Run> {
    return run(this.#ctr, ['--address', this.socket, ...args]);
  }

  /** Writes `<hostsDir>/<host>/hosts.toml` (host `_default` applies to every registry without its own). */
  writeHosts(host: string, toml: string): void {
    mkdirSync(path.join(this.hostsDir, host), { recursive: true });
    writeFileSync(path.join(this.hostsDir, host, 'hosts.toml'), toml);
  }

  /** `ctr image pull --hosts-dir … <ref>`, unpacked with the native snapshotter (no overlay needed). */
  pull(reference: string, options: CtrPullOptions = {}): Promise<Run> {
    const args = ['image', 'pull', '--hosts-dir', this.hostsDir, '--snapshotter', 'native'];
    if (options.platform) args.push('--platform', options.platform);
    if (options.user) args.push('--user', options.user);
    return this.ctr([...args, reference]);
  }

  log(): string {
    return this.#daemon.log();
  }

  stop(): Promise<void> {
    return this.#daemon.stop();
  }
}

/** dockerd with its own data root, exec root, pidfile and socket, no networking of its own. */
export class Dockerd {
  readonly #daemon: Daemon;
  readonly #docker: string;
  readonly socket: string;
  readonly #configDir: string;

  private constructor(daemon: Daemon, docker: string, socket: string, configDir: string) {
    this.#daemon = daemon;
    this.#docker = docker;
    this.socket = socket;
    this.#configDir = configDir;
  }

  /** Starts dockerd with `daemon.json` holding `settings` (registry-mirrors, insecure-registries…). */
  static async start(settings: Record<string, unknown>): Promise<Dockerd> {
    const binary = findExecutable('dockerd', 'docker.io');
    const docker = findExecutable('docker', 'docker.io');
    // Short: the exec root holds unix sockets, whose paths are limited to about 100 bytes.
    const dir = mkdtempSync(path.join(tmpdir(), 'mfd-'));
    const socket = path.join(dir, 'docker.sock');
    const configDir = path.join(dir, 'client');
    mkdirSync(configDir);
    const daemonJson = path.join(dir, 'daemon.json');
    writeFileSync(daemonJson, JSON.stringify(settings, null, 2));
    const daemon = new Daemon(dir, binary, [
      '--config-file', daemonJson,
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'docker.pid'),
      '-H', `unix://${socket}`,
      '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false',
      '--storage-driver=vfs',
      // Its own containerd (dockerd starts one under the exec root) rather than the machine's.
      '--containerd-namespace', `manifold-test-${process.pid}`,
      '--containerd-plugins-namespace', `manifold-test-plugins-${process.pid}`,
    ]);
    const started = new Dockerd(daemon, docker, socket, configDir);
    try {
      await daemon.waitUntil(async () => (await started.docker(['version', '--format', '{{.Server.Version}}'])).code === 0, 'dockerd', 60_000);
    } catch (error) {
      await daemon.stop();
      throw error;
    }
    return started;
  }

  docker(args: string[]): Promise<Run> {
    return run(this.#docker, ['--config', this.#configDir, '-H', `unix://${this.socket}`, ...args], { timeoutMs: 180_000 });
  }

  log(): string {
    return this.#daemon.log();
  }

  stop(): Promise<void> {
    return this.#daemon.stop();
  }
}

/** podman with its own storage (vfs), run root and registries.conf; no daemon. */
export class Podman {
  readonly dir: string;
  readonly #podman: string;
  readonly #registriesConf: string;

  private constructor(dir: string, podman: string) {
    this.dir = dir;
    this.#podman = podman;
    this.#registriesConf = path.join(dir, 'registries.conf');
  }

  static create(registriesConf: string): Podman {
    const binary = findExecutable('podman', 'podman');
    const dir = mkdtempSync(path.join(tmpdir(), 'manifold-podman-'));
    const podman = new Podman(dir, binary);
    writeFileSync(podman.#registriesConf, registriesConf);
    writeFileSync(path.join(dir, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    return podman;
  }

  podman(args: string[]): Promise<Run> {
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: this.#registriesConf, XDG_RUNTIME_DIR: path.join(this.dir, 'xdg'), REGISTRY_AUTH_FILE: path.join(this.dir, 'auth.json') };
    mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true });
    return run(this.#podman, [
      '--root', path.join(this.dir, 'root'), '--runroot', path.join(this.dir, 'runroot'), '--storage-driver', 'vfs',
      '--tmpdir', path.join(this.dir, 'tmp'), '--events-backend', 'none', '--cgroup-manager', 'cgroupfs',
      ...args,
    ], { env });
  }

  pull(reference: string, extra: string[] = []): Promise<Run> {
    return this.podman(['pull', '--signature-policy', path.join(this.dir, 'policy.json'), ...extra, reference]);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
