// Several `manifold serve` processes on one PostgreSQL schema, each with its own data directory, sharing
// only what replicas must share: the database, the registry token signing key and the credentials
// encryption key (given in configuration, as the README's "Running several replicas" says).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADMIN_PASSWORD } from './manifold.ts';
import { spawnManifold } from './manifold-process.ts';
import type { ManifoldProcess } from './manifold-process.ts';

export const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;

export interface Replicas {
  replicas: ManifoldProcess[];
  /** Stops every replica (SIGTERM) and removes the data directories and keys. */
  stop(): Promise<void>;
}

/** Starts `count` replicas on `databaseUrl` one after another (the first creates the admin user). */
export async function startReplicas(count: number, databaseUrl: string, env: Record<string, string> = {}): Promise<Replicas> {
  const secrets = mkdtempSync(path.join(tmpdir(), 'manifold-replica-keys-'));
  const signingKeyPath = path.join(secrets, 'signing-key.pem');
  writeFileSync(signingKeyPath, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const shared = {
    MANIFOLD_AUTH_SIGNING_KEY_PATH: signingKeyPath,
    MANIFOLD_SECRETS_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    ...env,
  };
  const dataDirs: string[] = [];
  const replicas: ManifoldProcess[] = [];
  const stop = async () => {
    await Promise.all(replicas.map((replica) => replica.kill('SIGTERM')));
    for (const dir of [...dataDirs, secrets]) rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const dataDir = mkdtempSync(path.join(tmpdir(), `manifold-replica-${i}-`));
      dataDirs.push(dataDir);
      replicas.push(await spawnManifold({ dataDir, databaseUrl, env: shared }));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { replicas, stop };
}

/** A JSON request to a replica's management API; throws with the answer unless it is `expected`. */
export async function api<T = Record<string, unknown>>(replica: ManifoldProcess, method: string, route: string, body?: unknown, options: { authorization?: string; expected?: number } = {}): Promise<T> {
  const response = await fetch(`${replica.url}/api/v1${route}`, {
    method,
    headers: { authorization: options.authorization ?? ADMIN, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const expected = options.expected ?? (method === 'POST' ? 201 : method === 'DELETE' ? 204 : 200);
  if (response.status !== expected) throw new Error(`${method} ${route} on ${replica.url}: ${response.status} ${text}`);
  return (text === '' ? {} : JSON.parse(text)) as T;
}
