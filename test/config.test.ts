import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, envName, loadConfig, settingsReference } from '../src/config.ts';

test('defaults give the embedded setup: SQLite in ./data, port 5000, private upstreams refused', () => {
  const config = loadConfig({});
  assert.equal(config.server.port, 5000);
  assert.equal(config.dataDir, './data');
  assert.equal(config.database.url, undefined);
  assert.equal(config.storage.driver, 'filesystem');
  assert.equal(config.upstream.allowPrivate, false);
  assert.equal(config.limits.registriesPerGroup, 5);
});

test('the environment overrides the YAML file, which overrides the defaults', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'manifold-config-'));
  const file = path.join(dir, 'manifold.yaml');
  writeFileSync(file, 'server:\n  port: 6000\n  host: 127.0.0.1\nupstream:\n  allowPrivate: true\n');
  const fromFile = loadConfig({ MANIFOLD_CONFIG: file });
  assert.equal(fromFile.server.port, 6000);
  assert.equal(fromFile.server.host, '127.0.0.1');
  assert.equal(fromFile.upstream.allowPrivate, true);

  const fromEnv = loadConfig({ MANIFOLD_CONFIG: file, MANIFOLD_SERVER_PORT: '7000', MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'false' });
  assert.equal(fromEnv.server.port, 7000);
  assert.equal(fromEnv.server.host, '127.0.0.1');
  assert.equal(fromEnv.upstream.allowPrivate, false);
});

test('PORT and DATABASE_URL are honoured', () => {
  const config = loadConfig({ PORT: '8080', DATABASE_URL: 'postgres://u@db:5432/manifold' });
  assert.equal(config.server.port, 8080);
  assert.equal(config.database.url, 'postgres://u@db:5432/manifold');
});

test('invalid configuration names the setting, its variable and what is wrong', () => {
  assert.throws(() => loadConfig({ MANIFOLD_SERVER_PORT: '70000' }), (error: Error) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /server\.port \(MANIFOLD_SERVER_PORT\): .*65535/);
    return true;
  });
  assert.throws(() => loadConfig({ MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'maybe' }), /upstream\.allowPrivate .*boolean/);
  assert.throws(() => loadConfig({ DATABASE_URL: 'mysql://x' }), /database\.url .*postgres/);
  assert.throws(() => loadConfig({ MANIFOLD_SECRETS_ENCRYPTION_KEY: 'c2hvcnQ=' }), /secrets\.encryptionKey .*32 bytes/);
});

test('an unreadable or malformed YAML file stops the start with the file named', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'manifold-config-'));
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, 'server: [1, 2\n');
  assert.throws(() => loadConfig({ MANIFOLD_CONFIG: file }), new RegExp(`cannot read ${file}`));
  assert.throws(() => loadConfig({ MANIFOLD_CONFIG: path.join(dir, 'missing.yaml') }), /cannot read/);
});

test('every setting has an environment variable', () => {
  const reference = settingsReference();
  assert.ok(reference.length > 20);
  assert.equal(envName(['upstream', 'probeConcurrency']), 'MANIFOLD_UPSTREAM_PROBE_CONCURRENCY');
  assert.ok(reference.some((s) => s.env === 'MANIFOLD_ADMIN_PASSWORD'));
});

test('cluster mode: advertiseUrl needs the shared secret and PostgreSQL; lease timings are checked', () => {
  const secret = 'a'.repeat(32);
  const postgres = { MANIFOLD_DATABASE_URL: 'postgres://db/manifold' };
  const cluster = loadConfig({ ...postgres, MANIFOLD_CLUSTER_ADVERTISE_URL: 'http://manifold-1:5001', MANIFOLD_CLUSTER_SECRET: secret, MANIFOLD_CLUSTER_PORT: '5001' }).cluster;
  assert.deepEqual(cluster, { advertiseUrl: 'http://manifold-1:5001', secret, host: '0.0.0.0', port: 5001, heartbeatMs: 1000, leaseExpiryMs: 5000 });
  assert.throws(() => loadConfig({ ...postgres, MANIFOLD_CLUSTER_ADVERTISE_URL: 'http://manifold-1:5001' }), /cluster\.secret \(MANIFOLD_CLUSTER_SECRET\): required when cluster\.advertiseUrl is set/);
  assert.throws(() => loadConfig({ ...postgres, MANIFOLD_CLUSTER_ADVERTISE_URL: 'http://manifold-1:5001', MANIFOLD_CLUSTER_SECRET: 'short' }), /cluster\.secret .*at least 32 characters/);
  assert.throws(() => loadConfig({ MANIFOLD_CLUSTER_ADVERTISE_URL: 'http://manifold-1:5001', MANIFOLD_CLUSTER_SECRET: secret }), /cluster\.advertiseUrl .*need PostgreSQL/);
  assert.throws(() => loadConfig({ MANIFOLD_CLUSTER_HEARTBEAT_MS: '3000' }), /cluster\.leaseExpiryMs .*at least twice cluster\.heartbeatMs/);
  assert.equal(loadConfig({}).cluster.advertiseUrl, undefined, 'one replica unless configured');
});
