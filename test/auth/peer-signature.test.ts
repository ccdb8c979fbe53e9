// Requests between replicas are signed with the shared cluster secret: the right secret, method, path
// and a recent time pass; anything else is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signPeerRequest, verifyPeerRequest } from '../../src/auth/peer-signature.ts';

const SECRET = 'x'.repeat(40);
const PATH = '/cluster/v1/fills?key=1%3Alibrary%2Fapp%2Fblobs%2Fsha256%3Aab';

test('a request signed with the cluster secret is accepted; another secret, method, path or an old signature is not', () => {
  const now = 1_700_000_000_000;
  const header = signPeerRequest(SECRET, 'GET', PATH, now);
  assert.equal(verifyPeerRequest(SECRET, 'GET', PATH, header, now + 1_000), true);
  assert.equal(verifyPeerRequest('y'.repeat(40), 'GET', PATH, header, now), false, 'another secret');
  assert.equal(verifyPeerRequest(SECRET, 'HEAD', PATH, header, now), false, 'another method');
  assert.equal(verifyPeerRequest(SECRET, 'GET', PATH.replace('ab', 'cd'), header, now), false, 'another key');
  assert.equal(verifyPeerRequest(SECRET, 'GET', PATH, header, now + 61_000), false, 'a recorded request replayed a minute later');
  assert.equal(verifyPeerRequest(SECRET, 'GET', PATH, undefined, now), false, 'no header');
  assert.equal(verifyPeerRequest(SECRET, 'GET', PATH, `Bearer ${SECRET}`, now), false, 'the secret itself is no signature');
  assert.equal(verifyPeerRequest(SECRET, 'GET', PATH, header.replace(/.$/, '0'), now), false, 'a signature changed by one digit');
});
