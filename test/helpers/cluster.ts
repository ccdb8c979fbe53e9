// Several Manifold replicas as child processes on one PostgreSQL schema and one S3 bucket (s3rver), as
// README "Running several replicas" describes: each with its own spool and peer listener, all sharing
// the signing key, the encryption key and the cluster secret. The cluster needs PostgreSQL whatever
// database the rest of the suite runs on: TEST_DATABASE_URL, else the `test` database on
// 127.0.0.1:5432 (which CI provides). One that cannot be reached fails the test; it is never skipped.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createVirtualRegistry, personalToken, startManifold } from './manifold.ts';
import { freePort } from './free-port.ts';
import { spawnManifold } from './manifold-process.ts';
import type { ManifoldProcess } from './manifold-process.ts';
import { startS3Server } from './s3-server.ts';
import type { TestS3Server } from './s3-server.ts';
import { Distribution } from './distribution.ts';
import { GatedProxy } from './gated-proxy.ts';
import { pushImage } from './oci-image.ts';
import type { TestImage } from './oci-image.ts';

export const clusterDatabaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface Replica extends ManifoldProcess {
  /** Its cluster.advertiseUrl (the peer listener). */
  peerUrl: string;
}

export interface TestCluster {
  replicas: Replica[];
  /** The replicas' key prefix in the bucket. */
  prefix: string;
  /** A personal token of the admin (any replica accepts it). */
  token: string;
  /** Runs SQL in the cluster's schema. */
  query<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  /** One sample of a replica's /metrics (0 when absent). */
  metric(replica: ManifoldProcess, name: string, labels?: Record<string, string>): Promise<number>;
  /** Starts another replica on the same database, bucket and keys (e.g. to replace a killed one). */
  addReplica(): Promise<Replica>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  replicas: number;
  upstreamUrl: string;
  s3: TestS3Server;
  /** Extra environment of every replica (e.g. shorter lease timings). */
  env?: Record<string, string>;
}

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: clusterDatabaseUrl });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`the cluster tests need PostgreSQL (TEST_DATABASE_URL, or the database \`test\` on 127.0.0.1:5432): ${(error as Error).message}`, { cause: error });
  }
  return client;
}

/** Prepares the schema (migrations, admin, a registry `acme/hub` on the upstream) and starts the replicas. */
export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const schema = `cluster_${process.pid}_${randomBytes(3).toString('hex')}`;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-cluster-'));
  const admin = await connect();
  await admin.query(`create schema ${schema}`);
  const url = new URL(clusterDatabaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const databaseUrl = url.toString();
  const prefix = `${schema}/`;
  const replicas: Replica[] = [];
  const secret = randomBytes(32).toString('hex');

  const storageEnv = {
    MANIFOLD_STORAGE_DRIVER: 's3',
    MANIFOLD_STORAGE_S3_BUCKET: options.s3.bucket,
    MANIFOLD_STORAGE_S3_ENDPOINT: options.s3.endpoint,
    MANIFOLD_STORAGE_S3_REGION: 'us-east-1',
    MANIFOLD_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    MANIFOLD_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
    MANIFOLD_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
    MANIFOLD_STORAGE_S3_PREFIX: prefix,
  };

  const stop = async () => {
    await Promise.all(replicas.map((replica) => replica.kill('SIGKILL')));
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {});
    await admin.end().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  };

  let started = 0;
  const addReplica = async (): Promise<Replica> => {
    const index = started++;
    let peerUrl = '';
    const replica = await spawnManifold({
      // Shared by every replica: the signing and encryption keys are the setup's files in it.
      dataDir,
      databaseUrl,
      env: async () => {
        const peerPort = await freePort();
        peerUrl = `http://127.0.0.1:${peerPort}`;
        return {
          ...storageEnv,
          MANIFOLD_STORAGE_SPOOL_PATH: path.join(dataDir, `spool-${index}-${randomBytes(2).toString('hex')}`),
          MANIFOLD_CLUSTER_HOST: '127.0.0.1',
          MANIFOLD_CLUSTER_PORT: String(peerPort),
          MANIFOLD_CLUSTER_ADVERTISE_URL: peerUrl,
          MANIFOLD_CLUSTER_SECRET: secret,
          ...options.env,
        };
      },
    });
    const added = Object.assign(replica, { peerUrl });
    replicas.push(added);
    return added;
  };

  try {
    const setup = await startManifold({ storage: { driver: 's3', s3: { bucket: options.s3.bucket, endpoint: options.s3.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', prefix } }, database: { url: databaseUrl } }, { dataDir, schema });
    await createVirtualRegistry(setup, { group: 'acme', registry: 'hub', upstreamUrls: [options.upstreamUrl] });
    const token = await personalToken(setup);
    await setup.stop();
    await Promise.all(Array.from({ length: options.replicas }, () => addReplica()));
    return {
      replicas,
      prefix,
      token,
      async query<T extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
        await admin.query(`set search_path to ${schema}`);
        return (await admin.query<T>(text, values)).rows;
      },
      async metric(replica, name, labels = {}) {
        const text = await (await fetch(`${replica.url}/metrics`)).text();
        const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
        let total = 0;
        for (const line of text.split('\n')) {
          const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
          if (match && match[1] === name && wanted.every((label) => (match[2] ?? '').includes(label))) total += Number(match[3]);
        }
        return total;
      },
      addReplica,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface ClusterOnDistribution {
  /** Debian's Distribution holding the image as `library/app:1.0`. */
  upstream: Distribution;
  /** The replicas' upstream: a proxy in front of it that can hold a blob's body halfway. */
  proxy: GatedProxy;
  s3: TestS3Server;
  cluster: TestCluster;
  stop(): Promise<void>;
}

/** A real upstream with `image`, the gating proxy in front of it, an s3rver bucket and `replicas` replicas on them. */
export async function startClusterOnDistribution(image: TestImage, replicas: number): Promise<ClusterOnDistribution> {
  const parts: Partial<ClusterOnDistribution> = {};
  const stop = async () => {
    await parts.cluster?.stop();
    await parts.proxy?.close();
    await parts.upstream?.stop();
    await parts.s3?.stop();
  };
  try {
    parts.upstream = await Distribution.start();
    await pushImage(parts.upstream.url, 'library/app', image, { tag: '1.0' });
    parts.proxy = await GatedProxy.start(parts.upstream.url);
    parts.s3 = await startS3Server();
    parts.cluster = await startCluster({ replicas, upstreamUrl: parts.proxy.url, s3: parts.s3 });
  } catch (error) {
    await stop();
    throw error;
  }
  return { ...(parts as Omit<ClusterOnDistribution, 'stop'>), stop };
}
