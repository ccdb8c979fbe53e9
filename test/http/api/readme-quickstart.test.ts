// The README's quick starts of the management API (curl) and of the CLI, run as written against a real
// `manifold serve` on a fresh data directory (and a fresh PostgreSQL database with TEST_DATABASE_URL).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { testDatabaseUrl } from '../../helpers/db.ts';

const root = path.resolve(import.meta.dirname, '../../..');
const ADMIN_PASSWORD = 'quickstart admin password';

/** The shell block between `<!-- quickstart:<name> -->` and `<!-- /quickstart:<name> -->`. */
function quickstart(name: string): string {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = new RegExp(`<!-- quickstart:${name} -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\s*<!-- /quickstart:${name} -->`).exec(readme);
  assert.ok(section, `README.md has the ${name} quick start`);
  return section[1];
}

let dataDir: string;
let env: Record<string, string>;
let server: ChildProcess;
let baseUrl: string;
let dropDatabase: () => Promise<void> = async () => {};

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-quickstart-'));
  env = {
    ...process.env as Record<string, string>,
    PATH: `${path.join(root, 'node_modules/.bin')}:${process.env.PATH}`,
    MANIFOLD_CONFIG: '',
    DATABASE_URL: '',
    MANIFOLD_DATA_DIR: dataDir,
    MANIFOLD_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MANIFOLD_LOG_LEVEL: 'warn',
  };
  if (testDatabaseUrl) {
    const name = `quickstart_${process.pid}_${randomBytes(4).toString('hex')}`;
    const client = new pg.Client({ connectionString: testDatabaseUrl });
    await client.connect();
    await client.query(`create database ${name}`);
    await client.end();
    const url = new URL(testDatabaseUrl);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    dropDatabase = async () => {
      const admin = new pg.Client({ connectionString: testDatabaseUrl });
      await admin.connect();
      await admin.query(`drop database ${name} with (force)`);
      await admin.end();
    };
  }
  server = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', path.join(root, 'src/cli/main.ts'), 'serve'], {
    cwd: root,
    env: { ...env, PORT: '0', MANIFOLD_SERVER_HOST: '127.0.0.1', MANIFOLD_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  server.stderr!.on('data', (chunk) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const match = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (match) resolve(Number(match[1]));
    });
    server.once('exit', (code) => reject(new Error(`manifold serve exited with ${code}: ${stderr}`)));
  });
  baseUrl = `http://127.0.0.1:${port}`;
});
after(async () => {
  if (server.exitCode === null) {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
});

function bash(script: string, extraEnv: Record<string, string> = {}) {
  const result = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: root, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * A GET on a connection of its own: the quick starts run for a minute or more between requests, longer
 * than the server keeps an idle connection, and a reused one may be closed just as it is used.
 */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; json: () => unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: () => JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const adminAuth = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };

// The three quick starts run one after the other on one server, as a newcomer follows the README.
test('the first-pull quick start works as written', async () => {
  const run = bash(`${quickstart('first')}\necho "token=$TOKEN"`);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /^token=mfpat_\S+$/m);
  const registries = (await get(`${baseUrl}/api/v1/groups/acme/registries`, adminAuth)).json() as { name: string }[];
  assert.deepEqual(registries.map((r) => r.name), ['hub']);
});

test('the API quick start works with curl as written, beside the first one', async () => {
  const run = bash(quickstart('api'), { MANIFOLD: baseUrl, ADMIN_PASSWORD });
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /"position": 1,\s+"url": "https:\/\/registry-1\.docker\.io"/);
  assert.match(run.stdout, /^admin registry_upstream\.create$/m);
  assert.match(run.stdout, /^admin registry\.create$/m);
  const registries = (await get(`${baseUrl}/api/v1/groups/platform/registries`, adminAuth)).json() as { name: string }[];
  assert.deepEqual(registries.map((r) => r.name), ['dockerhub']);
});

test('a failing step of the API quick start stops it and shows Manifold\'s problem+json answer', () => {
  // Run again, the group exists: curl must fail and print why (curl -f would print only the status).
  const run = bash(quickstart('api'), { MANIFOLD: baseUrl, ADMIN_PASSWORD });
  assert.notEqual(run.code, 0);
  assert.match(run.stdout, /"status":409/);
  assert.match(run.stdout, /already/i);
});

test('the CLI quick start works as written, beside the running server', async () => {
  const run = bash(`${quickstart('cli')}\necho "token=$TOKEN"`);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /created group team \(id \d+\), owner alice/);
  assert.match(run.stdout, /team\/hub \(id \d+\)\n {4}1\. https:\/\/registry-1\.docker\.io/);
  assert.match(run.stdout, /team\/hub: 0 cache entries marked for deletion/);
  const token = /^token=(mfpat_\S+)$/m.exec(run.stdout)?.[1];
  assert.ok(token, 'the token was captured by $(…)');

  // The server sees what the CLI wrote.
  const shown = (await get(`${baseUrl}/api/v1/groups/team/registries`, adminAuth)).json() as { name: string }[];
  assert.deepEqual(shown.map((r) => r.name), ['hub']);
  const alice = await get(`${baseUrl}/api/v1/user`, { authorization: `Basic ${Buffer.from('alice:a password for alice, long enough').toString('base64')}` });
  assert.equal(alice.status, 200);
  // A pull-only token is a valid credential without API access.
  assert.equal((await get(`${baseUrl}/api/v1/user`, { 'private-token': token })).status, 403);
});
