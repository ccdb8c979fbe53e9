// Referrers through the cache (DESIGN §3.3; distribution-spec "Listing Referrers"): 404 when no upstream
// offers the API (so clients fall back to the sha256-<hex> tag schema), the first upstream with
// referrers answers, its Link pages are passed through, and the artifactType filter is applied here when
// the upstream did not, with OCI-Filters-Applied only when a filter was applied.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { FakeRegistry } from '../helpers/fake-registry.ts';
import { buildImage, content, OCI_INDEX, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import { createVirtualRegistry, personalToken, startManifold } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { v2 } from '../helpers/e2e.ts';

const SIGNATURE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const SBOM = 'application/spdx+json';

function artifact(artifactType: string, n: number) {
  return content(OCI_MANIFEST, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType, n })));
}

async function referrersOf(response: Response): Promise<{ digest: string; artifactType: string }[]> {
  assert.equal(response.status, 200, await response.clone().text());
  assert.equal(response.headers.get('content-type'), OCI_INDEX);
  const index = (await response.json()) as { schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType: string }[] };
  assert.equal(index.schemaVersion, 2);
  return index.manifests;
}

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0].code;
}

describe('referrers through the cache', () => {
  const image = buildImage({ layerSizes: [256] });
  const subject = image.manifest.digest;
  const signatures = [artifact(SIGNATURE, 1), artifact(SIGNATURE, 2), artifact(SIGNATURE, 3)];
  const sbom = artifact(SBOM, 4);
  let distribution: Distribution;
  let withoutApi: FakeRegistry;
  let filtering: FakeRegistry;
  let ignoringFilter: FakeRegistry;
  let paging: FakeRegistry;
  let empty: FakeRegistry;
  let server: TestManifold;
  let token: string;
  let groupId: number;
  const upstreamIds = new Map<string, number>();

  /** Another registry of group acme, in front of these upstreams in this order (each URL one upstream of the group). */
  async function addRegistry(name: string, urls: string[]): Promise<void> {
    const services = server.manifold.services;
    const registry = await services.registries.create(server.admin, groupId, { name });
    assert.ok(registry.ok);
    for (const url of urls) {
      const known = upstreamIds.get(url);
      const link = known === undefined
        ? await services.registryUpstreams.createUpstreamForRegistry(server.admin, registry.value.id, { name: `upstream-${upstreamIds.size}`, url, cache_validity_hours: 24, username: null, password: null })
        : await services.registryUpstreams.link(server.admin, registry.value.id, known);
      assert.ok(link.ok, link.ok ? '' : link.message);
      upstreamIds.set(url, link.value.upstream_id);
    }
  }

  before(async () => {
    distribution = await Distribution.start();
    await pushImage(distribution.url, 'library/app', image, { tag: '1' });
    withoutApi = await FakeRegistry.start({ referrers: false });
    filtering = await FakeRegistry.start();
    ignoringFilter = await FakeRegistry.start({ referrersFilter: false });
    paging = await FakeRegistry.start({ referrersPageSize: 2 });
    empty = await FakeRegistry.start();
    for (const registry of [withoutApi, filtering, ignoringFilter, paging, empty]) registry.addImage('library/app', image, ['1']);
    for (const registry of [filtering, ignoringFilter, paging]) {
      for (const signature of signatures) registry.addReferrer('library/app', subject, signature, SIGNATURE);
      registry.addReferrer('library/app', subject, sbom, SBOM);
    }
    server = await startManifold({ cache: { referrersTtlSeconds: 0 }, limits: { registriesPerGroup: 10 } });
    groupId = (await createVirtualRegistry(server, { group: 'acme', registry: 'distribution', upstreamUrls: [distribution.url] })).group.id;
    await addRegistry('noapi', [withoutApi.url]);
    await addRegistry('filtering', [filtering.url]);
    await addRegistry('ignoring', [ignoringFilter.url]);
    await addRegistry('paging', [paging.url]);
    await addRegistry('fallthrough', [withoutApi.url, empty.url, filtering.url]);
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await distribution?.stop();
    await Promise.all([withoutApi, filtering, ignoringFilter, paging, empty].map((r) => r?.close()));
  });

  it('answers 404 when no upstream offers the referrers API (a real Distribution 2.8, or a registry answering 404)', async () => {
    for (const registry of ['distribution', 'noapi']) {
      const response = await v2(server, `acme/${registry}/library/app/referrers/${subject}`, { token });
      assert.equal(response.status, 404, registry);
      assert.equal(response.headers.get('oci-filters-applied'), null);
      assert.equal(await errorCode(response), 'UNSUPPORTED');
      const filtered = await v2(server, `acme/${registry}/library/app/referrers/${subject}?artifactType=${encodeURIComponent(SIGNATURE)}`, { token });
      assert.equal(filtered.status, 404, `${registry} with a filter`);
      assert.equal(filtered.headers.get('oci-filters-applied'), null, 'no filter was applied to a 404');
      await filtered.arrayBuffer();
    }
  });

  it('sends OCI-Filters-Applied only with a filter, and filters itself when the upstream did not', async () => {
    for (const registry of ['filtering', 'ignoring']) {
      const all = await v2(server, `acme/${registry}/library/app/referrers/${subject}`, { token });
      assert.equal(all.headers.get('oci-filters-applied'), null, `${registry}: no filter asked`);
      assert.deepEqual((await referrersOf(all)).map((d) => d.digest), [...signatures, sbom].map((a) => a.digest));

      const filtered = await v2(server, `acme/${registry}/library/app/referrers/${subject}?artifactType=${encodeURIComponent(SBOM)}`, { token });
      assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType', registry);
      assert.deepEqual(await referrersOf(filtered), [{ mediaType: OCI_MANIFEST, digest: sbom.digest, size: sbom.size, artifactType: SBOM }], registry);
    }
    // The filter went upstream either way; only one of the two upstreams applied it.
    assert.equal(ignoringFilter.received('GET', `/v2/library/app/referrers/${subject}`).at(-1)!.query.get('artifactType'), SBOM);
  });

  it('passes the upstream\'s Link pagination through, page by page', async () => {
    let path = `/v2/acme/paging/library/app/referrers/${subject}`;
    const seen: string[] = [];
    for (let page = 0; page < 5; page++) {
      const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Basic ${Buffer.from(`t:${token}`).toString('base64')}` } });
      const link = response.headers.get('link');
      seen.push(...(await referrersOf(response)).map((d) => d.digest));
      if (!link) break;
      const match = /^<([^>]+)>; rel="next"$/.exec(link);
      assert.ok(match, `a next link: ${link}`);
      assert.ok(match[1].startsWith(`/v2/acme/paging/library/app/referrers/${subject}?`), match[1]);
      path = match[1];
    }
    assert.deepEqual(seen, [...signatures, sbom].map((a) => a.digest), 'every referrer once, in the upstream\'s order');
    assert.equal(paging.received('GET', `/v2/library/app/referrers/${subject}`).length, 2, 'two pages of 2 asked upstream');

    const forged = await v2(server, `acme/paging/library/app/referrers/${subject}?upstream=999999&page=x`, { token });
    assert.equal(forged.status, 400, 'a page of an upstream the registry does not have');
    await forged.arrayBuffer();
  });

  it('asks the upstreams in order: past one without the API and one with none, to the first that has some', async () => {
    const response = await v2(server, `acme/fallthrough/library/app/referrers/${subject}?artifactType=${encodeURIComponent(SIGNATURE)}`, { token });
    assert.equal(response.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual((await referrersOf(response)).map((d) => d.digest), signatures.map((a) => a.digest));
    // An upstream offering the API with nothing for the subject: an empty index, not 404.
    const other = buildImage({ layerSizes: [64] }).manifest.digest;
    const none = await v2(server, `acme/fallthrough/library/app/referrers/${other}`, { token });
    assert.deepEqual(await referrersOf(none), []);
  });

  it('answers 503 when the only upstream with the API cannot be asked, and 400 for a malformed digest', async () => {
    const down = await FakeRegistry.start();
    await addRegistry('down', [down.url]);
    await down.close();
    const response = await v2(server, `acme/down/library/app/referrers/${subject}`, { token });
    assert.equal(response.status, 503);
    assert.equal(await errorCode(response), 'UNAVAILABLE');
    const malformed = await v2(server, 'acme/filtering/library/app/referrers/sha256:abc', { token });
    assert.equal(malformed.status, 400);
    assert.equal(await errorCode(malformed), 'DIGEST_INVALID');
  });
});
