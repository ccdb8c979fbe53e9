// Reading upstreams' `Link` headers (RFC 8288) and following them only on the same endpoint.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nextLinkHeader, nextLinkTarget, nextPageQuery } from '../../src/oci/link.ts';

describe('Link headers', () => {
  it('finds the rel="next" link among others, quoted or not, in one value or several', () => {
    assert.equal(nextLinkTarget('</v2/a/tags/list?n=2&last=b>; rel="next"'), '/v2/a/tags/list?n=2&last=b');
    assert.equal(nextLinkTarget('<https://x/prev>; rel="prev", <https://x/next?a=1,2>; rel=next'), 'https://x/next?a=1,2');
    assert.equal(nextLinkTarget(['<https://x/first>; rel="first"', '<https://x/n>; title="t"; rel="last next"']), 'https://x/n');
    assert.equal(nextLinkTarget('<https://x/prev>; rel="prev"'), null);
    assert.equal(nextLinkTarget(undefined), null);
    assert.equal(nextLinkTarget('garbage'), null);
  });

  it('follows a next link only on the same origin and path, and returns its query', () => {
    const endpoint = new URL('https://registry.example/v2/library/app/tags/list');
    assert.equal(nextPageQuery('</v2/library/app/tags/list?n=2&last=b>; rel="next"', endpoint)?.toString(), 'n=2&last=b');
    assert.equal(nextPageQuery('<https://registry.example/v2/library/app/tags/list?last=c>; rel="next"', endpoint)?.get('last'), 'c');
    assert.equal(nextPageQuery('</v2/library/other/tags/list?n=2>; rel="next"', endpoint), null, 'another repository');
    assert.equal(nextPageQuery('<https://elsewhere.example/v2/library/app/tags/list?n=2>; rel="next"', endpoint), null, 'another host');
    assert.equal(nextPageQuery('</v2/library/app/tags/list/../../../other/manifests/x?n=2>; rel="next"', endpoint), null, 'dot segments resolve elsewhere');
    assert.equal(nextPageQuery('</v2/library/app/tags/%E0%A4%A>; rel="next"', endpoint), null, 'undecodable path');
  });

  it('writes our own next link as a path with its query', () => {
    assert.equal(nextLinkHeader('/v2/a/b/c/tags/list', new URLSearchParams({ n: '2', last: 'x y' })), '</v2/a/b/c/tags/list?n=2&last=x+y>; rel="next"');
  });
});
