// Several Manifold replicas as child processes, started the way `npm start` starts one, on one
// PostgreSQL schema (BENCH_DATABASE_URL, default the local `test` database) and one bucket, in cluster
// mode (README "Running several replicas"): each with its own spool and peer listener, all sharing the
// keys of one data directory and the cluster secret. Every cold start is a fresh schema and a fresh
// bucket prefix, so the replicas start with an empty cache and the same configuration.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { CacheUnderTest } from './cache.ts';
import { removeDirectory } from './cleanup.ts';
import { ADMIN_PASSWORD, GROUP, REGISTRY, createTemplate, inheritedEnvironment } from './manifold-cache.ts';
import { npmStart } from '../../test/helpers/npm-start.ts';
import { freePort, spawnLogged, stopProcess, waitForHttp } from './processes.ts';
import type { LoggedProcess } from './processes.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BENCH_DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** One replica, as the bench's clients see a cache. */
class Replica implements CacheUnderTest {
  readonly name: string;
  readonly #cluster: ManifoldCluster;
  readonly process: LoggedProcess;
  readonly port: number;

  constructor(cluster: ManifoldCluster, index: number, process: LoggedProcess, port: number) {
    this.#cluster = cluster;
    this.name = `Manifold replica ${index + 1}`;
    this.process = process;
    this.port = port;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  get pid(): number {
    return this.process.pid;
  }

  repository(image: string): string {
    return `${GROUP}/${REGISTRY}/${image}`;
  }

  skopeoCredentials(): string[] {
    return ['--src-creds', `admin:${this.#cluster.token}`];
  }

  async requestHeaders(): Promise<Record<string, string>> {
    return { authorization: `Basic ${Buffer.from(`admin:${this.#cluster.token}`).toString('base64')}` };
  }

  restartEmpty(): Promise<void> {
    return this.#cluster.restartEmpty();
  }

  stop(): Promise<void> {
    return this.#cluster.stop();
  }
}

export class ManifoldCluster {
  readonly #workDir: string;
  readonly #upstreamUrl: string;
  readonly #count: number;
  readonly #storageEnv: (generation: number) => Record<string, string>;
  #generation = 0;
  #schema: string | null = null;
  #dataDir: string | null = null;
  replicas: Replica[] = [];
  token = '';

  private constructor(workDir: string, upstreamUrl: string, count: number, storageEnv: (generation: number) => Record<string, string>) {
    this.#workDir = workDir;
    this.#upstreamUrl = upstreamUrl;
    this.#count = count;
    this.#storageEnv = storageEnv;
  }

  static async start(upstreamUrl: string, workDir: string, options: { replicas: number; storageEnv: (generation: number) => Record<string, string> }): Promise<ManifoldCluster> {
    const cluster = new ManifoldCluster(workDir, upstreamUrl, options.replicas, options.storageEnv);
    await cluster.#startEmpty();
    return cluster;
  }

  async restartEmpty(): Promise<void> {
    await this.stop();
    await this.#startEmpty();
  }

  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((replica) => stopProcess(replica.process, 30_000)));
    this.replicas = [];
    if (this.#schema) await this.#sql(`drop schema if exists ${this.#schema} cascade`);
    this.#schema = null;
    if (this.#dataDir) removeDirectory(this.#dataDir);
    this.#dataDir = null;
  }

  async #sql(statement: string): Promise<void> {
    const client = new pg.Client({ connectionString: BENCH_DATABASE_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  }

  async #startEmpty(): Promise<void> {
    const generation = ++this.#generation;
    const schema = `bench_cluster_${process.pid}_${generation}`;
    await this.#sql(`create schema ${schema}`);
    this.#schema = schema;
    const url = new URL(BENCH_DATABASE_URL);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const databaseUrl = url.toString();
    const dataDir = path.join(this.#workDir, `cluster-data-${generation}`);
    mkdirSync(dataDir, { recursive: true });
    this.#dataDir = dataDir;
    this.token = await createTemplate(dataDir, this.#upstreamUrl, databaseUrl);
    const secret = randomBytes(32).toString('hex');
    const start = npmStart({ prestart: true });
    this.replicas = await Promise.all(Array.from({ length: this.#count }, async (_, index) => {
      const [port, peerPort] = [await freePort(), await freePort()];
      const started = spawnLogged(process.execPath, [...start.nodeFlags, start.main, 'serve'], path.join(this.#workDir, `manifold-replica-${index + 1}.log`), {
        cwd: REPOSITORY_ROOT,
        env: {
          ...inheritedEnvironment(),
          ...start.env,
          MANIFOLD_DATA_DIR: dataDir,
          DATABASE_URL: databaseUrl,
          PORT: String(port),
          MANIFOLD_SERVER_HOST: '127.0.0.1',
          MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'true',
          MANIFOLD_ADMIN_PASSWORD: ADMIN_PASSWORD,
          MANIFOLD_LOG_LEVEL: process.env.BENCH_MANIFOLD_LOG_LEVEL ?? 'info',
          ...this.#storageEnv(generation),
          MANIFOLD_STORAGE_SPOOL_PATH: path.join(dataDir, `spool-${index + 1}`),
          MANIFOLD_CLUSTER_HOST: '127.0.0.1',
          MANIFOLD_CLUSTER_PORT: String(peerPort),
          MANIFOLD_CLUSTER_ADVERTISE_URL: `http://127.0.0.1:${peerPort}`,
          MANIFOLD_CLUSTER_SECRET: secret,
        },
      });
      const replica = new Replica(this, index, started, port);
      await waitForHttp(`${replica.url}/healthz`, started, 60_000);
      return replica;
    }));
  }
}
