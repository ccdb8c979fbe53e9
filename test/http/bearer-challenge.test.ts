// The Bearer challenge of /v2 (DESIGN §3.1, §5): built only from a validated repository name, its values
// escaped, and its realm never taken from an arbitrary Host header (a forged Host would send the next
// client's credentials elsewhere). Raw requests, so that any byte can be put in the path or the Host.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bearerChallenge } from '../../src/http/request-auth.ts';
import { startManifold } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { jsonOf, rawRequest } from '../helpers/raw-http.ts';

const portOf = (server: TestManifold) => Number(new URL(server.url).port);

describe('the challenge of a 401 on /v2', () => {
  let server: TestManifold;
  before(async () => {
    server = await startManifold();
  });
  after(() => server?.stop());

  it('answers 400 NAME_INVALID in the OCI format for a name with a NUL, a control character or a character above U+00FF', async () => {
    for (const name of ['acme/hub/a%00b', 'acme/hub/%C4%80', 'acme/hub/%E2%80%A8x', 'acme/hub/a%0D%0Ab', 'acme/hub/%7F', 'acme/hub/%C3%A9']) {
      const answer = await rawRequest(portOf(server), { target: `/v2/${name}/manifests/latest` });
      assert.equal(answer.status, 400, name);
      assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0', name);
      assert.equal((jsonOf(answer) as { errors: { code: string }[] }).errors[0].code, 'NAME_INVALID', name);
      assert.equal(answer.headers['www-authenticate'], undefined, name);
    }
  });

  it('never lets a name add parameters to the challenge', async () => {
    const injected = 'acme/hub/x%22,realm=%22https:%2F%2Fevil.example.com%2Ftoken';
    const answer = await rawRequest(portOf(server), { target: `/v2/${injected}/manifests/latest` });
    assert.equal(answer.status, 400);
    assert.equal(answer.headers['www-authenticate'], undefined);
    const valid = await rawRequest(portOf(server), { target: '/v2/acme/hub/library/alpine/manifests/latest' });
    assert.equal(valid.status, 401);
    assert.equal(valid.all['www-authenticate'].length, 1);
    assert.equal((valid.headers['www-authenticate'].match(/realm=/g) ?? []).length, 1);
  });

  it('takes the realm from the address the client connected to, not from a forged Host', async () => {
    for (const host of ['evil.example.com', 'evil.example.com:443', 'x",realm="https://evil.example.com', '127.0.0.1:1']) {
      const answer = await rawRequest(portOf(server), { target: '/v2/', headers: { host } });
      assert.equal(answer.status, 401, host);
      assert.equal(answer.headers['www-authenticate'], `Bearer realm="${server.url}/auth/token",service="manifold"`, host);
    }
  });
});

describe('the realm with allowed hosts or a public URL', () => {
  let allowing: TestManifold;
  let public_: TestManifold;
  before(async () => {
    allowing = await startManifold({ server: { allowedHosts: ['cache.example.com', 'registry.example.com:8443'] } });
    public_ = await startManifold({ server: { publicUrl: 'https://registry.example.com/' } });
  });
  after(async () => {
    await allowing?.stop();
    await public_?.stop();
  });

  it('uses an allowed Host (any port when the entry names none), and the connection address for others', async () => {
    const realmFor = async (host: string) => (await rawRequest(portOf(allowing), { target: '/v2/', headers: { host } })).headers['www-authenticate'];
    assert.equal(await realmFor('cache.example.com'), 'Bearer realm="http://cache.example.com/auth/token",service="manifold"');
    assert.equal(await realmFor('CACHE.example.com:5000'), 'Bearer realm="http://CACHE.example.com:5000/auth/token",service="manifold"');
    assert.equal(await realmFor('registry.example.com:8443'), 'Bearer realm="http://registry.example.com:8443/auth/token",service="manifold"');
    assert.equal(await realmFor('registry.example.com:9000'), `Bearer realm="${allowing.url}/auth/token",service="manifold"`);
    assert.equal(await realmFor('evil.example.com'), `Bearer realm="${allowing.url}/auth/token",service="manifold"`);
  });

  it('uses server.publicUrl whatever the Host', async () => {
    const answer = await rawRequest(portOf(public_), { target: '/v2/', headers: { host: 'evil.example.com' } });
    assert.equal(answer.headers['www-authenticate'], 'Bearer realm="https://registry.example.com/auth/token",service="manifold"');
  });
});

it('escapes quotes and backslashes in every quoted value', () => {
  assert.equal(
    bearerChallenge({ realm: 'https://cache.example.com/auth/token', service: 'a "quoted" \\service', scope: 'repository:acme/hub/app:pull' }),
    'Bearer realm="https://cache.example.com/auth/token",service="a \\"quoted\\" \\\\service",scope="repository:acme/hub/app:pull"',
  );
});
