// SSRF: with private upstreams not allowed, the address actually connected to is checked (DNS rebinding),
// not only the URL when it was saved.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamClient } from '../../src/upstream/client.ts';
import type { UpstreamClientOptions, UpstreamTarget } from '../../src/upstream/client.ts';
import { FakeRegistry, resolveToLoopback } from '../../test/helpers/fake-registry.ts';
import { buildImage } from '../../test/helpers/oci-image.ts';

function clientWith(options: Partial<UpstreamClientOptions>): UpstreamClient {
  return new UpstreamClient({
    allowPrivate: false,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 2_000,
    bodyTimeoutMs: 2_000,
    probeTimeoutMs: 1_000,
    probeConcurrency: 3,
    maxManifestBytes: 4 * 1024 * 1024,
    ...options,
  });
}

const target = (url: string): UpstreamTarget => ({ id: 1, url, username: null, password: null, tokenUrl: null });

describe('private upstream addresses', () => {
  let registry: FakeRegistry;
  let refusing: UpstreamClient;
  let allowing: UpstreamClient;

  before(async () => {
    registry = await FakeRegistry.start();
    registry.addImage('team/app', buildImage({ layerSizes: [10] }), ['v1']);
    const lookup = resolveToLoopback(['rebound.example.com']);
    refusing = clientWith({ allowPrivate: false, lookup });
    allowing = clientWith({ allowPrivate: true, lookup });
  });
  after(async () => {
    await refusing.close();
    await allowing.close();
    await registry.close();
  });

  const urls = () => ({
    ip: registry.url,
    localhost: `http://localhost:${registry.port}`,
    rebound: `http://rebound.example.com:${registry.port}`,
  });

  it('refuses 127.0.0.1, localhost and a name that resolves to 127.0.0.1, without sending a request', async () => {
    for (const [what, url] of Object.entries(urls())) {
      const result = await refusing.headManifest(target(url), 'team/app', 'v1');
      assert.equal(result.kind, 'unavailable', what);
      assert.match((result as { cause: string }).cause, /private, loopback or link-local address/, what);
      assert.match((result as { cause: string }).cause, /upstream\.allowPrivate \(MANIFOLD_UPSTREAM_ALLOW_PRIVATE=true\)/, 'the refusal names the setting');
    }
    assert.equal(registry.requests.length, 0);
  });

  it('refuses other loopback literals (IPv6, IPv4-mapped, the rest of 127/8) before connecting', async () => {
    // Only local addresses here: a regression must not send traffic anywhere else.
    for (const url of ['http://[::1]:1', 'http://[::ffff:127.0.0.1]:1', 'http://127.0.0.2:1']) {
      const result = await refusing.getManifest(target(url), 'team/app', 'v1');
      assert.equal(result.kind, 'unavailable', url);
      assert.match((result as { cause: string }).cause, /private, loopback or link-local/, url);
    }
  });

  it('reaches the same upstreams when the instance allows private upstreams', async () => {
    for (const [what, url] of Object.entries(urls())) {
      if (what === 'localhost') continue; // localhost may resolve to ::1 first, where nothing listens
      assert.equal((await allowing.headManifest(target(url), 'team/app', 'v1')).kind, 'found', what);
    }
  });
});
