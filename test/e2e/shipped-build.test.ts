// What `npm start` runs is the server build (scripts/build-server.ts: dist/server/main.js, one minified module,
// issue 19), not the sources the other tests load. This runs the build as `npm start` does and pulls through
// it what a bundle could break: the password worker (a file of its own), the S3 SDK (a chunk loaded on first
// use) with pre-signed redirects, the console's files and the API's documentation (files of packages kept in
// node_modules).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Distribution } from '../helpers/distribution.ts';
import { ADMIN_PASSWORD, basicToken, createVirtualRegistry, dropSchema, personalToken, startManifold } from '../helpers/manifold.ts';
import { spawnManifold } from '../helpers/manifold-process.ts';
import type { ManifoldProcess } from '../helpers/manifold-process.ts';
import { REPOSITORY_ROOT, npmStart } from '../helpers/npm-start.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { startS3Server } from '../helpers/s3-server.ts';
import type { TestS3Server } from '../helpers/s3-server.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';

const image = buildImage({ layerSizes: [300_000, 40_000] });

describe('the shipped build (npm start)', () => {
  let upstream: Distribution;
  let s3: TestS3Server;
  const dataDirs: string[] = [];
  const schemas: string[] = [];
  // Every process started, killed at the end even when a test failed half-way.
  const started: ManifoldProcess[] = [];

  before(async () => {
    // As `npm start` does: its prestart rebuilds the build when a source is newer (scripts/build-server.ts).
    const main = path.join(REPOSITORY_ROOT, npmStart({ prestart: true }).main);
    assert.ok(existsSync(main), `${main} is missing after the prestart`);
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: '1' });
    s3 = await startS3Server();
  });
  after(async () => {
    for (const server of started) await server.kill('SIGKILL');
    await upstream?.stop();
    await s3?.stop();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    for (const schema of schemas) await dropSchema(schema);
  });

  /** A data directory (and schema) with the registry acme/hub in front of the upstream; the build started on it. */
  async function startShipped(storage: 'filesystem' | 's3', main?: string): Promise<{ server: ManifoldProcess; token: string; dataDir: string }> {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-shipped-'));
    dataDirs.push(dataDir);
    const schema = `e2e_shipped_${process.pid}_${randomBytes(3).toString('hex')}`;
    schemas.push(schema);
    const setup = await startManifold({}, { dataDir, schema });
    await createVirtualRegistry(setup, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    const token = await personalToken(setup);
    const databaseUrl = setup.databaseUrl;
    await setup.stop();
    const env: Record<string, string> = storage === 's3'
      ? {
        MANIFOLD_STORAGE_DRIVER: 's3',
        MANIFOLD_STORAGE_S3_BUCKET: s3.bucket,
        MANIFOLD_STORAGE_S3_ENDPOINT: s3.endpoint,
        MANIFOLD_STORAGE_S3_FORCE_PATH_STYLE: 'true',
        MANIFOLD_STORAGE_S3_PREFIX: `${schema}/`,
        MANIFOLD_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
        MANIFOLD_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
        MANIFOLD_STORAGE_S3_REDIRECT: 'true',
      }
      : {};
    const server = await spawnManifold({ dataDir, databaseUrl, env, asShipped: true, main });
    started.push(server);
    return { server, token, dataDir };
  }

  async function pullAndCompare(server: ManifoldProcess, token: string): Promise<void> {
    const client = new SkopeoClient(server.host);
    try {
      const login = await client.login('admin', token);
      assert.equal(login.code, 0, login.stderr);
      for (const round of ['miss', 'hit']) {
        const copied = await client.copy('acme/hub/library/app', '1');
        assert.equal(copied.code, 0, `${round}: ${copied.stderr}\n${server.output().slice(-3000)}`);
        assert.equal(copied.layout!.topDigest, image.manifest.digest);
        for (const blob of image.blobs) assert.ok(copied.layout!.blob(blob.digest).equals(blob.bytes), `${round}: ${blob.digest}`);
      }
    } finally {
      client.cleanup();
    }
  }

  it('on the embedded default: signs in with a password, pulls, serves the console and the API documentation', async () => {
    const { server, token, dataDir } = await startShipped('filesystem');
    assert.match(server.output(), /"msg":"warmed up"/, 'the warm-up ran');
    assert.doesNotMatch(server.output(), /warm-up before listening failed/);
    // The warm-up's blob fill (src/warm-up.ts) fails verification on purpose: nothing stored, no temporary file left.
    const objects = path.join(dataDir, 'objects');
    assert.deepEqual(readdirSync(objects, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => entry.name), []);

    const signIn = await fetch(`${server.url}/auth/token?service=manifold&scope=repository:acme/hub/library/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } });
    assert.equal(signIn.status, 200, 'a password checked by the build\'s scrypt worker');
    assert.ok(((await signIn.json()) as { token: string }).token.split('.').length === 3);

    await pullAndCompare(server, token);

    const index = await fetch(`${server.url}/`);
    assert.equal(index.status, 200);
    const html = await index.text();
    const asset = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, `the console's index names its script: ${html.slice(0, 300)}`);
    assert.equal((await fetch(`${server.url}${asset}`)).status, 200);

    const openapi = await fetch(`${server.url}/api/v1/openapi.json`, { headers: { authorization: basicToken(token) } });
    assert.equal(openapi.status, 200);
    assert.match(((await openapi.json()) as { openapi: string }).openapi, /^3\./);
    const docs = await fetch(`${server.url}/api/v1/docs/static/index.html`);
    assert.equal(docs.status, 200, 'Swagger UI\'s own files, read from node_modules');
    assert.match(await docs.text(), /swagger-ui/i);

    await server.kill('SIGTERM');
  });

  it('a password thread that cannot start fails the sign-in at once, and the server goes on serving', async () => {
    // A copy of the build without its worker file, inside the repository so that piscina resolves.
    const copy = mkdtempSync(path.join(REPOSITORY_ROOT, 'dist', 'broken-'));
    dataDirs.push(copy);
    cpSync(path.dirname(path.join(REPOSITORY_ROOT, npmStart().main)), copy, { recursive: true });
    rmSync(path.join(copy, 'password-worker.js'));
    const { server, token } = await startShipped('filesystem', path.join(copy, 'main.js'));
    const authorization = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const signIn = await fetch(`${server.url}/auth/token?service=manifold`, { headers: { authorization }, signal: AbortSignal.timeout(20_000) });
      assert.equal(signIn.status, 500, `attempt ${attempt}: an error, not a wait (before: the first check waited for ever, or the server ended)`);
      assert.equal(((await signIn.json()) as { errors: { code: string }[] }).errors[0].code, 'UNAVAILABLE');
    }
    assert.match(server.output(), /a password hashing thread failed/);
    await pullAndCompare(server, token);
    await server.kill('SIGTERM');
  });

  it('on S3: the SDK loaded on first use stores the pull, and hits redirect to pre-signed URLs', async () => {
    const { server, token } = await startShipped('s3');
    await pullAndCompare(server, token);
    const blob = image.blobs[0];
    const hit = await fetch(`${server.url}/v2/acme/hub/library/app/blobs/${blob.digest}`, { headers: { authorization: basicToken(token) }, redirect: 'manual' });
    assert.equal(hit.status, 307);
    assert.match(hit.headers.get('location') ?? '', new RegExp(`^${s3.endpoint}/${s3.bucket}/.*X-Amz-Signature=`));
    await server.kill('SIGTERM');
  });
});
