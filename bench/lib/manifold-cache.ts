// Manifold as a child process on the embedded default (SQLite + filesystem objects), started the way
// `npm start` starts it. Its group, registry, upstream and personal token are created once through the
// services in a template data directory; every cold start copies that template, so a cold cache has the
// same configuration and an empty object store.
import { cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { createManifold } from '../../src/server.ts';
import type { Result } from '../../src/result.ts';
import type { CacheUnderTest } from './cache.ts';
import { removeDirectory } from './cleanup.ts';
import { npmStart } from '../../test/helpers/npm-start.ts';
import { freePort, spawnLogged, stopProcess, waitForHttp } from './processes.ts';
import type { LoggedProcess } from './processes.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ADMIN_PASSWORD = 'bench-admin-password';
export const GROUP = 'bench';
export const REGISTRY = 'hub';

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return result.value;
}

/**
 * A data directory (and database: SQLite in it, or the PostgreSQL `databaseUrl`) with the admin, group
 * `bench`, registry `hub` on `upstreamUrl`, and a pull token.
 */
export async function createTemplate(directory: string, upstreamUrl: string, databaseUrl?: string): Promise<string> {
  const config = loadConfig({}, { dataDir: directory, adminPassword: ADMIN_PASSWORD, upstream: { allowPrivate: true }, log: { level: 'silent' }, database: databaseUrl ? { url: databaseUrl } : {} });
  const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
  const manifold = await createManifold(config, createLogger('silent', quiet));
  try {
    const { services } = manifold;
    const admin = unwrap(await services.authenticator.authenticate({ authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }, 'api'));
    const group = unwrap(await services.groups.create(admin, { path: GROUP }));
    const registry = unwrap(await services.registries.create(admin, group.id, { name: REGISTRY }));
    unwrap(await services.registryUpstreams.createUpstreamForRegistry(admin, registry.id, { name: 'upstream', url: upstreamUrl, cache_validity_hours: 24, username: null, password: null }));
    return unwrap(await services.tokens.createPersonal(admin, { name: 'bench', scopes: ['read_virtual_registry'] })).token;
  } finally {
    await manifold.close();
  }
}

/** The bench's environment without settings that would take Manifold off the embedded default. */
export function inheritedEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MANIFOLD_') && name !== 'DATABASE_URL' && name !== 'PORT'));
}

export interface ManifoldOptions {
  /** Directory for `node --cpu-prof` profiles of the Manifold process; none when unset. */
  cpuProfileDir?: string;
  /** Storage settings (environment) of the process started as `generation`; unset: the filesystem in its data directory. */
  storageEnv?: (generation: number) => Record<string, string>;
  /** Node flags after those of `npm start` (diagnostics: --heapsnapshot-signal, --max-old-space-size). */
  nodeFlags?: string[];
}

export class ManifoldCache implements CacheUnderTest {
  readonly name = 'Manifold';
  readonly #workDir: string;
  readonly #template: string;
  readonly #token: string;
  readonly #options: ManifoldOptions;
  #process: LoggedProcess | null = null;
  #port = 0;
  #generation = 0;
  #dataDir: string | null = null;

  private constructor(workDir: string, template: string, token: string, options: ManifoldOptions) {
    this.#workDir = workDir;
    this.#template = template;
    this.#token = token;
    this.#options = options;
  }

  static async start(upstreamUrl: string, workDir: string, options: ManifoldOptions = {}): Promise<ManifoldCache> {
    const template = path.join(workDir, 'manifold-template');
    mkdirSync(template, { recursive: true });
    const token = await createTemplate(template, upstreamUrl);
    const cache = new ManifoldCache(workDir, template, token, options);
    await cache.#startEmpty();
    return cache;
  }

  get host(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  get pid(): number {
    if (!this.#process) throw new Error('Manifold is not running');
    return this.#process.pid;
  }

  repository(image: string): string {
    return `${GROUP}/${REGISTRY}/${image}`;
  }

  skopeoCredentials(): string[] {
    return ['--src-creds', `admin:${this.#token}`];
  }

  /** A registry token from /auth/token, as docker and skopeo get one after `login`. */
  async requestHeaders(repository: string): Promise<Record<string, string>> {
    const url = new URL('/auth/token', this.url);
    url.searchParams.set('service', 'manifold');
    url.searchParams.set('scope', `repository:${repository}:pull`);
    const response = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`admin:${this.#token}`).toString('base64')}` } });
    if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}: ${await response.text()}`);
    const { token } = (await response.json()) as { token: string };
    return { authorization: `Bearer ${token}` };
  }

  /** A registry token from /auth/token signed in with the admin's password (scrypt), as `docker login` with a password. */
  async passwordToken(repository: string): Promise<string> {
    const url = new URL('/auth/token', this.url);
    url.searchParams.set('service', 'manifold');
    url.searchParams.set('scope', `repository:${repository}:pull`);
    const response = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } });
    if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}: ${await response.text()}`);
    return ((await response.json()) as { token: string }).token;
  }

  async restartEmpty(): Promise<void> {
    await this.stop();
    await this.#startEmpty();
  }

  async stop(): Promise<void> {
    if (this.#process) await stopProcess(this.#process, 30_000);
    this.#process = null;
    if (this.#dataDir) removeDirectory(this.#dataDir);
    this.#dataDir = null;
  }

  async #startEmpty(): Promise<void> {
    const generation = ++this.#generation;
    this.#dataDir = path.join(this.#workDir, `manifold-data-${generation}`);
    cpSync(this.#template, this.#dataDir, { recursive: true });
    this.#port = await freePort();
    const profile = this.#options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${this.#options.cpuProfileDir}`] : [];
    const start = npmStart({ prestart: true });
    this.#process = spawnLogged(
      process.execPath,
      [...start.nodeFlags, ...(this.#options.nodeFlags ?? []), ...profile, start.main, 'serve'],
      path.join(this.#workDir, 'manifold.log'),
      {
        cwd: REPOSITORY_ROOT,
        env: {
          ...inheritedEnvironment(),
          ...start.env,
          MANIFOLD_DATA_DIR: this.#dataDir,
          PORT: String(this.#port),
          MANIFOLD_SERVER_HOST: '127.0.0.1',
          MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'true',
          MANIFOLD_ADMIN_PASSWORD: ADMIN_PASSWORD,
          MANIFOLD_LOG_LEVEL: process.env.BENCH_MANIFOLD_LOG_LEVEL ?? 'info',
          ...this.#options.storageEnv?.(generation),
        },
      },
    );
    await waitForHttp(`${this.url}/healthz`, this.#process);
  }
}
