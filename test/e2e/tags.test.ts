// Tag listing through the cache (DESIGN §3.3; distribution-spec "Listing Tags"): real skopeo through
// Manifold in front of a real Distribution, exact `n`/`last` pagination with `Link`, the last good list
// with `Warning` once the upstream is stopped; and with fake upstreams, the merge of several upstreams,
// their own `Link` pages followed, the short memory, and partial failures.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { FakeRegistry } from '../helpers/fake-registry.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { ADMIN_PASSWORD, startCache } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { v2 } from '../helpers/e2e.ts';
import { STALE_WARNING } from '../../src/services/pull.ts';
import { PARTIAL_WARNING } from '../../src/services/tags.ts';

interface TagList {
  name: string;
  tags: string[];
}

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0].code;
}

/** Follows Manifold's `Link` headers from `path` to the end; every page and its tags. */
async function allPages(server: TestManifold, token: string, path: string): Promise<string[][]> {
  const pages: string[][] = [];
  let next: string | null = path;
  while (next !== null && pages.length < 50) {
    const response = await v2(server, next.replace(/^\/v2\//, ''), { token });
    assert.equal(response.status, 200, await response.clone().text());
    pages.push(((await response.json()) as TagList).tags);
    const link = response.headers.get('link');
    if (link === null) next = null;
    else {
      const match = /^<(\/v2\/[^>]+)>; rel="next"$/.exec(link);
      assert.ok(match, `a relative next link: ${link}`);
      next = match[1];
    }
  }
  return pages;
}

describe('tags through the cache in front of a real Distribution, with skopeo', () => {
  // Distribution orders its list lexically; so does Manifold (upper case before lower case).
  const TAGS = ['1.0', '1.1', '10', '2.0', 'Latest', 'beta', 'latest', 'v1_2-rc.3'];
  let upstream: Distribution;
  let server: TestManifold;
  let token: string;
  let client: SkopeoClient;

  before(async () => {
    upstream = await Distribution.start();
    const image = buildImage({ layerSizes: [128] });
    for (const tag of TAGS) await pushImage(upstream.url, 'library/app', image, { tag });
    // Asked upstream every time (the last good list is still kept for outages).
    ({ server, token } = await startCache([upstream.url], { cache: { tagsTtlSeconds: 0 } }));
    client = new SkopeoClient(server.host);
    const login = await client.login('admin', ADMIN_PASSWORD);
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    client?.cleanup();
    await server?.stop();
    await upstream?.stop();
  });

  it('skopeo list-tags through Manifold lists the upstream\'s tags', async () => {
    const listed = await client.listTags('acme/hub/library/app');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(listed.tags, TAGS);
    assert.ok(upstream.count('GET', '/v2/library/app/tags/list') >= 1, 'the upstream was asked');
  });

  it('paginates exactly with n and last, linking each next page', async () => {
    const pages = await allPages(server, token, '/v2/acme/hub/library/app/tags/list?n=3');
    assert.deepEqual(pages, [TAGS.slice(0, 3), TAGS.slice(3, 6), TAGS.slice(6)]);

    const first = await v2(server, 'acme/hub/library/app/tags/list?n=3', { token });
    assert.equal(first.headers.get('link'), '</v2/acme/hub/library/app/tags/list?n=3&last=10>; rel="next"');
    assert.equal(first.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.deepEqual(await first.json(), { name: 'acme/hub/library/app', tags: ['1.0', '1.1', '10'] });

    const afterLast = await v2(server, 'acme/hub/library/app/tags/list?last=beta', { token });
    assert.equal(afterLast.headers.get('link'), null, 'no n: the rest in one page');
    assert.deepEqual(((await afterLast.json()) as TagList).tags, ['latest', 'v1_2-rc.3']);
    // `last` need not be a tag of the list: the list goes on after where it would be.
    const between = await v2(server, 'acme/hub/library/app/tags/list?n=2&last=1.05', { token });
    assert.deepEqual(((await between.json()) as TagList).tags, ['1.1', '10']);
    const exact = await v2(server, `acme/hub/library/app/tags/list?n=${TAGS.length}`, { token });
    assert.equal(exact.headers.get('link'), null, 'n equal to the number of tags: no next page');
    assert.deepEqual(((await exact.json()) as TagList).tags, TAGS);
    const none = await v2(server, 'acme/hub/library/app/tags/list?n=0', { token });
    assert.deepEqual(((await none.json()) as TagList).tags, []);

    const bad = await v2(server, 'acme/hub/library/app/tags/list?n=-1', { token });
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'PAGINATION_NUMBER_INVALID');
  });

  it('answers NAME_UNKNOWN for a repository no upstream knows, and 401 with the pull scope without credentials', async () => {
    const unknown = await v2(server, 'acme/hub/library/nope/tags/list', { token });
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), 'NAME_UNKNOWN');
    const anonymous = await v2(server, 'acme/hub/library/app/tags/list', { token: null });
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /scope="repository:acme\/hub\/library\/app:pull"/);
    await anonymous.arrayBuffer();
  });

  it('with the upstream stopped, serves the last list with a Warning (to skopeo too)', async () => {
    await upstream.stop();
    const response = await v2(server, 'acme/hub/library/app/tags/list?n=4', { token });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('warning'), STALE_WARNING);
    assert.deepEqual(((await response.json()) as TagList).tags, TAGS.slice(0, 4));
    assert.equal(response.headers.get('link'), '</v2/acme/hub/library/app/tags/list?n=4&last=2.0>; rel="next"');
    const listed = await client.listTags('acme/hub/library/app');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(listed.tags, TAGS);
    // Never listed before: nothing to fall back on.
    const never = await v2(server, 'acme/hub/library/other/tags/list', { token });
    assert.equal(never.status, 503);
    assert.equal(await errorCode(never), 'UNAVAILABLE');
  });
});

describe('tags of several upstreams', () => {
  let paged: FakeRegistry;
  let second: FakeRegistry;
  let server: TestManifold;
  let token: string;
  const image = buildImage({ layerSizes: [64] });

  before(async () => {
    // The first upstream pages its list by 2 without being asked (as GHCR and others do).
    paged = await FakeRegistry.start({ tagsPageSize: 2 });
    second = await FakeRegistry.start();
    paged.addImage('team/app', image, ['1.0', '2.0', 'common', 'zeta', 'alpha']);
    second.addImage('team/app', image, ['common', '3.0', 'beta']);
    second.addImage('team/only-second', image, ['x']);
    ({ server, token } = await startCache([paged.url, second.url], { cache: { tagsTtlSeconds: 60 } }));
  });
  after(async () => {
    await server?.stop();
    await paged?.close();
    await second?.close();
  });

  it('merges the upstreams\' lists, each followed through its Link pages, de-duplicated and in lexical order', async () => {
    const response = await v2(server, 'acme/hub/team/app/tags/list', { token });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('warning'), null);
    assert.deepEqual(((await response.json()) as TagList).tags, ['1.0', '2.0', '3.0', 'alpha', 'beta', 'common', 'zeta']);
    assert.equal(paged.received('GET', '/v2/team/app/tags/list').length, 3, 'three pages of two from the first upstream');
    assert.equal(second.received('GET', '/v2/team/app/tags/list').length, 1);
    // A repository only the second upstream knows: the first one's 404 adds nothing.
    const only = await v2(server, 'acme/hub/team/only-second/tags/list', { token });
    assert.deepEqual(((await only.json()) as TagList).tags, ['x']);
  });

  it('keeps each upstream\'s list for tagsTtlSeconds: the next requests do not go upstream', async () => {
    const before = paged.requests.length + second.requests.length;
    const pages = await allPages(server, token, '/v2/acme/hub/team/app/tags/list?n=2');
    assert.deepEqual(pages.flat(), ['1.0', '2.0', '3.0', 'alpha', 'beta', 'common', 'zeta']);
    assert.equal(pages.length, 4);
    assert.equal(paged.requests.length + second.requests.length, before, 'answered from memory');
  });

  it('an upstream that fails with no list to fall back on: the others\' tags, with a Warning that the list may be incomplete', async () => {
    second.fault({ path: '/v2/team/new/tags/list', fault: { kind: 'status', status: 500, body: 'broken' } });
    paged.addImage('team/new', image, ['1']);
    second.addImage('team/new', image, ['2']);
    const response = await v2(server, 'acme/hub/team/new/tags/list', { token });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('warning'), PARTIAL_WARNING);
    assert.deepEqual(((await response.json()) as TagList).tags, ['1']);
  });
});
