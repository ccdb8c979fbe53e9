// Docker with Manifold in `registry-mirrors`: Docker sends a mirror no credentials and no `ns`, so a pull
// works when the default route's registry allows anonymous pulls, and is refused (Manifold's log says
// why) when it does not. Also podman with a registries.conf mirror at Manifold's root. One dockerd per file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Dockerd, Podman } from '../helpers/daemons.ts';
import { Distribution } from '../helpers/distribution.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { buildUnpackableImage, pushImage } from '../helpers/oci-image.ts';
import { createVirtualRegistry, metricValue, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';

describe('Docker and podman pull through Manifold as their mirror', () => {
  // A name that exists nowhere else: should Docker fall back to Docker Hub itself, it finds nothing there.
  const repository = `library/manifold-mirror-${randomBytes(4).toString('hex')}`;
  const image = buildUnpackableImage({ layers: [{ hello: 'hello through the mirror\n' }] });
  const closed = buildUnpackableImage({ layers: [{ closed: 'not for anonymous callers\n' }] });
  const tool = buildUnpackableImage({ layers: [{ tool: 'a tool from another registry\n' }] });
  let upstream: Distribution;
  let server: TestManifold;
  let dockerd: Dockerd;
  let hubId: number;

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, repository, image, { tag: '1.0' });
    await pushImage(upstream.url, `${repository}-closed`, closed, { tag: '1.0' });
    await pushImage(upstream.url, 'owner/tool', tool, { tag: '2.0' });
    server = await startManifold();
    const hub = await createVirtualRegistry(server, { group: 'mirrors', registry: 'hub', upstreamUrls: [upstream.url] });
    hubId = hub.registry.id;
    unwrap(await server.manifold.services.mirrorRoutes.create(server.admin, { host: 'docker.io', registry_id: hubId, default: true }));
    const services = server.manifold.services;
    const gh = unwrap(await services.registries.create(server.admin, hub.group.id, { name: 'gh' }));
    unwrap(await services.registryUpstreams.link(server.admin, gh.id, hub.upstreams[0].upstream_id));
    // Docker accepts a plain-HTTP mirror on 127.0.0.0/8 (its default insecure range) and, elsewhere, only
    // when it is listed in insecure-registries too.
    dockerd = await Dockerd.start({ 'registry-mirrors': [server.url], 'insecure-registries': [server.host] });
  });
  after(async () => {
    await dockerd?.stop();
    await server?.stop();
    await upstream?.stop();
  });

  it('docker pull <image> with anonymous_pull false fails, and Manifold\'s log says why', async () => {
    const pulled = await dockerd.docker(['pull', `${repository}-closed:1.0`]);
    assert.notEqual(pulled.code, 0, 'the pull must fail');
    assert.ok(server.logs.some((line) => line.includes('anonymous pull refused: registry mirrors/hub does not allow anonymous pulls')), 'the log says why');
  });

  it('docker pull <image> with no credentials on a registry with anonymous_pull true succeeds; each blob fetched once', async () => {
    unwrap(await server.manifold.services.registries.update(server.admin, hubId, { anonymous_pull: true }));
    const mark = upstream.accessLog.length;
    const pulled = await dockerd.docker(['pull', `${repository}:1.0`]);
    assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}\n${dockerd.log().slice(-3000)}`);
    const inspected = await dockerd.docker(['image', 'inspect', '--format', '{{index .RepoDigests 0}}', `${repository}:1.0`]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal(inspected.stdout.trim(), `${repository.replace(/^library\//, '')}@${image.manifest.digest}`, 'Docker has the upstream\'s manifest digest');
    await settleLog(upstream);
    for (const blob of image.blobs) {
      assert.equal(logSince(upstream, mark).filter((entry) => entry.method === 'GET' && entry.path === `/v2/${repository}/blobs/${blob.digest}`).length, 1, `blob ${blob.digest} fetched once`);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.ok(metricValue(metrics, 'manifold_anonymous_pulls_total', { registry: 'mirrors/hub', kind: 'manifest' }) >= 1, 'anonymous pulls are counted');
  });

  it('podman with a registries.conf mirror at Manifold\'s root pulls docker.io/<image>, and ghcr.io/<image> through a <group>/<registry> mirror location', async () => {
    unwrap(await server.manifold.services.registries.update(server.admin, hubId, { anonymous_pull: false }));
    const podman = Podman.create([
      'unqualified-search-registries = ["docker.io"]',
      '',
      '[[registry]]',
      'location = "docker.io"',
      '',
      '[[registry.mirror]]',
      `location = "${server.host}"`,
      'insecure = true',
      '',
      '[[registry]]',
      'location = "ghcr.io"',
      '',
      '[[registry.mirror]]',
      `location = "${server.host}/mirrors/gh"`,
      'insecure = true',
      '',
    ].join('\n'));
    try {
      const login = await podman.podman(['login', '--tls-verify=false', '--username', 'admin', '--password', await personalToken(server), server.host]);
      assert.equal(login.code, 0, login.stderr);
      const pulled = await podman.pull(`docker.io/${repository}:1.0`);
      assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
      const listed = await podman.podman(['image', 'inspect', '--format', '{{.Digest}}', `docker.io/${repository}:1.0`]);
      assert.equal(listed.stdout.trim(), image.manifest.digest);
      // containers/image sends no ns: a registry other than the default route's gets a mirror location with
      // the registry's <group>/<registry> path, which Manifold serves in its canonical form.
      const other = await podman.pull('ghcr.io/owner/tool:2.0');
      assert.equal(other.code, 0, `${other.stdout}\n${other.stderr}`);
      const tooled = await podman.podman(['image', 'inspect', '--format', '{{.Digest}}', 'ghcr.io/owner/tool:2.0']);
      assert.equal(tooled.stdout.trim(), tool.manifest.digest);
    } finally {
      podman.cleanup();
    }
  });
});
