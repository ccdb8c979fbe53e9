// Mirror mode end to end with real upstreams (CNCF Distribution) and skopeo (DESIGN §3.6): requests
// without <group>/<registry> are routed by `ns`, the default route, a claimed hostname or the alias
// path; anonymous pulls where a registry allows them, from its networks; every refusal an OCI error,
// and no request to a host that is not in the table.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../src/auth/policy.ts';
import { Distribution } from '../helpers/distribution.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { forwarder, trap } from '../helpers/loopback.ts';
import type { Forwarder, Trap } from '../helpers/loopback.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, metricValue, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SkopeoClient, skopeo } from '../helpers/skopeo.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('mirror routing through Manifold', () => {
  const app = buildImage({ layerSizes: [4 * 1024, 64 * 1024] });
  const tool = buildImage({ layerSizes: [8 * 1024] });
  let hubUpstream: Distribution;
  let ghcrUpstream: Distribution;
  let server: TestManifold;
  let token: string;
  let hubId: number;
  let ghId: number;
  const closers: (() => Promise<void> | void)[] = [];

  before(async () => {
    [hubUpstream, ghcrUpstream] = await Promise.all([Distribution.start(), Distribution.start()]);
    await pushImage(hubUpstream.url, 'library/app', app, { tag: '1.0' });
    await pushImage(ghcrUpstream.url, 'owner/tool', tool, { tag: '2.0' });
    server = await startManifold();
    hubId = (await createVirtualRegistry(server, { group: 'mirrors', registry: 'hub', upstreamUrls: [hubUpstream.url] })).registry.id;
    const services = server.manifold.services;
    const group = unwrap(await services.groups.getByPath(SYSTEM, 'mirrors'));
    const gh = unwrap(await services.registries.create(server.admin, group.id, { name: 'gh' }));
    unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, gh.id, { name: 'ghcr', url: ghcrUpstream.url }));
    ghId = gh.id;
    unwrap(await services.mirrorRoutes.create(server.admin, { host: 'registry-1.docker.io', registry_id: hubId, default: true }));
    unwrap(await services.mirrorRoutes.create(server.admin, { host: 'ghcr.io', registry_id: ghId }));
    token = await personalToken(server);
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await server?.stop();
    await Promise.all([hubUpstream?.stop(), ghcrUpstream?.stop()]);
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}/v2/${path}`, { headers: { authorization: basicToken(token), accept: OCI_MANIFEST, ...headers } });

  async function ociError(response: Response): Promise<{ code: string; message: string }> {
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    const body = await response.json() as { errors: { code: string; message: string }[] };
    return body.errors[0];
  }

  it('routes ?ns= by the table, Docker Hub\'s one-component names included; the upstream sees the plain image name', async () => {
    const mark = hubUpstream.accessLog.length;
    for (const path of ['library/app/manifests/1.0?ns=docker.io', 'app/manifests/1.0?ns=index.docker.io', 'library/app/manifests/1.0']) {
      const response = await get(path);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('docker-content-digest'), app.manifest.digest, path);
    }
    const blob = await get(`library/app/blobs/${app.layers[1].digest}?ns=docker.io`);
    assert.equal(blob.status, 200);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(app.layers[1].bytes));
    await settleLog(hubUpstream);
    const asked = logSince(hubUpstream, mark).map((entry) => entry.path);
    assert.ok(asked.includes('/v2/library/app/manifests/1.0'));
    assert.ok(asked.every((path) => !path.includes('mirrors/')), 'the upstream never sees Manifold\'s own names');

    const gh = await get('owner/tool/manifests/2.0?ns=ghcr.io');
    assert.equal(gh.status, 200);
    assert.equal(gh.headers.get('docker-content-digest'), tool.manifest.digest);
    // Tag lists are routed the same way, and answer with the name as the client wrote it.
    const tags = await get('owner/tool/tags/list?ns=ghcr.io');
    assert.equal(tags.status, 200);
    assert.deepEqual(await tags.json(), { name: 'owner/tool', tags: ['2.0'] });
    // The same name through the canonical form and GitLab's alias path: one registry, one cache.
    for (const path of ['mirrors/gh/owner/tool/manifests/2.0', `virtual_registries/containers/${ghId}/owner/tool/manifests/2.0`]) {
      const response = await get(path);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('docker-content-digest'), tool.manifest.digest);
    }
  });

  it('skopeo copies docker.io-style names through the default route after a docker login', async () => {
    const client = new SkopeoClient(server.host);
    closers.push(() => client.cleanup());
    assert.equal((await client.login('admin', token)).code, 0);
    const copied = await client.copy('library/app', '1.0');
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.layout?.topDigest, app.manifest.digest);
    for (const blob of app.blobs) assert.ok(copied.layout?.blob(blob.digest).equals(blob.bytes));
  });

  it('refuses an unknown ns, a route to a deleted registry and a registry the caller may not pull with OCI errors, dialling no host outside the table', async () => {
    const outside: Trap = await trap();
    closers.push(() => outside.close());
    const unknown = await get(`library/app/manifests/1.0?ns=${outside.host}`);
    assert.equal(unknown.status, 404);
    const unknownError = await ociError(unknown);
    assert.equal(unknownError.code, 'NAME_UNKNOWN');
    assert.match(unknownError.message, new RegExp(`no mirror route for ns=${outside.host.replace(/\./g, '\\.')}`));
    const blob = await get(`library/app/blobs/${app.layers[0].digest}?ns=${outside.host}`);
    assert.equal(blob.status, 404);

    const services = server.manifold.services;
    const group = unwrap(await services.groups.getByPath(SYSTEM, 'mirrors'));
    const doomed = unwrap(await services.registries.create(server.admin, group.id, { name: 'doomed' }));
    unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, doomed.id, { name: 'doomed', url: `http://${outside.host}` }));
    unwrap(await services.mirrorRoutes.create(server.admin, { host: 'quay.io', registry_id: doomed.id }));
    unwrap(await services.registries.destroy(server.admin, doomed.id));
    const orphan = await get('coreos/etcd/manifests/v3?ns=quay.io');
    assert.equal(orphan.status, 404);
    const orphanError = await ociError(orphan);
    assert.equal(orphanError.code, 'NAME_UNKNOWN');
    assert.match(orphanError.message, /mirror route for quay\.io points at a registry that was deleted/);

    // A user of another group: the mirror's registry is not theirs, so it does not exist for them.
    const stranger = unwrap(await services.users.create(server.admin, { username: 'stranger', password: 'a password long enough' }));
    const strangerActor = unwrap(await server.manifold.services.authenticator.authenticate({ username: stranger.username, password: 'a password long enough' }, 'api'));
    const strangerToken = unwrap(await services.tokens.createPersonal(strangerActor, { name: 'pull', scopes: ['read_virtual_registry'] })).token;
    for (const path of ['library/app/manifests/1.0?ns=docker.io', 'library/app/manifests/1.0', `library/app/blobs/${app.layers[0].digest}`]) {
      const refused = await fetch(`${server.url}/v2/${path}`, { headers: { authorization: basicToken(strangerToken) } });
      assert.equal(refused.status, 404, path);
      assert.equal((await ociError(refused)).code, 'NAME_UNKNOWN', path);
    }
    assert.equal(outside.connections, 0, 'Manifold never dialled the host named by ns, nor the deleted registry\'s upstream');
  });

  it('a claimed hostname routes every name to its registry (skopeo pulls 127.0.0.2:<port>/owner/tool)', async () => {
    unwrap(await server.manifold.services.registries.update(server.admin, ghId, { hostnames: ['127.0.0.2'] }));
    const alias: Forwarder = await forwarder('127.0.0.2', Number(server.host.split(':')[1]));
    closers.push(() => alias.close());
    const client = new SkopeoClient(alias.host);
    closers.push(() => client.cleanup());
    assert.equal((await client.login('admin', token)).code, 0);
    const mark = ghcrUpstream.accessLog.length;
    // No ns, and docker.io is the default route: only the Host sends this to the gh registry.
    const copied = await client.copy('owner/tool', '2.0');
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.layout?.topDigest, tool.manifest.digest);
    await settleLog(ghcrUpstream);
    assert.ok(logSince(ghcrUpstream, mark).some((entry) => entry.path === `/v2/owner/tool/blobs/${tool.layers[0].digest}`), 'the blob came from the gh registry\'s upstream');
    unwrap(await server.manifold.services.registries.update(server.admin, ghId, { hostnames: [] }));
  });

  it('anonymous pulls: refused (and logged why) until the registry allows them, then only from its networks', async () => {
    const anonymousCopy = async (host: string) => {
      const dir = `oci:${server.dataDir}/anonymous-${Math.random().toString(36).slice(2)}:x`;
      return skopeo(['--insecure-policy', 'copy', '--preserve-digests', '--src-tls-verify=false', '--src-no-creds', '--retry-times', '0', `docker://${host}/library/app:1.0`, dir]);
    };
    const refused = await anonymousCopy(server.host);
    assert.notEqual(refused.code, 0, 'anonymous_pull is off by default');
    assert.ok(server.logs.some((line) => line.includes('anonymous pull refused: registry mirrors/hub does not allow anonymous pulls')), 'the log says why');

    const services = server.manifold.services;
    unwrap(await services.registries.update(server.admin, hubId, { anonymous_pull: true }));
    const allowed = await anonymousCopy(server.host);
    assert.equal(allowed.code, 0, allowed.stderr);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.ok(metricValue(metrics, 'manifold_anonymous_pulls_total', { registry: 'mirrors/hub', kind: 'manifest' }) >= 1);
    assert.ok(metricValue(metrics, 'manifold_anonymous_pulls_total', { registry: 'mirrors/hub', kind: 'blob' }) >= app.blobs.length);
    // Anonymous callers pull, nothing more: the other registry still wants credentials.
    const other = await fetch(`${server.url}/v2/owner/tool/manifests/2.0?ns=ghcr.io`);
    assert.equal(other.status, 401);

    unwrap(await services.registries.update(server.admin, hubId, { anonymous_networks: ['127.0.0.2/32'] }));
    const port = Number(server.host.split(':')[1]);
    const inside = await forwarder('127.0.0.2', port, '127.0.0.2');
    const outsideClient = await forwarder('127.0.0.3', port, '127.0.0.3');
    closers.push(() => inside.close(), () => outsideClient.close());
    const fromOutside = await anonymousCopy(outsideClient.host);
    assert.notEqual(fromOutside.code, 0, 'a client at 127.0.0.3 is outside 127.0.0.2/32');
    assert.ok(server.logs.some((line) => line.includes('client 127.0.0.3 is outside the anonymous_networks of mirrors/hub')), 'the log says why');
    const fromInside = await anonymousCopy(inside.host);
    assert.equal(fromInside.code, 0, fromInside.stderr);

    // The token endpoint grants anonymous callers the pull (and nothing else) where it is allowed.
    const issued = await (await fetch(`${server.url}/auth/token?service=manifold&scope=repository:library/app:pull&scope=repository:owner/tool:pull`)).json() as { token: string };
    const claims = JSON.parse(Buffer.from(issued.token.split('.')[1], 'base64url').toString('utf8')) as { access: { name: string }[] };
    assert.deepEqual(claims.access.map((entry) => entry.name), [], 'from 127.0.0.1, outside the networks now');
    unwrap(await services.registries.update(server.admin, hubId, { anonymous_networks: [] }));
    const open = await (await fetch(`${server.url}/auth/token?service=manifold&scope=repository:library/app:pull&scope=repository:owner/tool:pull`)).json() as { token: string };
    const openClaims = JSON.parse(Buffer.from(open.token.split('.')[1], 'base64url').toString('utf8')) as { access: { name: string; actions: string[] }[] };
    // The token endpoint sees no ns: a mirror name is granted when some route leads to a registry that lets
    // this caller pull. Each /v2 request then checks its own registry (owner/tool?ns=ghcr.io stayed 401 above).
    assert.deepEqual(openClaims.access, [{ type: 'repository', name: 'library/app', actions: ['pull'] }, { type: 'repository', name: 'owner/tool', actions: ['pull'] }]);
    const withToken = await fetch(`${server.url}/v2/owner/tool/manifests/2.0?ns=ghcr.io`, { headers: { authorization: `Bearer ${open.token}` } });
    assert.equal(withToken.status, 401, 'an anonymous token does not open a registry without anonymous_pull');
    unwrap(await services.registries.update(server.admin, hubId, { anonymous_pull: false }));
  });
});
