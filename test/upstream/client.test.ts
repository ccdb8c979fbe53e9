// The upstream client against in-process fake registries on 127.0.0.1, each on its own port.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { UpstreamClient } from '../../src/upstream/client.ts';
import type { UpstreamClientOptions, UpstreamResult, UpstreamTarget } from '../../src/upstream/client.ts';
import { MANIFEST_ACCEPT, SCHEMA1_TYPES } from '../../src/oci/media-types.ts';
import { FakeRegistry, FakeTokenServer, resolveToLoopback, startFakeDockerHub } from '../../test/helpers/fake-registry.ts';
import type { FakeDockerHub } from '../../test/helpers/fake-registry.ts';
import { buildImage, buildIndex, content } from '../../test/helpers/oci-image.ts';

const clients: UpstreamClient[] = [];

function newClient(options: Partial<UpstreamClientOptions> = {}): UpstreamClient {
  const client = new UpstreamClient({
    allowPrivate: true,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 2_000,
    bodyTimeoutMs: 2_000,
    probeTimeoutMs: 1_000,
    probeConcurrency: 3,
    maxManifestBytes: 4 * 1024 * 1024,
    ...options,
  });
  clients.push(client);
  return client;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

let nextId = 1;
function target(url: string, extra: Partial<UpstreamTarget> = {}): UpstreamTarget {
  return { id: nextId++, url, username: null, password: null, tokenUrl: null, ...extra };
}

function value<T>(result: UpstreamResult<T>): T {
  assert.equal(result.kind, 'found', `expected found, got ${JSON.stringify(result)}`);
  return (result as { value: T }).value;
}

async function drain(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const digestOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('Docker Hub-like upstream (Bearer, token server and CDN on other ports)', () => {
  let hub: FakeDockerHub;
  const image = buildImage({ layerSizes: [2048, 200_000] });

  before(async () => {
    hub = await startFakeDockerHub({ tokenServer: { expiresInSeconds: 300, users: { alice: 'wonderland' } }, rateLimit: { limit: 100, remaining: 100 } });
    hub.registry.addImage('library/alpine', image, ['3.20']);
  });
  after(() => hub.close());

  it('fetches the token once for 100 manifest requests within its lifetime and again after it expires', async () => {
    let now = Date.now();
    const client = newClient({ now: () => now });
    const upstream = target(hub.registry.url);
    const tokensBefore = hub.tokenServer.tokenRequests.length;
    for (let i = 0; i < 100; i++) {
      const manifest = value(await client.getManifest(upstream, 'library/alpine', '3.20'));
      assert.equal(manifest.computedDigest, image.manifest.digest);
    }
    assert.equal(hub.tokenServer.tokenRequests.length - tokensBefore, 1);
    const tokenRequest = hub.tokenServer.tokenRequests.at(-1)!;
    assert.equal(tokenRequest.query.get('service'), 'registry.docker.io');
    assert.equal(tokenRequest.query.get('scope'), 'repository:library/alpine:pull');

    now += 301_000;
    value(await client.getManifest(upstream, 'library/alpine', '3.20'));
    assert.equal(hub.tokenServer.tokenRequests.length - tokensBefore, 2);
  });

  it('shares one token among concurrent first requests', async () => {
    const client = newClient();
    const upstream = target(hub.registry.url);
    const tokensBefore = hub.tokenServer.tokenRequests.length;
    const results = await Promise.all(Array.from({ length: 20 }, () => client.headManifest(upstream, 'library/alpine', '3.20')));
    assert.ok(results.every((r) => r.kind === 'found'));
    assert.equal(hub.tokenServer.tokenRequests.length - tokensBefore, 1);
  });

  it('reuses pooled keep-alive connections for sequential HEADs and GETs', async () => {
    const client = newClient();
    const upstream = target(hub.registry.url);
    const before = hub.registry.connectionsAccepted;
    for (let i = 0; i < 20; i++) {
      value(await client.headManifest(upstream, 'library/alpine', '3.20'));
      value(await client.getManifest(upstream, 'library/alpine', '3.20'));
    }
    // The pool may open a second connection while the first is being handed back; never one per request.
    assert.ok(hub.registry.connectionsAccepted - before <= 2, `${hub.registry.connectionsAccepted - before} connections for 40 requests`);
  });

  it('follows the blob redirect to the CDN without Authorization, and never remembers the target', async () => {
    const client = newClient();
    const upstream = target(hub.registry.url, { username: 'alice', password: 'wonderland' });
    const layer = image.layers[1];
    const blobPath = `/v2/library/alpine/blobs/${layer.digest}`;
    const registryBefore = hub.registry.received('GET', blobPath).length;
    const cdnBefore = hub.cdn.requests.length;

    for (let i = 0; i < 2; i++) {
      const blob = value(await client.getBlob(upstream, 'library/alpine', layer.digest));
      assert.equal(blob.status, 200);
      assert.equal(blob.size, layer.size);
      const bytes = await drain(blob.body);
      assert.equal(digestOf(bytes), layer.digest);
    }
    // Each GET asked the registry again (with its token) and went to a fresh CDN URL.
    const registryGets = hub.registry.received('GET', blobPath).slice(registryBefore);
    assert.equal(registryGets.filter((r) => r.headers.authorization?.startsWith('Bearer ')).length, 2);
    const cdnGets = hub.cdn.requests.slice(cdnBefore);
    assert.equal(cdnGets.length, 2);
    assert.notEqual(cdnGets[0].query.get('signature'), cdnGets[1].query.get('signature'));
    assert.ok(hub.cdn.requests.every((r) => r.headers.authorization === undefined), 'the CDN must never see Authorization');
    // The token server is on the upstream's own host name (another port): it gets the credentials.
    const tokenAuth = hub.tokenServer.tokenRequests.at(-1)!.headers.authorization;
    assert.equal(tokenAuth, `Basic ${Buffer.from('alice:wonderland').toString('base64')}`);
  });

  it('serves a byte range through the redirect', async () => {
    const client = newClient();
    const layer = image.layers[1];
    const blob = value(await client.getBlob(target(hub.registry.url), 'library/alpine', layer.digest, { range: { start: 100, end: 1099 } }));
    assert.equal(blob.status, 206);
    assert.equal(blob.contentRange, `bytes 100-1099/${layer.size}`);
    assert.equal(blob.size, 1000);
    assert.deepEqual(await drain(blob.body), layer.bytes.subarray(100, 1100));
  });

  it('reads ratelimit-limit and ratelimit-remaining per upstream', async () => {
    const client = newClient();
    const upstream = target(hub.registry.url);
    value(await client.getManifest(upstream, 'library/alpine', '3.20'));
    const reading = client.rateLimits().get(upstream.id);
    assert.equal(reading?.limit, 100);
    assert.ok(reading?.remaining !== null && reading!.remaining < 100);
  });

  it('answers HEAD of a manifest and a blob with digest, media type and size', async () => {
    const client = newClient();
    const upstream = target(hub.registry.url);
    const head = value(await client.headManifest(upstream, 'library/alpine', '3.20'));
    assert.deepEqual(head, { digest: image.manifest.digest, mediaType: image.manifest.mediaType, size: image.manifest.size, etag: `"${image.manifest.digest}"` });
    const blob = value(await client.headBlob(upstream, 'library/alpine', image.layers[0].digest));
    assert.equal(blob.size, image.layers[0].size);
    assert.equal((await client.headManifest(upstream, 'library/alpine', 'nope')).kind, 'not_found');
    assert.equal((await client.headBlob(upstream, 'library/alpine', `sha256:${'0'.repeat(64)}`)).kind, 'not_found');
  });
});

describe('Docker Hub by its real names (resolved to 127.0.0.1)', () => {
  it('adds library/ to one-component names and trusts auth.docker.io with the credentials', async () => {
    const hub = await startFakeDockerHub({
      tokenServer: { users: { bob: 'secret' } },
      hostnames: { tokenServer: 'auth.docker.io', cdn: 'production.cloudflare.docker.com' },
    });
    try {
      const image = buildImage({ layerSizes: [512] });
      hub.registry.addImage('library/alpine', image, ['latest']);
      const client = newClient({ lookup: resolveToLoopback(['registry-1.docker.io', 'auth.docker.io', 'production.cloudflare.docker.com']) });
      const upstream = target(`http://registry-1.docker.io:${hub.registry.port}`, { username: 'bob', password: 'secret' });

      const manifest = value(await client.getManifest(upstream, 'alpine', 'latest'));
      assert.equal(manifest.computedDigest, image.manifest.digest);
      assert.equal(hub.registry.received('GET', '/v2/library/alpine/manifests/latest').length, 2);
      assert.equal(hub.registry.received('GET', '/v2/alpine/manifests/latest').length, 0);
      assert.equal(hub.tokenServer.tokenRequests[0].headers.authorization, `Basic ${Buffer.from('bob:secret').toString('base64')}`);

      const blob = value(await client.getBlob(upstream, 'alpine', image.layers[0].digest));
      assert.deepEqual(await drain(blob.body), image.layers[0].bytes);
      assert.equal(hub.cdn.requests.length, 1);
      assert.equal(hub.cdn.requests[0].headers.host, `production.cloudflare.docker.com:${hub.cdn.port}`);
      assert.equal(hub.cdn.requests[0].headers.authorization, undefined);
    } finally {
      await hub.close();
    }
  });
});

describe('registry with Basic auth', () => {
  let registry: FakeRegistry;
  const image = buildImage({ layerSizes: [100] });

  before(async () => {
    registry = await FakeRegistry.start({ auth: { kind: 'basic', username: 'carol', password: 'hunter22' } });
    registry.addImage('team/app', image, ['v1']);
  });
  after(() => registry.close());

  it('answers the challenge with the credentials, then sends them straight away', async () => {
    const client = newClient();
    const upstream = target(registry.url, { username: 'carol', password: 'hunter22' });
    const before = registry.requests.length;
    value(await client.getManifest(upstream, 'team/app', 'v1'));
    const first = registry.requests.slice(before);
    assert.deepEqual(first.map((r) => r.headers.authorization === undefined), [true, false]);
    value(await client.getManifest(upstream, 'team/app', 'v1'));
    assert.equal(registry.requests.length - before, 3);
  });

  it('reports wrong or missing credentials as unauthorized with the upstream message', async () => {
    const client = newClient();
    const wrong = await client.getManifest(target(registry.url, { username: 'carol', password: 'nope' }), 'team/app', 'v1');
    assert.equal(wrong.kind, 'unauthorized');
    assert.match((wrong as { message: string }).message, /401.*authentication required/);
    const anonymous = await client.headManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(anonymous.kind, 'unauthorized');
  });
});

describe('token realm on a foreign domain', () => {
  let tokenServer: FakeTokenServer;
  let registry: FakeRegistry;
  const image = buildImage({ layerSizes: [100] });

  before(async () => {
    tokenServer = await FakeTokenServer.start({ users: { dave: 'pw' } });
    tokenServer.hostname = 'auth.elsewhere.test';
    registry = await FakeRegistry.start({ auth: { kind: 'bearer', tokenServer } });
    registry.addImage('team/app', image, ['v1']);
  });
  after(async () => {
    await registry.close();
    await tokenServer.close();
  });

  it('does not send the credentials to it (the token request is anonymous)', async () => {
    const client = newClient({ lookup: resolveToLoopback(['auth.elsewhere.test']) });
    const before = tokenServer.tokenRequests.length;
    value(await client.getManifest(target(registry.url, { username: 'dave', password: 'pw' }), 'team/app', 'v1'));
    const requests = tokenServer.tokenRequests.slice(before);
    assert.equal(requests.length, 1);
    assert.equal(requests[0].headers.authorization, undefined);
  });

  it('sends them to a configured token endpoint, whatever its domain', async () => {
    const client = newClient({ lookup: resolveToLoopback(['auth.elsewhere.test']) });
    const before = tokenServer.tokenRequests.length;
    const upstream = target(registry.url, { username: 'dave', password: 'pw', tokenUrl: tokenServer.realm });
    value(await client.getManifest(upstream, 'team/app', 'v1'));
    assert.equal(tokenServer.tokenRequests.slice(before)[0].headers.authorization, `Basic ${Buffer.from('dave:pw').toString('base64')}`);
  });
});

describe('token answers', () => {
  it('accepts access_token and, without expires_in, keeps the token for 60 s', async () => {
    const tokenServer = await FakeTokenServer.start({ tokenField: 'access_token', expiresInSeconds: null });
    const registry = await FakeRegistry.start({ auth: { kind: 'bearer', tokenServer } });
    try {
      registry.addImage('team/app', buildImage({ layerSizes: [10] }), ['v1']);
      let now = Date.now();
      const client = newClient({ now: () => now });
      const upstream = target(registry.url);
      value(await client.headManifest(upstream, 'team/app', 'v1'));
      now += 50_000;
      value(await client.headManifest(upstream, 'team/app', 'v1'));
      assert.equal(tokenServer.tokenRequests.length, 1);
      now += 11_000;
      value(await client.headManifest(upstream, 'team/app', 'v1'));
      assert.equal(tokenServer.tokenRequests.length, 2);
    } finally {
      await registry.close();
      await tokenServer.close();
    }
  });
});

describe('token that grants less than asked', () => {
  it('is unauthorized, with one token request per call and no loop', async () => {
    const tokenServer = await FakeTokenServer.start({ grant: () => [] });
    const registry = await FakeRegistry.start({ auth: { kind: 'bearer', tokenServer } });
    try {
      registry.addImage('team/app', buildImage({ layerSizes: [10] }), ['v1']);
      const client = newClient();
      const upstream = target(registry.url);
      for (let call = 1; call <= 2; call++) {
        const result = await client.getManifest(upstream, 'team/app', 'v1');
        assert.equal(result.kind, 'unauthorized');
        assert.equal(tokenServer.tokenRequests.length, call);
      }
      assert.ok(registry.requests.length <= 4, `${registry.requests.length} registry requests for 2 calls`);
    } finally {
      await registry.close();
      await tokenServer.close();
    }
  });

  it('is unauthorized when the token endpoint refuses the credentials', async () => {
    const tokenServer = await FakeTokenServer.start({ users: { erin: 'right' } });
    const registry = await FakeRegistry.start({ auth: { kind: 'bearer', tokenServer } });
    try {
      const result = await newClient().headManifest(target(registry.url, { username: 'erin', password: 'wrong' }), 'team/app', 'v1');
      assert.equal(result.kind, 'unauthorized');
      assert.match((result as { message: string }).message, /incorrect username or password/);
    } finally {
      await registry.close();
      await tokenServer.close();
    }
  });
});

describe('failures of one upstream', () => {
  let registry: FakeRegistry;
  const image = buildImage({ layerSizes: [64 * 1024] });
  const layer = image.layers[0];
  const manifestPath = '/v2/team/app/manifests/v1';
  const blobPath = `/v2/team/app/blobs/${layer.digest}`;

  before(async () => {
    registry = await FakeRegistry.start();
    registry.addImage('team/app', image, ['v1']);
  });
  after(() => registry.close());
  afterEach(() => registry.clearFaults());

  const count = (method: string, path: string) => registry.received(method, path).length;

  it('429 is rate limited with Retry-After in seconds or as a date', async () => {
    const client = newClient();
    registry.fault({ path: manifestPath, fault: { kind: 'status', status: 429, headers: { 'retry-after': '120' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' }, times: 1 });
    const limited = await client.getManifest(target(registry.url), 'team/app', 'v1');
    assert.deepEqual({ ...limited, message: undefined }, { kind: 'rate_limited', retryAfterSeconds: 120, message: undefined });
    assert.match((limited as { message: string }).message, /TOOMANYREQUESTS: slow down/);

    registry.fault({ path: manifestPath, fault: { kind: 'status', status: 429, headers: { 'retry-after': new Date(Date.now() + 60_000).toUTCString() } }, times: 1 });
    const dated = await client.headManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(dated.kind, 'rate_limited');
    const seconds = (dated as { retryAfterSeconds: number }).retryAfterSeconds;
    assert.ok(seconds > 50 && seconds <= 60, `retry after ${seconds}`);
  });

  it('500 is unavailable with the status and message, not retried', async () => {
    const before = count('GET', manifestPath);
    registry.fault({ path: manifestPath, fault: { kind: 'status', status: 500, body: 'database on fire' } });
    const result = await newClient().getManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.equal((result as { status: number }).status, 500);
    assert.match((result as { cause: string }).cause, /HTTP 500: database on fire/);
    assert.equal(count('GET', manifestPath) - before, 1);
  });

  it('one 503 is retried once; a second one is reported', async () => {
    const before = count('GET', manifestPath);
    registry.fault({ path: manifestPath, fault: { kind: 'status', status: 503 }, times: 1 });
    value(await newClient().getManifest(target(registry.url), 'team/app', 'v1'));
    assert.equal(count('GET', manifestPath) - before, 2);

    registry.fault({ path: manifestPath, fault: { kind: 'status', status: 503 }, times: 2 });
    const result = await newClient().getManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.equal(count('GET', manifestPath) - before, 4);
  });

  it('a connection closed before the headers is retried once', async () => {
    const before = count('HEAD', manifestPath);
    registry.fault({ path: manifestPath, fault: { kind: 'reset' }, times: 1 });
    value(await newClient().headManifest(target(registry.url), 'team/app', 'v1'));
    assert.equal(count('HEAD', manifestPath) - before, 2);

    registry.fault({ path: manifestPath, fault: { kind: 'reset' } });
    const result = await newClient().headManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.match((result as { cause: string }).cause, /closed|reset/);
  });

  it('headers that never come time out', async () => {
    const before = count('GET', manifestPath);
    registry.fault({ path: manifestPath, fault: { kind: 'hang' } });
    const result = await newClient({ headersTimeoutMs: 300 }).getManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.match((result as { cause: string }).cause, /no response headers within 300 ms/);
    assert.equal(count('GET', manifestPath) - before, 1);
  });

  it('a connection reset in the middle of a blob makes the stream error', async () => {
    registry.fault({ path: blobPath, fault: { kind: 'reset-mid-body', afterBytes: 10_000 } });
    const blob = value(await newClient().getBlob(target(registry.url), 'team/app', layer.digest));
    assert.equal(blob.size, layer.size);
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of blob.body) received += (chunk as Buffer).length;
    });
    assert.ok(received < layer.size);
  });

  it('a body shorter than its Content-Length makes the stream error', async () => {
    registry.fault({ path: blobPath, fault: { kind: 'short-body', bytes: 5_000 } });
    const blob = value(await newClient().getBlob(target(registry.url), 'team/app', layer.digest));
    await assert.rejects(drain(blob.body));

    registry.fault({ path: manifestPath, fault: { kind: 'short-body', bytes: 10 } });
    const manifest = await newClient().getManifest(target(registry.url), 'team/app', 'v1');
    assert.equal(manifest.kind, 'unavailable');
  });

  it('a manifest body cut short once is fetched again (nothing was handed on yet)', async () => {
    const before = count('GET', manifestPath);
    registry.fault({ path: manifestPath, fault: { kind: 'reset-mid-body', afterBytes: 10 }, times: 1 });
    const manifest = value(await newClient().getManifest(target(registry.url), 'team/app', 'v1'));
    assert.equal(manifest.computedDigest, image.manifest.digest);
    assert.equal(count('GET', manifestPath) - before, 2);
  });

  it('a body that stalls longer than the idle timeout makes the stream error', async () => {
    registry.fault({ path: blobPath, fault: { kind: 'stall-body', afterBytes: 1_000 } });
    const blob = value(await newClient({ bodyTimeoutMs: 300 }).getBlob(target(registry.url), 'team/app', layer.digest));
    await assert.rejects(drain(blob.body), (error: Error & { code?: string }) => error.code === 'UND_ERR_BODY_TIMEOUT');
  });

  it('the caller can abort a blob stream with its signal', async () => {
    registry.fault({ path: blobPath, fault: { kind: 'stall-body', afterBytes: 1_000 } });
    const controller = new AbortController();
    const blob = value(await newClient().getBlob(target(registry.url), 'team/app', layer.digest, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(drain(blob.body));
  });

  it('a refused connection is unavailable with the cause', async () => {
    const closed = await FakeRegistry.start();
    const url = closed.url;
    await closed.close();
    const result = await newClient().headManifest(target(url), 'team/app', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.match((result as { cause: string }).cause, /connection refused/);
  });

  it('follows at most 5 redirects', async () => {
    const loop = '/v2/team/loop/manifests/v1';
    registry.fault({ path: loop, fault: { kind: 'status', status: 307, headers: { location: loop } } });
    const result = await newClient().getManifest(target(registry.url), 'team/loop', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.match((result as { cause: string }).cause, /more than 5 redirects/);
    assert.equal(count('GET', loop), 6);
  });
});

describe('manifests and referrers', () => {
  let registry: FakeRegistry;
  const index = buildIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }], layerSizes: [10] });

  before(async () => {
    registry = await FakeRegistry.start();
    registry.addImage('team/multi', index, ['latest']);
  });
  after(() => registry.close());

  it('asks with the full Accept list, never schema 1, and returns the bytes with both digests', async () => {
    const manifest = value(await newClient().getManifest(target(registry.url + '/v2/'), 'team/multi', 'latest'));
    assert.deepEqual(manifest.bytes, index.index.bytes);
    assert.equal(manifest.mediaType, index.index.mediaType);
    assert.equal(manifest.headerDigest, index.index.digest);
    assert.equal(manifest.computedDigest, index.index.digest);
    const accept = String(registry.received('GET', '/v2/team/multi/manifests/latest').at(-1)!.headers.accept);
    for (const type of MANIFEST_ACCEPT) assert.ok(accept.includes(type), `${type} in ${accept}`);
    for (const type of SCHEMA1_TYPES) assert.ok(!accept.includes(type));
  });

  it('a manifest over the size limit is unavailable and not returned', async () => {
    const big = content('application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify({ schemaVersion: 2, padding: 'x'.repeat(5000) })));
    registry.addManifest('team/big', big, ['v1']);
    const result = await newClient({ maxManifestBytes: 4096 }).getManifest(target(registry.url), 'team/big', 'v1');
    assert.equal(result.kind, 'unavailable');
    assert.match((result as { cause: string }).cause, /more than the limit of 4096/);
  });

  it('gets the referrers index, filtered by artifact type; a registry without the API is not_found', async () => {
    const subject = index.images[0].manifest.digest;
    const signature = content('application/vnd.oci.image.manifest.v1+json', Buffer.from('{"schemaVersion":2,"artifactType":"application/vnd.dev.sigstore"}'));
    registry.addReferrer('team/multi', subject, signature, 'application/vnd.dev.sigstore');
    const client = newClient();
    const referrers = value(await client.getReferrers(target(registry.url), 'team/multi', subject, { artifactType: 'application/vnd.dev.sigstore' }));
    assert.equal(referrers.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(JSON.parse(referrers.bytes.toString()).manifests[0].digest, signature.digest);
    assert.equal(registry.received('GET', `/v2/team/multi/referrers/${subject}`).at(-1)!.query.get('artifactType'), 'application/vnd.dev.sigstore');

    const old = await FakeRegistry.start({ referrers: false });
    try {
      assert.equal((await client.getReferrers(target(old.url), 'team/multi', subject)).kind, 'not_found');
    } finally {
      await old.close();
    }
  });
});

describe('tag lists', () => {
  let registry: FakeRegistry;
  const image = buildImage({ layerSizes: [10] });

  before(async () => {
    registry = await FakeRegistry.start({ tagsPageSize: 2 });
    registry.addImage('team/app', image, ['a', 'b', 'c', 'd', 'e']);
  });
  after(() => registry.close());

  it('follows the upstream\'s Link pages to the end, and stops at the page limit', async () => {
    const client = newClient();
    const all = value(await client.listTags(target(registry.url), 'team/app', { maxPages: 10 }));
    assert.deepEqual(all, { tags: ['a', 'b', 'c', 'd', 'e'], complete: true });
    assert.deepEqual(registry.received('GET', '/v2/team/app/tags/list').map((r) => r.query.get('last')), [null, 'b', 'd']);
    const cut = value(await client.listTags(target(registry.url), 'team/app', { maxPages: 2 }));
    assert.deepEqual(cut, { tags: ['a', 'b', 'c', 'd'], complete: false });
    assert.equal((await client.listTags(target(registry.url), 'team/none', { maxPages: 2 })).kind, 'not_found');
  });

  it('does not follow a next link to another repository, and leaves out names that are not tags', async () => {
    const other = await FakeRegistry.start();
    try {
      other.fault({ path: '/v2/team/app/tags/list', fault: { kind: 'status', status: 200, headers: { 'content-type': 'application/json', link: '</v2/team/secret/tags/list?n=1>; rel="next"' }, body: JSON.stringify({ name: 'team/app', tags: ['ok', '../x', 'also ok'.replace(' ', '-'), 7] }) } });
      const got = value(await newClient().listTags(target(other.url), 'team/app', { maxPages: 10 }));
      assert.deepEqual(got, { tags: ['ok', 'also-ok'], complete: true });
      assert.equal(other.received('GET', '/v2/team/secret/tags/list').length, 0);
    } finally {
      await other.close();
    }
  });
});
