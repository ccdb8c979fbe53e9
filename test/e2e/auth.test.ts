// Who may pull (DESIGN §3.1 step 1-2, §5), with skopeo and raw /v2 requests against a real Distribution:
// the Bearer challenge, members and outsiders, deploy tokens, token scopes, registry token scopes, and
// names, tags and digests that are not valid.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { v2 } from '../helpers/e2e.ts';

const REPOSITORY = 'acme/hub/library/app';
const OUTSIDER = { username: 'outsider', password: 'outsider-password-1' };
const MEMBER = { username: 'member', password: 'member-password-12' };

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0].code;
}

/** A registry token from /auth/token for these scopes, asked with Basic credentials. */
async function registryToken(server: TestManifold, authorization: string, scopes: string[]): Promise<string> {
  const query = new URLSearchParams([['service', 'manifold'], ...scopes.map((scope): [string, string] => ['scope', scope])]);
  const response = await fetch(`${server.url}/auth/token?${query}`, { headers: { authorization } });
  assert.equal(response.status, 200);
  return ((await response.json()) as { token: string }).token;
}

describe('pull permissions', () => {
  const image = buildImage({ layerSizes: [1024] });
  let upstream: Distribution;
  let server: TestManifold;
  let clients: SkopeoClient[] = [];
  let adminToken: string;
  let deployToken: string;
  let otherGroupDeployToken: string;
  let readApiToken: string;

  const basicPassword = (user: { username: string; password: string }) => `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
  const skopeoAs = async (username: string, secret: string) => {
    const client = new SkopeoClient(server.host);
    clients.push(client);
    const login = await client.login(username, secret);
    assert.equal(login.code, 0, login.stderr);
    return client;
  };

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: '1' });
    server = await startManifold();
    const { group } = await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    const other = await createVirtualRegistry(server, { group: 'other', registry: 'hub', upstreamUrls: [upstream.url] });
    const services = server.manifold.services;
    unwrap(await services.users.create(server.admin, OUTSIDER));
    unwrap(await services.users.create(server.admin, MEMBER));
    unwrap(await services.memberships.add(server.admin, { group_id: group.id, username: MEMBER.username, role: 'guest' }));
    adminToken = await personalToken(server);
    readApiToken = await personalToken(server, ['read_api']);
    deployToken = unwrap(await services.tokens.createDeployToken(server.admin, { group_id: group.id, name: 'ci' })).token;
    otherGroupDeployToken = unwrap(await services.tokens.createDeployToken(server.admin, { group_id: other.group.id, name: 'ci' })).token;
  });
  after(async () => {
    for (const client of clients) client.cleanup();
    clients = [];
    await server?.stop();
    await upstream?.stop();
  });

  it('asks for credentials with the Bearer challenge', async () => {
    const base = await v2(server, '', { token: null });
    assert.equal(base.status, 401);
    assert.equal(base.headers.get('www-authenticate'), `Bearer realm="${server.url}/auth/token",service="manifold"`);
    assert.equal(await errorCode(base), 'UNAUTHORIZED');
    const manifest = await v2(server, `${REPOSITORY}/manifests/1`, { token: null });
    assert.equal(manifest.status, 401);
    assert.equal(manifest.headers.get('www-authenticate'), `Bearer realm="${server.url}/auth/token",service="manifold",scope="repository:${REPOSITORY}:pull"`);
    assert.equal(await errorCode(manifest), 'UNAUTHORIZED');
    const wrong = await v2(server, `${REPOSITORY}/manifests/1`, { token: 'mfpat_not-a-real-token' });
    assert.equal(wrong.status, 401);
  });

  it('answers a valid user who is not a member as if the registry did not exist', async () => {
    const byPassword = await fetch(`${server.url}/v2/${REPOSITORY}/manifests/1`, { headers: { authorization: basicPassword(OUTSIDER) } });
    assert.equal(byPassword.status, 404);
    assert.equal(await errorCode(byPassword), 'NAME_UNKNOWN');
    // The docker login flow: the token server grants nothing, and the pull is still a 404, not a 401.
    const jwt = await registryToken(server, basicPassword(OUTSIDER), [`repository:${REPOSITORY}:pull`]);
    const byJwt = await fetch(`${server.url}/v2/${REPOSITORY}/blobs/${image.layers[0].digest}`, { headers: { authorization: `Bearer ${jwt}` } });
    assert.equal(byJwt.status, 404);
    assert.equal(await errorCode(byJwt), 'NAME_UNKNOWN');
    const copy = await (await skopeoAs(OUTSIDER.username, OUTSIDER.password)).copy(REPOSITORY, '1');
    assert.notEqual(copy.code, 0);

    // A member with only the guest role pulls.
    const member = await (await skopeoAs(MEMBER.username, MEMBER.password)).copy(REPOSITORY, '1');
    assert.equal(member.code, 0, member.stderr);
    assert.equal(member.layout!.topDigest, image.manifest.digest);
  });

  it('lets a deploy token with read_virtual_registry pull, in its own group only', async () => {
    const copy = await (await skopeoAs('deployer', deployToken)).copy(REPOSITORY, '1');
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(copy.layout!.topDigest, image.manifest.digest);
    const elsewhere = await v2(server, `${REPOSITORY}/manifests/1`, { token: otherGroupDeployToken });
    assert.equal(elsewhere.status, 404);
    assert.equal(await errorCode(elsewhere), 'NAME_UNKNOWN');
  });

  it('does not let a personal token with only read_api pull', async () => {
    const copy = await (await skopeoAs('admin', readApiToken)).copy(REPOSITORY, '1');
    assert.notEqual(copy.code, 0);
    const raw = await v2(server, `${REPOSITORY}/manifests/1`, { token: readApiToken, headers: { accept: OCI_MANIFEST } });
    assert.equal(raw.status, 403);
    assert.equal(await errorCode(raw), 'DENIED');
  });

  it('refuses a registry token issued for another repository with insufficient_scope', async () => {
    const jwt = await registryToken(server, basicToken(adminToken), ['repository:acme/hub/library/other:pull']);
    const refused = await fetch(`${server.url}/v2/${REPOSITORY}/manifests/1`, { headers: { authorization: `Bearer ${jwt}`, accept: OCI_MANIFEST } });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), `Bearer realm="${server.url}/auth/token",service="manifold",scope="repository:${REPOSITORY}:pull",error="insufficient_scope"`);
    assert.equal(await errorCode(refused), 'UNAUTHORIZED');
    const right = await registryToken(server, basicToken(adminToken), [`repository:${REPOSITORY}:pull`]);
    const granted = await fetch(`${server.url}/v2/${REPOSITORY}/manifests/1`, { headers: { authorization: `Bearer ${right}`, accept: OCI_MANIFEST } });
    assert.equal(granted.status, 200);
    assert.equal(granted.headers.get('docker-content-digest'), image.manifest.digest);
  });

  it('answers invalid names and digests with 400 and the OCI code, a malformed tag with 404 (the spec allows no other)', async () => {
    const cases: [string, number, string][] = [
      ['acme/hub/library/App/manifests/1', 400, 'NAME_INVALID'],
      ['acme/hub/manifests/1', 400, 'NAME_INVALID'],
      ['acme/hub/library/app/manifests/-bad', 404, 'MANIFEST_UNKNOWN'],
      [`acme/hub/library/app/manifests/${'t'.repeat(129)}`, 404, 'MANIFEST_UNKNOWN'],
      ['acme/hub/library/app/manifests/sha256:1234', 400, 'DIGEST_INVALID'],
      ['acme/hub/library/app/blobs/sha256:xyz', 400, 'DIGEST_INVALID'],
      ['acme/hub/library/app/blobs/latest', 400, 'DIGEST_INVALID'],
    ];
    for (const [path, status, code] of cases) {
      const response = await v2(server, path, { token: adminToken });
      assert.equal(response.status, status, path);
      assert.equal(await errorCode(response), code, path);
    }
  });
});
