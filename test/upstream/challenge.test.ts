import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenges } from '../../src/upstream/challenge.ts';
import { isTrustedRealm } from '../../src/upstream/auth.ts';

describe('WWW-Authenticate parsing', () => {
  it('reads a Docker Hub Bearer challenge with quoted values', () => {
    const [challenge] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"');
    assert.deepEqual(challenge, {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
    });
  });

  it('keeps commas and escaped quotes inside quoted strings', () => {
    const [challenge] = parseChallenges('Bearer realm="https://a.example/token",scope="repository:x:pull,push",error_description="say \\"hi\\", please"');
    assert.equal(challenge.params.scope, 'repository:x:pull,push');
    assert.equal(challenge.params.error_description, 'say "hi", please');
  });

  it('splits several challenges in one header and across headers', () => {
    const challenges = parseChallenges(['Basic realm="r1", Bearer realm="https://t.example/token", service=svc', 'Negotiate abc=, Basic']);
    assert.deepEqual(challenges.map((c) => c.scheme), ['basic', 'bearer', 'negotiate', 'basic']);
    assert.equal(challenges[0].params.realm, 'r1');
    assert.equal(challenges[1].params.service, 'svc');
    assert.equal(challenges[2].token68, 'abc=');
    assert.equal(challenges[3].scheme, 'basic');
  });

  it('accepts unquoted values, odd spacing and case in names', () => {
    const [challenge] = parseChallenges('BEARER  Realm = https://t.example/token ,Service=reg');
    assert.equal(challenge.scheme, 'bearer');
    assert.deepEqual(challenge.params, { realm: 'https://t.example/token', service: 'reg' });
  });

  it('survives garbage without throwing', () => {
    for (const value of ['', ',,,', '"', 'Bearer realm="unterminated', '=== ,', 'Basic', undefined]) {
      assert.doesNotThrow(() => parseChallenges(value));
    }
    assert.deepEqual(parseChallenges('Basic'), [{ scheme: 'basic', params: {} }]);
  });
});

describe('token realm trust boundary', () => {
  const trusted = (realm: string, upstream: string) => isTrustedRealm(new URL(realm), new URL(upstream));

  it('trusts the same host on any port and the same registrable domain', async () => {
    assert.equal(await trusted('http://127.0.0.1:9000/token', 'http://127.0.0.1:5000'), true);
    assert.equal(await trusted('https://auth.docker.io/token', 'https://registry-1.docker.io'), true);
    assert.equal(await trusted('https://ghcr.io/token', 'https://ghcr.io'), true);
  });

  it('does not trust another domain, another IP, localhost for an IP, or a shared public suffix', async () => {
    assert.equal(await trusted('https://auth.evil.example/token', 'https://registry.example.org'), false);
    assert.equal(await trusted('http://127.0.0.2/token', 'http://127.0.0.1'), false);
    assert.equal(await trusted('http://localhost/token', 'http://127.0.0.1'), false);
    assert.equal(await trusted('https://evil.github.io/token', 'https://registry.github.io'), false);
    assert.equal(await trusted('https://auth.co.uk/token', 'https://registry.co.uk'), false);
  });

  it('never sends the credentials of an https upstream to a plain-http realm', async () => {
    assert.equal(await trusted('http://auth.docker.io/token', 'https://registry-1.docker.io'), false);
  });
});
