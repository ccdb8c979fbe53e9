// The address rule of private upstreams (DESIGN §3.4) on IPv6 forms that embed an IPv4 address: a
// translator or tunnel may deliver them to that address, so a private one inside is refused at save
// time and at connect time, exactly like the plain IPv4 address. No test here opens a socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { isPublicAddress } from '../../src/upstream/address-policy.ts';
import { checkedLookup } from '../../src/upstream/dispatcher.ts';
import type { LookupFunction } from '../../src/upstream/dispatcher.ts';
import { checkUpstreamUrl } from '../../src/upstream/url.ts';

/** Each form with 127.0.0.1, 10.0.0.1 or 169.254.169.254 inside it. */
const EMBEDDING_PRIVATE = {
  'IPv4-compatible, dotted': '::127.0.0.1',
  'IPv4-compatible, hex': '::7f00:1',
  'IPv4-compatible, metadata': '::169.254.169.254',
  'IPv4-mapped': '::ffff:10.0.0.1',
  'IPv4-mapped, hex': '::ffff:7f00:1',
  'SIIT': '::ffff:0:7f00:1',
  'NAT64': '64:ff9b::127.0.0.1',
  'NAT64, hex': '64:ff9b::a00:1',
  'NAT64, local-use prefix': '64:ff9b:1::a00:1',
  '6to4': '2002:7f00:1::1',
  '6to4, private network': '2002:a00:1::',
  'Teredo, server': '2001:0:7f00:1::1',
  'Teredo, client (inverted 127.0.0.1)': '2001:0:4136:e378:8000:63bf:80ff:fffe',
};

test('IPv6 forms that embed a private IPv4 address are not public', () => {
  for (const [form, address] of Object.entries(EMBEDDING_PRIVATE)) assert.equal(isPublicAddress(address), false, `${form}: ${address}`);
});

test('the translated forms of a public IPv4 address stay public, plain public IPv6 too', () => {
  for (const address of ['::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '64:ff9b::808:808', '2606:4700:4700::1111', '8.8.8.8']) {
    assert.equal(isPublicAddress(address), true, address);
  }
  // Deprecated tunnel forms reach no registry: refused whatever they carry.
  for (const address of ['::8.8.8.8', '2002:808:808::1']) assert.equal(isPublicAddress(address), false, address);
});

test('an upstream URL with such an address is refused when it is saved', async () => {
  for (const [form, address] of Object.entries(EMBEDDING_PRIVATE)) {
    const refused = await checkUpstreamUrl(`http://[${address}]:5000`, false);
    assert.equal(refused.ok, false, form);
    if (!refused.ok) assert.match(refused.message, /internal host/, form);
    assert.equal((await checkUpstreamUrl(`http://[${address}]:5000`, true)).ok, true, `${form}, private upstreams allowed`);
  }
});

test('a name that resolves to such an address is refused at connect time (DNS rebinding)', async () => {
  for (const [form, address] of Object.entries(EMBEDDING_PRIVATE)) {
    const answer: LookupFunction = (_hostname, _options, callback) => callback(null, [{ address, family: 6 } as LookupAddress]);
    const error = await new Promise<Error | null>((resolve) => checkedLookup(answer)('rebound.example.com', { all: true }, (failure) => resolve(failure)));
    assert.ok(error, `${form}: the lookup answer must be refused before any socket connects`);
    assert.match(error.message, /private, loopback or link-local address/, form);
  }
});
