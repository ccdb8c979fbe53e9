// containerd pulls docker.io/… and ghcr.io/… names unchanged through Manifold as its mirror: only
// `_default/hosts.toml` points at Manifold's root (with a closed port as the fallback server), and
// Manifold's routing table decides the registry by the `ns` containerd sends. One containerd per file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../src/auth/policy.ts';
import { Containerd } from '../helpers/daemons.ts';
import { Distribution } from '../helpers/distribution.ts';
import { freePort } from '../helpers/free-port.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { buildUnpackableImage, buildUnpackableIndex, pushImage } from '../helpers/oci-image.ts';
import { createVirtualRegistry, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';

describe('containerd with Manifold as its only mirror', () => {
  const app = buildUnpackableImage({ layers: [{ hello: 'hello from app\n' }, { 'etc/app.conf': 'x'.repeat(200_000) }] });
  const tool = buildUnpackableImage({ layers: [{ tool: 'the tool\n' }] });
  const multi = buildUnpackableIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }], layers: [{ multi: 'multi\n' }] });
  let hubUpstream: Distribution;
  let ghcrUpstream: Distribution;
  let server: TestManifold;
  let containerd: Containerd;
  let user: string;

  before(async () => {
    [hubUpstream, ghcrUpstream] = await Promise.all([Distribution.start(), Distribution.start()]);
    await pushImage(hubUpstream.url, 'library/app', app, { tag: '1.0' });
    await pushImage(hubUpstream.url, 'library/multi', multi, { tag: '1.0' });
    await pushImage(ghcrUpstream.url, 'owner/tool', tool, { tag: '2.0' });
    server = await startManifold();
    const hub = await createVirtualRegistry(server, { group: 'mirrors', registry: 'hub', upstreamUrls: [hubUpstream.url] });
    const services = server.manifold.services;
    const group = unwrap(await services.groups.getByPath(SYSTEM, 'mirrors'));
    const gh = unwrap(await services.registries.create(server.admin, group.id, { name: 'gh' }));
    unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, gh.id, { name: 'ghcr', url: ghcrUpstream.url }));
    unwrap(await services.mirrorRoutes.create(server.admin, { host: 'docker.io', registry_id: hub.registry.id, default: true }));
    unwrap(await services.mirrorRoutes.create(server.admin, { host: 'ghcr.io', registry_id: gh.id }));
    user = `admin:${await personalToken(server)}`;
    containerd = await Containerd.start();
    // The whole node configuration: every registry's pulls go to Manifold first; the fallback is closed.
    containerd.writeHosts('_default', [
      `server = "http://127.0.0.1:${await freePort()}"`,
      '',
      `[host."${server.url}"]`,
      '  capabilities = ["pull", "resolve"]',
      '',
    ].join('\n'));
  });
  after(async () => {
    await containerd?.stop();
    await server?.stop();
    await Promise.all([hubUpstream?.stop(), ghcrUpstream?.stop()]);
  });

  async function blobFetches(registry: Distribution, mark: number, repository: string): Promise<Map<string, number>> {
    await settleLog(registry);
    const counts = new Map<string, number>();
    for (const entry of logSince(registry, mark)) {
      if (entry.method !== 'GET' || !entry.path.startsWith(`/v2/${repository}/blobs/`)) continue;
      const digest = entry.path.slice(entry.path.lastIndexOf('/') + 1);
      counts.set(digest, (counts.get(digest) ?? 0) + 1);
    }
    return counts;
  }

  it('pulls docker.io/library/app:1.0 (routed by ns=docker.io); the upstream serves each blob once', async () => {
    const mark = hubUpstream.accessLog.length;
    const pulled = await containerd.pull('docker.io/library/app:1.0', { user });
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
    const images = await containerd.ctr(['image', 'ls', '-q']);
    assert.ok(images.stdout.split('\n').includes('docker.io/library/app:1.0'), 'the image keeps its docker.io name');
    const fetched = await blobFetches(hubUpstream, mark, 'library/app');
    for (const blob of app.blobs) assert.equal(fetched.get(blob.digest), 1, `blob ${blob.digest} fetched once from the upstream`);
    assert.ok(server.logs.some((line) => line.includes('ns=docker.io')), 'containerd named the source registry with ns');
  });

  it('pulls ghcr.io/owner/tool:2.0 through the second route, from the other upstream', async () => {
    const mark = ghcrUpstream.accessLog.length;
    const hubMark = hubUpstream.accessLog.length;
    const pulled = await containerd.pull('ghcr.io/owner/tool:2.0', { user });
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
    const fetched = await blobFetches(ghcrUpstream, mark, 'owner/tool');
    for (const blob of tool.blobs) assert.equal(fetched.get(blob.digest), 1, `blob ${blob.digest} fetched once from the ghcr.io upstream`);
    await settleLog(hubUpstream);
    assert.deepEqual(logSince(hubUpstream, hubMark).filter((entry) => entry.path.includes('owner/tool')), [], 'the Docker Hub upstream was not asked');
  });

  it('pulls --platform linux/arm64 of a multi-platform index: only that platform\'s blobs are fetched', async () => {
    const mark = hubUpstream.accessLog.length;
    const pulled = await containerd.pull('docker.io/library/multi:1.0', { user, platform: 'linux/arm64' });
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
    const fetched = await blobFetches(hubUpstream, mark, 'library/multi');
    const arm = multi.images.find((image) => image.platform.architecture === 'arm64')!;
    const amd = multi.images.find((image) => image.platform.architecture === 'amd64')!;
    for (const blob of arm.blobs) assert.equal(fetched.get(blob.digest), 1, `arm64 blob ${blob.digest} fetched once`);
    for (const blob of amd.layers) assert.equal(fetched.get(blob.digest), undefined, 'no amd64 layer fetched');
  });

  it('an image under a host without a route fails: Manifold answers 404 for that ns', async () => {
    const pulled = await containerd.pull('quay.io/coreos/etcd:v3', { user });
    assert.notEqual(pulled.code, 0);
    assert.ok(server.logs.some((line) => line.includes('ns=quay.io') && line.includes('"status":404')), 'Manifold answered 404 for ns=quay.io');
  });
});
