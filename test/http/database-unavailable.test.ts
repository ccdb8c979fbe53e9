// The HTTP answers of an unreachable PostgreSQL (connection refused: nothing listens on its port), on
// the real composition root: /auth/token, /v2 and /api/v1 answer 503 with Retry-After in their own
// error formats, never a 500 and never a text naming the database's host or port. (The running
// process and the in-memory fallbacks are shown in test/e2e/database-outage.test.ts.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/connect.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createHttp, createServices, databaseOptions } from '../../src/server.ts';
import type { Services } from '../../src/server.ts';
import { freePort } from '../helpers/free-port.ts';

const BASIC = `Basic ${Buffer.from('admin:some-password-here').toString('base64')}`;

describe('PostgreSQL unreachable (connection refused)', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-unreachable-'));
  let port: number;
  let database: DatabaseHandle;
  let services: Services;
  let app: FastifyInstance;

  before(async () => {
    port = await freePort();
    const config = loadConfig({}, { dataDir, database: { url: `postgres://postgres@127.0.0.1:${port}/manifold`, connectTimeoutMs: 1_000 }, log: { level: 'silent' } });
    const logger = createLogger('silent');
    database = openDatabase(databaseOptions(config, logger));
    const metrics = createMetrics({ defaultMetrics: false });
    services = await createServices(config, database, logger, metrics);
    app = createHttp(config, database, services, logger, metrics);
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await services?.client.close();
    await database?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function assertNoAddress(body: string): void {
    assert.doesNotMatch(body, new RegExp(`127\\.0\\.0\\.1|${port}|ECONNREFUSED`), 'the answer names no database address');
  }

  it('GET /auth/token: 503 UNAVAILABLE with Retry-After (today a 500 naming 127.0.0.1:<port>)', async () => {
    for (const request of [
      { method: 'GET' as const, url: '/auth/token?service=manifold&scope=repository:acme/hub/library/app:pull', headers: { authorization: BASIC } },
      { method: 'POST' as const, url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=password&username=admin&password=some-password-here' },
    ]) {
      const response = await app.inject(request);
      assert.equal(response.statusCode, 503, response.body);
      assert.ok(Number(response.headers['retry-after']) > 0);
      assert.equal((response.json() as { errors: { code: string }[] }).errors[0].code, 'UNAVAILABLE');
      assertNoAddress(response.body);
    }
  });

  it('/v2: 503 UNAVAILABLE with Retry-After', async () => {
    for (const url of ['/v2/', '/v2/acme/hub/library/app/manifests/1', `/v2/acme/hub/library/app/blobs/sha256:${'a'.repeat(64)}`]) {
      const response = await app.inject({ method: 'GET', url, headers: { authorization: BASIC } });
      assert.equal(response.statusCode, 503, `${url}: ${response.body}`);
      assert.ok(Number(response.headers['retry-after']) > 0);
      assert.equal(response.headers['docker-distribution-api-version'], 'registry/2.0');
      assert.equal((response.json() as { errors: { code: string }[] }).errors[0].code, 'UNAVAILABLE');
      assertNoAddress(response.body);
    }
  });

  it('/api/v1 (groups, registries): 503 problem+json with Retry-After (today a 500 on /groups)', async () => {
    for (const url of ['/api/v1/groups', '/api/v1/groups/acme/registries', '/api/v1/registries/1', '/api/v1/user']) {
      const response = await app.inject({ method: 'GET', url, headers: { authorization: BASIC } });
      assert.equal(response.statusCode, 503, `${url}: ${response.body}`);
      assert.ok(Number(response.headers['retry-after']) > 0);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      assert.equal((response.json() as { status: number }).status, 503);
      assertNoAddress(response.body);
    }
  });

  it('/readyz: 503 within a second', async () => {
    const started = performance.now();
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(response.statusCode, 503);
    assert.equal((response.json() as { database: boolean }).database, false);
    // A generous bound (the probe gives up after 0.9 s): stated here, not a benchmark.
    assert.ok(performance.now() - started < 1_500);
  });
});
