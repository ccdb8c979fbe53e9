// Every error in the right format (issue 14): what no route answers, what Fastify refuses before a route
// runs and what Node's HTTP parser refuses before Fastify sees it gets an OCI error body (with
// Docker-Distribution-Api-Version) on /v2 and /auth/token, problem+json on /api/v1 and elsewhere; and a
// 429 of the upstreams passed on to a client carries Retry-After. Raw requests, so any byte can be sent.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRegistry } from '../helpers/fake-registry.ts';
import { basicToken, startCache } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { jsonOf, rawRequest } from '../helpers/raw-http.ts';
import type { RawAnswer, RawRequest } from '../helpers/raw-http.ts';

const ADMIN = `Basic ${Buffer.from('admin:admin-password-for-tests').toString('base64')}`;

function assertOci(answer: RawAnswer, status: number, what: string, v2 = true): void {
  assert.equal(answer.status, status, `${what}: ${answer.body}`);
  assert.match(answer.headers['content-type'] ?? '', /^application\/json/, what);
  const body = jsonOf(answer) as { errors?: { code: string; message: string }[] };
  assert.ok(Array.isArray(body?.errors) && typeof body.errors[0].code === 'string' && typeof body.errors[0].message === 'string', `${what}: an OCI error body: ${answer.body}`);
  if (v2) assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0', what);
}

function assertProblem(answer: RawAnswer, status: number, what: string): void {
  assert.equal(answer.status, status, `${what}: ${answer.body}`);
  assert.match(answer.headers['content-type'] ?? '', /^application\/problem\+json/, what);
  const body = jsonOf(answer) as { status?: number; type?: string; detail?: string };
  assert.equal(body?.status, status, what);
  assert.equal(typeof body.type, 'string', what);
  assert.equal(typeof body.detail, 'string', what);
}

describe('errors no route answers', () => {
  let upstream: FakeRegistry;
  let server: TestManifold;
  let token: string;
  let port: number;
  const send = (request: RawRequest) => rawRequest(port, request);

  before(async () => {
    upstream = await FakeRegistry.start();
    upstream.addImage('library/app', buildImage({ layerSizes: [100] }), ['v1']);
    ({ server, token } = await startCache([upstream.url]));
    port = Number(new URL(server.url).port);
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('answers unrouted methods on /v2 and /auth/token with 405, Allow and an OCI error', async () => {
    for (const [method, target] of [['OPTIONS', '/v2/'], ['OPTIONS', '/v2/acme/hub/library/app/manifests/v1'], ['TRACE', '/v2/acme/hub/library/app/blobs/sha256:0'], ['PROPFIND', '/v2/']]) {
      const answer = await send({ method, target });
      assertOci(answer, 405, `${method} ${target}`);
      assert.equal(answer.headers.allow, 'GET, HEAD');
    }
    for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const answer = await send({ method, target: '/auth/token' });
      assertOci(answer, 405, `${method} /auth/token`, false);
      assert.equal(answer.headers.allow, 'GET, POST');
    }
  });

  it('answers invalid percent-encoding in each protocol\'s format', async () => {
    assertOci(await send({ target: '/v2/acme/hub/%FF/manifests/v1' }), 400, '/v2 with %FF');
    assertOci(await send({ target: '/v2/acme/hub/app/manifests/%zz' }), 400, '/v2 with %zz');
    assertProblem(await send({ target: '/api/v1/groups/%E0%A4%A' }), 400, '/api/v1 with a cut sequence');
    assertProblem(await send({ target: '/%zz' }), 400, 'elsewhere');
  });

  it('answers what the HTTP parser refuses (400, 431) in the format of the path the request line names', async () => {
    const bigHeader = { 'x-padding': 'a'.repeat(20_000) };
    assertOci(await send({ target: '/v2/', headers: bigHeader }), 431, '/v2 headers too large');
    assertProblem(await send({ target: '/api/v1/user', headers: bigHeader }), 431, '/api/v1 headers too large');
    assertOci(await send({ target: '/v2/', raw: Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n') }), 400, '/v2 malformed header');
    assertOci(await send({ target: '/v2/', raw: Buffer.from('BREW /v2/ HTTP/1.1\r\nHost: x\r\n\r\n') }), 400, '/v2 unknown method');
    assertProblem(await send({ target: '/', raw: Buffer.from('GET /api/v1/user HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n') }), 400, '/api/v1 two lengths');
  });

  it('answers body-size and content-type refusals in each protocol\'s format', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    assertOci(await send({ method: 'POST', target: '/auth/token', headers: form, body: `username=a&password=${'x'.repeat(20_000)}` }), 413, '/auth/token body too large', false);
    assertOci(await send({ method: 'POST', target: '/auth/token', headers: { 'content-type': 'application/xml' }, body: '<grant/>' }), 415, '/auth/token unknown content type', false);
    const json = { 'content-type': 'application/json', authorization: ADMIN };
    assertProblem(await send({ method: 'POST', target: '/api/v1/groups', headers: json, body: JSON.stringify({ path: 'x'.repeat(2_000_000) }) }), 413, '/api/v1 body too large');
    assertOci(await send({ method: 'PUT', target: '/v2/acme/hub/library/app/manifests/v1', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(2_000_000) }), 405, '/v2 push of a large body');
  });

  it('passes a 429 of the upstream on with Retry-After (the upstream\'s, or a default)', async () => {
    const authorization = basicToken(token);
    upstream.fault({ path: '/v2/library/app/manifests/v2', fault: { kind: 'status', status: 429, headers: { 'retry-after': '120' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' } });
    const named = await send({ target: '/v2/acme/hub/library/app/manifests/v2', headers: { authorization } });
    assertOci(named, 429, 'upstream 429 with Retry-After');
    assert.equal(named.headers['retry-after'], '120');
    upstream.fault({ path: '/v2/library/app/manifests/v3', fault: { kind: 'status', status: 429 } });
    const unnamed = await send({ target: '/v2/acme/hub/library/app/manifests/v3', headers: { authorization } });
    assertOci(unnamed, 429, 'upstream 429 without Retry-After');
    assert.ok(Number(unnamed.headers['retry-after']) > 0, `Retry-After ${unnamed.headers['retry-after']}`);
  });
});
