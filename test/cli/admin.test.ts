// The operator's `manifold` commands, run as a real process against a fresh data directory (SQLite), or a
// fresh PostgreSQL database when TEST_DATABASE_URL is set: what they print, what they write, how they fail.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase } from '../../src/db/connect.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { insertCacheEntry } from '../helpers/virtual-registries.ts';
import { testDatabaseUrl } from '../helpers/db.ts';

const main = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

let dataDir: string;
let env: Record<string, string>;
let database: DatabaseHandle;
let dropDatabase: () => Promise<void> = async () => {};

/** A database of its own for the CLI (it does not take a schema): a PostgreSQL database, or SQLite in dataDir. */
before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-cli-'));
  env = { MANIFOLD_DATA_DIR: dataDir, MANIFOLD_LOG_LEVEL: 'warn' };
  if (testDatabaseUrl) {
    const name = `cli_${process.pid}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: testDatabaseUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(testDatabaseUrl);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    database = openDatabase({ url: env.DATABASE_URL, poolSize: 2 });
    dropDatabase = async () => {
      const client = new pg.Client({ connectionString: testDatabaseUrl });
      await client.connect();
      await client.query(`drop database ${name} with (force)`);
      await client.end();
    };
  } else {
    database = openDatabase({ sqlitePath: path.join(dataDir, 'manifold.db') });
  }
});
after(async () => {
  await database.close();
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
});

function manifold(args: string[], input = '', extraEnv: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', main, ...args], {
    cwd: dataDir,
    env: { ...process.env, DATABASE_URL: '', MANIFOLD_CONFIG: '', ...env, ...extraEnv },
    input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const count = async (table: 'users' | 'groups' | 'registries' | 'upstreams' | 'registry_upstreams') =>
  Number((await database.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

test('an operator creates a user, a group, a registry with its upstreams and a token, and lists them', async () => {
  const user = manifold(['user', 'create', 'alice', '--admin', '--password-stdin', '--json'], 'a long enough password\n');
  assert.equal(user.code, 0, user.stderr);
  const created = JSON.parse(user.stdout);
  assert.equal(created.username, 'alice');
  assert.equal(created.admin, true);

  const generated = manifold(['user', 'create', 'bob']);
  assert.equal(generated.code, 0, generated.stderr);
  assert.match(generated.stdout, /^created user bob \(id \d+\)\npassword: \S{16,}\n/);

  const group = manifold(['group', 'create', 'acme', '--owner', 'alice']);
  assert.equal(group.code, 0, group.stderr);
  assert.match(group.stdout, /created group acme \(id \d+\), owner alice/);

  const registry = manifold(['registry', 'create', 'acme/hub', '--upstream', 'https://registry-1.docker.io/v2/', '--upstream', 'https://mirror.example.com',
    '--username', 'puller', '--password-stdin', '--cache-validity-hours', '6', '--json'], 'cli-Secret-password\n');
  assert.equal(registry.code, 0, registry.stderr);
  const shown = JSON.parse(registry.stdout);
  assert.equal(shown.name, 'hub');
  assert.deepEqual(shown.upstreams.map((l: { position: number; upstream: { url: string } }) => [l.position, l.upstream.url]), [[1, 'https://registry-1.docker.io'], [2, 'https://mirror.example.com']]);
  assert.ok(shown.upstreams.every((l: { upstream: { has_credentials: boolean; cache_validity_hours: number } }) => l.upstream.has_credentials && l.upstream.cache_validity_hours === 6));
  assert.ok(!registry.stdout.includes('cli-Secret-password'), 'the password is not printed');

  const listed = manifold(['registry', 'list', 'acme']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /acme\/hub \(id \d+\)\n {4}1\. https:\/\/registry-1\.docker\.io \(as puller\)/);
  const upstreams = manifold(['upstream', 'list', 'acme', '--json']);
  assert.deepEqual(JSON.parse(upstreams.stdout).map((u: { name: string }) => u.name), ['registry-1.docker.io', 'mirror.example.com']);
  assert.equal(JSON.parse(manifold(['upstream', 'list', 'acme', '--search', 'mirror', '--json']).stdout).length, 1);

  // The freshness policy of one upstream: rules by pattern (first match wins), the other settings kept.
  const hubId = shown.upstreams[0].upstream_id;
  const policy = manifold(['upstream', 'policy', String(hubId), '--max-age', '900', '--stale-while-revalidate', '60', '--negative-cache', '10',
    '--rule', 'library/*:latest=max_age:300', '--rule', '*:v*.*.*=pin', '--json']);
  assert.equal(policy.code, 0, policy.stderr);
  assert.deepEqual(JSON.parse(policy.stdout), {
    max_age: 900, stale_while_revalidate: 60, stale_if_error: null, pin: false, negative_cache: 10,
    rules: [{ match: 'library/*:latest', max_age: 300 }, { match: '*:v*.*.*', pin: true }],
  });
  const policyShown = manifold(['upstream', 'policy', String(hubId)]);
  assert.match(policyShown.stdout, /max_age 900 s, stale_while_revalidate 60 s, stale_if_error unlimited, not pinned, negative cache 10 s\nrules \(first match wins\):\n {2}1\. library\/\*:latest: max_age 300 s\n {2}2\. \*:v\*\.\*\.\*: pinned/);
  const badRule = manifold(['upstream', 'policy', String(hubId), '--rule', 'Library/*=max_age:1']);
  assert.equal(badRule.code, 1);
  assert.match(badRule.stderr, /freshness\.rules\.0\.match|rules/);

  // A second registry reuses the group's upstream with the same URL and credentials.
  const second = manifold(['registry', 'create', 'acme/other', '--upstream', 'https://mirror.example.com', '--username', 'puller', '--password-stdin', '--json'], 'cli-Secret-password');
  assert.equal(second.code, 0, second.stderr);
  assert.equal(JSON.parse(second.stdout).upstreams[0].upstream_id, shown.upstreams[1].upstream_id);
  assert.equal(await count('upstreams'), 2);

  const token = manifold(['token', 'create', '--user', 'alice', '--name', 'ci', '--scopes', 'api,read_api', '--expires-days', '30']);
  assert.equal(token.code, 0, token.stderr);
  const plaintext = token.stdout.trim();
  assert.match(plaintext, /^mfpat_\S+$/, 'only the token is printed, ready for $(…)');
  const row = await database.db.selectFrom('access_tokens').selectAll().where('token_digest', '=', createHash('sha256').update(plaintext).digest('hex')).executeTakeFirstOrThrow();
  assert.equal(row.kind, 'personal');
  assert.deepEqual(JSON.parse(row.scopes), ['api', 'read_api']);
  assert.ok(row.expires_at! > Date.now() + 29 * 24 * 3600 * 1000);
});

test('cache purge marks the entries of a registry or of one upstream', async () => {
  const registry = await database.db.selectFrom('registries').selectAll().where('name', '=', 'hub').executeTakeFirstOrThrow();
  const links = await database.db.selectFrom('registry_upstreams').selectAll().where('registry_id', '=', registry.id).orderBy('position').execute();
  // The first upstream is hub's alone, the second is shared with acme/other.
  await insertCacheEntry(database.db, registry.group_id, links[0].upstream_id);
  await insertCacheEntry(database.db, registry.group_id, links[0].upstream_id);
  await insertCacheEntry(database.db, registry.group_id, links[1].upstream_id);
  const purged = manifold(['cache', 'purge', 'acme/hub']);
  assert.equal(purged.code, 0, purged.stderr);
  assert.match(purged.stdout, /acme\/hub: 2 cache entries marked for deletion/);
  const upstream = manifold(['cache', 'purge', '--upstream', String(links[1].upstream_id), '--json']);
  assert.deepEqual(JSON.parse(upstream.stdout), { upstream_id: links[1].upstream_id, marked_entries: 1 });
});

test('storage: a group quota set and removed, a registry\'s usage, the group\'s cleanup runs', async () => {
  const quota = manifold(['group', 'quota', 'acme', '2GiB', '--json']);
  assert.equal(quota.code, 0, quota.stderr);
  assert.equal(JSON.parse(quota.stdout).storage_quota_bytes, 2 * 1024 ** 3);
  const group = await database.db.selectFrom('groups').selectAll().where('path', '=', 'acme').executeTakeFirstOrThrow();
  assert.equal(Number(group.storage_quota_bytes), 2 * 1024 ** 3);
  assert.match(manifold(['group', 'quota', 'acme', 'none']).stdout, /group acme: storage quota none/);
  const refused = manifold(['group', 'quota', 'acme', 'lots']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /expected a size such as 50GiB/);

  const registry = await database.db.selectFrom('registries').selectAll().where('name', '=', 'hub').executeTakeFirstOrThrow();
  const links = await database.db.selectFrom('registry_upstreams').selectAll().where('registry_id', '=', registry.id).orderBy('position').execute();
  await insertCacheEntry(database.db, registry.group_id, links[0].upstream_id);
  await insertCacheEntry(database.db, registry.group_id, links[0].upstream_id);
  const usage = manifold(['registry', 'usage', 'acme/hub', '--json']);
  assert.equal(usage.code, 0, usage.stderr);
  const report = JSON.parse(usage.stdout);
  assert.equal(report.entries, 2);
  assert.equal(report.stored_bytes, 6, 'two objects of 3 bytes');
  assert.equal(report.upstreams[0].entries, 2);
  assert.match(manifold(['registry', 'usage', 'acme/hub']).stdout, /^stored: 6 B in 2 entries\n/);

  assert.match(manifold(['cleanup', 'runs', 'acme']).stdout, /group acme: no cleanup runs yet/);
  const now = Date.now();
  await database.db.insertInto('cleanup_runs').values({ group_id: registry.group_id, reason: 'cleanup_policy', started_at: now, finished_at: now, deleted_entries: 3, deleted_bytes: 2048, failure_message: null }).execute();
  assert.match(manifold(['cleanup', 'runs', 'acme']).stdout, /cleanup_policy\s+3 entries\s+2\.0 KiB/);
});

test('failures say what is wrong, exit non-zero and write nothing', async () => {
  const before = { registries: await count('registries'), upstreams: await count('upstreams'), groups: await count('groups'), users: await count('users') };
  const badUrl = manifold(['registry', 'create', 'acme/third', '--upstream', 'https://mirror.example.com', '--upstream', 'ftp://old.example.com']);
  assert.equal(badUrl.code, 1);
  assert.match(badUrl.stderr, /url: must use http or https/);
  const badName = manifold(['registry', 'create', 'acme/Third', '--upstream', 'https://fine.example.com']);
  assert.equal(badName.code, 1);
  assert.match(badName.stderr, /name: must be one lower-case path component/);
  const noGroup = manifold(['registry', 'list', 'nowhere']);
  assert.equal(noGroup.code, 1);
  assert.match(noGroup.stderr, /group not found/);
  const noOwner = manifold(['group', 'create', 'orphans', '--owner', 'nobody']);
  assert.equal(noOwner.code, 1);
  assert.match(noOwner.stderr, /no user named nobody/);
  const taken = manifold(['user', 'create', 'ALICE', '--password-stdin', '--json'], 'another long password');
  assert.equal(taken.code, 1);
  assert.deepEqual(JSON.parse(taken.stdout).errors, { username: ['is already taken'] });
  const badScope = manifold(['token', 'create', '--user', 'alice', '--name', 'x', '--scopes', 'root']);
  assert.equal(badScope.code, 1);
  assert.match(badScope.stderr, /scopes/);
  assert.deepEqual({ registries: await count('registries'), upstreams: await count('upstreams'), groups: await count('groups'), users: await count('users') }, before);

  const usage = manifold(['registry', 'create']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /missing <group>\/<name>/);
  const unknown = manifold(['registry', 'explode']);
  assert.equal(unknown.code, 2);
  const badOption = manifold(['upstream', 'list', 'acme', '--colour']);
  assert.equal(badOption.code, 2);
  assert.match(badOption.stderr, /--colour/);
});

test('a private upstream: the refusal names the setting, which the CLI reads from the environment and from the configuration file', async () => {
  const refused = manifold(['registry', 'create', 'acme/onprem', '--upstream', 'http://127.0.0.1:5999']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /must not point to an internal host: 127\.0\.0\.1 is a private, loopback or link-local address/);
  assert.match(refused.stderr, /upstream\.allowPrivate \(MANIFOLD_UPSTREAM_ALLOW_PRIVATE=true\)/);

  const fromEnv = manifold(['registry', 'create', 'acme/onprem', '--upstream', 'http://127.0.0.1:5999'], '', { MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'true' });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.match(fromEnv.stdout, /acme\/onprem \(id \d+\)/);

  const file = path.join(dataDir, 'manifold.yaml');
  writeFileSync(file, 'upstream:\n  allowPrivate: true\n');
  const fromFile = manifold(['registry', 'create', 'acme/onprem2', '--upstream', 'http://10.0.0.7:5000'], '', { MANIFOLD_CONFIG: file });
  assert.equal(fromFile.code, 0, fromFile.stderr);
});

test('mirror routes from the CLI: route, re-route, list, remove; registry update sets anonymous pulls and hostnames', async () => {
  const routed = manifold(['mirror', 'route', 'registry-1.docker.io', 'acme/hub', '--default', '--json']);
  assert.equal(routed.code, 0, routed.stderr);
  const route = JSON.parse(routed.stdout);
  assert.deepEqual([route.host, route.registry_path, route.default], ['docker.io', 'acme/hub', true]);
  // Routing a host again points its route at the other registry; it stays the default.
  const again = manifold(['mirror', 'route', 'docker.io', 'acme/other']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, 'mirror route docker.io → acme/other  [default]\n');
  assert.equal(manifold(['mirror', 'route', 'ghcr.io', 'acme/hub']).code, 0);
  assert.equal(manifold(['mirror', 'list']).stdout, 'docker.io → acme/other  [default]\nghcr.io → acme/hub\n');
  const removed = manifold(['mirror', 'remove', 'ghcr.io']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(JSON.parse(manifold(['mirror', 'list', '--json']).stdout).map((r: { host: string }) => r.host), ['docker.io']);
  const missing = manifold(['mirror', 'remove', 'quay.io']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /mirror route not found/);
  const noRegistry = manifold(['mirror', 'route', 'quay.io', 'acme/nope']);
  assert.equal(noRegistry.code, 1);
  assert.match(noRegistry.stderr, /no registry acme\/nope/);
  const actions = (await database.db.selectFrom('audit_events').select('action').where('target_type', '=', 'mirror_route').orderBy('id').execute()).map((e) => e.action);
  assert.deepEqual(actions, ['mirror_route.create', 'mirror_route.update', 'mirror_route.create', 'mirror_route.destroy']);

  const updated = manifold(['registry', 'update', 'acme/hub', '--anonymous-pull', 'true', '--anonymous-network', '10.0.0.0/8', '--hostname', 'Hub.Cache.Example.com', '--json']);
  assert.equal(updated.code, 0, updated.stderr);
  const shown = JSON.parse(updated.stdout);
  assert.deepEqual([shown.anonymous_pull, shown.anonymous_networks, shown.hostnames], [true, ['10.0.0.0/8'], ['hub.cache.example.com']]);
  const cleared = manifold(['registry', 'update', 'acme/hub', '--anonymous-pull', 'false', '--no-hostnames']);
  assert.equal(cleared.code, 0, cleared.stderr);
  assert.match(cleared.stdout, /anonymous pulls: refused\n {2}hostnames: \(none\)/);
  const bad = manifold(['registry', 'update', 'acme/hub', '--anonymous-network', '10.0.0.0/33']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /anonymous_networks\.0: must be a CIDR range/);
});
