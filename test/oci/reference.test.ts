import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPathComponent, isValidName, parseDigest, parseReference } from '../../src/oci/reference.ts';
import { acceptAllows } from '../../src/oci/media-types.ts';

const hex64 = 'a'.repeat(64);

test('repository names follow the distribution grammar', () => {
  for (const good of ['alpine', 'library/alpine', 'acme/hub/library/alpine', 'a.b_c__d-e--f/g']) assert.ok(isValidName(good), good);
  for (const bad of ['', 'Alpine', '/alpine', 'alpine/', 'a//b', '-a', 'a-', 'a..b', 'a___b', 'x'.repeat(256)]) assert.ok(!isValidName(bad), bad);
  assert.ok(isPathComponent('hub'));
  assert.ok(!isPathComponent('a/b'));
});

test('digests: sha256 and sha512 with the right hex length; other algorithms are refused', () => {
  assert.deepEqual(parseDigest(`sha256:${hex64}`), { algorithm: 'sha256', hex: hex64, value: `sha256:${hex64}` });
  assert.ok(parseDigest(`sha512:${'b'.repeat(128)}`));
  for (const bad of [`sha256:${hex64.slice(1)}`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, `sha384:${'a'.repeat(96)}`, 'sha256', `sha256:${hex64}x`]) {
    assert.equal(parseDigest(bad), null, bad);
  }
});

test('references are tags or digests', () => {
  assert.deepEqual(parseReference('3.20'), { kind: 'tag', tag: '3.20' });
  assert.equal(parseReference(`sha256:${hex64}`)?.kind, 'digest');
  assert.equal(parseReference('.hidden'), null);
  assert.equal(parseReference('x'.repeat(129)), null);
  assert.equal(parseReference('sha256:nothex'), null);
});

test('Accept: absent or wildcard allows everything; otherwise the media type must be listed', () => {
  const index = 'application/vnd.oci.image.index.v1+json';
  assert.ok(acceptAllows(undefined, index));
  assert.ok(acceptAllows('*/*', index));
  assert.ok(acceptAllows([`application/vnd.docker.distribution.manifest.v2+json`, `${index}; q=0.5`], index));
  assert.ok(!acceptAllows('application/vnd.docker.distribution.manifest.v2+json', index));
  assert.ok(acceptAllows(['', ' , '], index), 'an Accept that names nothing allows anything');
  assert.ok(acceptAllows('application/*', index));
  assert.ok(!acceptAllows(['', 'text/plain'], index));
});
