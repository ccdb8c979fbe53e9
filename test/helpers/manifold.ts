// A Manifold server for end-to-end tests: the real composition root on a temporary data directory
// (SQLite, or PostgreSQL in a schema of its own when TEST_DATABASE_URL is set), listening on 127.0.0.1.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config.ts';
import type { ConfigInput } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { createManifold } from '../../src/server.ts';
import type { Manifold } from '../../src/server.ts';
import type { Actor } from '../../src/auth/policy.ts';
import type { Result } from '../../src/result.ts';
import type { FreshnessInput } from '../../src/services/freshness.ts';
import { testDatabaseUrl } from './db.ts';

export const ADMIN_PASSWORD = 'admin-password-for-tests';

export interface TestManifold {
  manifold: Manifold;
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port>, as image references spell it. */
  host: string;
  dataDir: string;
  /** The PostgreSQL URL with this server's search_path, or undefined on SQLite (for a child process on the same data). */
  databaseUrl: string | undefined;
  /** Every log line the server wrote. */
  logs: string[];
  admin: Actor;
  stop(): Promise<void>;
}

export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return result.value;
}

export async function startManifold(overrides: ConfigInput = {}, options: { dataDir?: string; schema?: string } = {}): Promise<TestManifold> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'manifold-e2e-'));
  let database: ConfigInput['database'] = {};
  let schema = options.schema;
  if (testDatabaseUrl) {
    schema ??= `e2e_${process.pid}_${randomBytes(4).toString('hex')}`;
    const client = new pg.Client({ connectionString: testDatabaseUrl });
    await client.connect();
    await client.query(`create schema if not exists ${schema}`);
    await client.end();
    const url = new URL(testDatabaseUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    database = { url: url.toString() };
  }
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  let manifold: Manifold;
  try {
    const config = loadConfig({}, {
      dataDir,
      adminPassword: ADMIN_PASSWORD,
      server: { host: '127.0.0.1', port: 0 },
      upstream: { allowPrivate: true, connectTimeoutMs: 2_000, headersTimeoutMs: 5_000, bodyTimeoutMs: 10_000, probeTimeoutMs: 2_000 },
      log: { level: 'info' },
      ...overrides,
      database: { ...database, ...overrides.database },
    });
    manifold = await createManifold(config, createLogger(config.log.level, sink));
    await manifold.app.listen({ host: '127.0.0.1', port: 0 });
  } catch (error) {
    // A start that failed (an invalid configuration too) leaves nothing behind either.
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (schema && !options.schema) await dropSchema(schema);
    throw error;
  }
  const port = (manifold.app.server.address() as AddressInfo).port;
  const admin = unwrap(await manifold.services.authenticator.authenticate({ authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }, 'api'));
  return {
    manifold,
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    dataDir,
    databaseUrl: database.url,
    logs,
    admin,
    async stop() {
      await manifold.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (testDatabaseUrl && !options.schema) {
        const client = new pg.Client({ connectionString: testDatabaseUrl });
        await client.connect();
        await client.query(`drop schema if exists ${schema} cascade`);
        await client.end();
      }
    },
  };
}

/** A group with a registry whose upstreams are `upstreamUrls`, in that order. */
export async function createVirtualRegistry(server: TestManifold, options: { group: string; registry: string; upstreamUrls: string[]; cacheValidityHours?: number; freshness?: FreshnessInput; credentials?: { username: string; password: string } }) {
  const services = server.manifold.services;
  const group = unwrap(await services.groups.create(server.admin, { path: options.group }));
  const registry = unwrap(await services.registries.create(server.admin, group.id, { name: options.registry }));
  const upstreams = [];
  for (const [index, url] of options.upstreamUrls.entries()) {
    const link = unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, registry.id, {
      name: `upstream-${index + 1}`,
      url,
      cache_validity_hours: options.cacheValidityHours ?? 24,
      freshness: options.freshness,
      username: options.credentials?.username ?? null,
      password: options.credentials?.password ?? null,
    }));
    upstreams.push(link);
  }
  return { group, registry, upstreams };
}

/** A personal access token of the admin with the given scopes (plaintext). */
export async function personalToken(server: TestManifold, scopes: ('read_virtual_registry' | 'read_api' | 'api')[] = ['read_virtual_registry']): Promise<string> {
  const created = unwrap(await server.manifold.services.tokens.createPersonal(server.admin, { name: `token-${randomBytes(3).toString('hex')}`, scopes }));
  return created.token;
}

/** Drops a PostgreSQL schema made for `startManifold(…, { schema })` (a no-op on SQLite). */
export async function dropSchema(schema: string): Promise<void> {
  if (!testDatabaseUrl) return;
  const client = new pg.Client({ connectionString: testDatabaseUrl });
  await client.connect();
  await client.query(`drop schema if exists ${schema} cascade`);
  await client.end();
}

/** `Authorization: Basic` with an access token (any username), as simple clients send on /v2. */
export function basicToken(token: string, username = 'token'): string {
  return `Basic ${Buffer.from(`${username}:${token}`).toString('base64')}`;
}

/** The live cache entries of the server whose relative path ends with `suffix` (all when omitted). */
export async function liveEntries(server: TestManifold, suffix = '') {
  const rows = await server.manifold.database.db.selectFrom('cache_entries').selectAll().where('status', '=', 0).orderBy('id').execute();
  return rows.filter((row) => row.relative_path.endsWith(suffix));
}

/** One sample of a Prometheus text exposition, 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const wanted = Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`));
    if (wanted) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** A Manifold whose group `acme` has a registry `hub` in front of `upstreamUrls`, and a pull token of the admin. */
export async function startCache(upstreamUrls: string[], overrides: ConfigInput = {}): Promise<{ server: TestManifold; token: string }> {
  const server = await startManifold(overrides);
  await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls });
  return { server, token: await personalToken(server) };
}
