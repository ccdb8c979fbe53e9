// /v2/_catalog (Distribution's catalog API): the repositories with cached manifests that the caller may
// pull, as <group>/<registry>/<image>, in lexical order, paginated with n, last and Link; on SQLite and
// PostgreSQL alike.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { createVirtualRegistry, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { v2 } from '../helpers/e2e.ts';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

async function catalog(server: TestManifold, token: string | null, query = ''): Promise<{ status: number; repositories: string[]; link: string | null; response: Response }> {
  const response = await v2(server, `_catalog${query}`, { token });
  const body = response.status === 200 ? ((await response.clone().json()) as { repositories: string[] }) : { repositories: [] };
  return { status: response.status, repositories: body.repositories, link: response.headers.get('link'), response };
}

describe('the catalog of cached repositories', () => {
  const image = buildImage({ layerSizes: [128] });
  let upstream: Distribution;
  let server: TestManifold;
  let adminToken: string;
  let betaToken: string;
  let acmeHubId: number;

  before(async () => {
    upstream = await Distribution.start();
    for (const repository of ['library/app', 'library/other', 'manifests/tricky', 'team/blob-only']) await pushImage(upstream.url, repository, image, { tag: '1' });
    server = await startManifold();
    acmeHubId = (await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] })).registry.id;
    const beta = await createVirtualRegistry(server, { group: 'beta', registry: 'mirror', upstreamUrls: [upstream.url] });
    adminToken = await personalToken(server);
    // A deploy token of group beta may pull from beta's registries only.
    betaToken = unwrap(await server.manifold.services.tokens.createDeployToken(server.admin, { group_id: beta.group.id, name: 'ci' })).token;

    const pulls = [
      'acme/hub/library/other/manifests/1',
      'acme/hub/library/app/manifests/1',
      // An image whose name has a `manifests` component: still listed by its whole name.
      'acme/hub/manifests/tricky/manifests/1',
      'beta/mirror/library/app/manifests/1',
    ];
    for (const path of pulls) {
      const response = await v2(server, path, { token: adminToken, headers: { accept: ACCEPT } });
      assert.equal(response.status, 200, path);
      await response.arrayBuffer();
    }
    // A blob alone does not make a repository pullable by name.
    const blob = await v2(server, `acme/hub/team/blob-only/blobs/${image.layers[0].digest}`, { token: adminToken });
    assert.equal(blob.status, 200);
    await blob.arrayBuffer();
  });
  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('lists every cached repository the caller may pull, in lexical order', async () => {
    const all = await catalog(server, adminToken);
    assert.equal(all.status, 200);
    assert.deepEqual(all.repositories, ['acme/hub/library/app', 'acme/hub/library/other', 'acme/hub/manifests/tricky', 'beta/mirror/library/app']);
    assert.equal(all.link, null);

    const beta = await catalog(server, betaToken);
    assert.deepEqual(beta.repositories, ['beta/mirror/library/app'], 'a deploy token of beta sees beta only');
  });

  it('paginates exactly with n and last, with a Link to each next page', async () => {
    const first = await catalog(server, adminToken, '?n=3');
    assert.deepEqual(first.repositories, ['acme/hub/library/app', 'acme/hub/library/other', 'acme/hub/manifests/tricky']);
    assert.equal(first.link, '</v2/_catalog?n=3&last=acme%2Fhub%2Fmanifests%2Ftricky>; rel="next"');
    const second = await catalog(server, adminToken, '?n=3&last=acme%2Fhub%2Fmanifests%2Ftricky');
    assert.deepEqual(second.repositories, ['beta/mirror/library/app']);
    assert.equal(second.link, null);
    const between = await catalog(server, adminToken, '?last=acme/hub/library/b');
    assert.deepEqual(between.repositories, ['acme/hub/library/other', 'acme/hub/manifests/tricky', 'beta/mirror/library/app']);
    const bad = await catalog(server, adminToken, '?n=many');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.response.json()) as { errors: { code: string }[] }).errors[0].code, 'PAGINATION_NUMBER_INVALID');
  });

  it('asks for credentials with the catalog scope, and forgets purged repositories', async () => {
    const anonymous = await catalog(server, null);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.response.headers.get('www-authenticate') ?? '', /^Bearer realm="[^"]+\/auth\/token",service="manifold",scope="registry:catalog:\*"$/);

    unwrap(await server.manifold.services.entries.markRegistryForDestruction(server.admin, acmeHubId));
    const after = await catalog(server, adminToken);
    assert.deepEqual(after.repositories, ['beta/mirror/library/app'], 'acme/hub\'s entries are purged; beta has an upstream (and entries) of its own');
  });
});
