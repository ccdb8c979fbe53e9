import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { grantAccess, parseScopes } from '../../src/auth/registry-tokens.ts';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { ROLES } from '../../src/db/schema.ts';
import { userActor } from '../helpers/fixtures.ts';
import { newRegistryTokens, newSigningKeys } from '../helpers/identity.ts';

const ACME = 1;
const OTHER = 2;
const resolveGroup = async (path: string) => ({ acme: ACME, other: OTHER } as Record<string, number>)[path] ?? null;

test('an issued token verifies and carries issuer, audience, subject, validity, id and access', async () => {
  const keys = await newSigningKeys();
  const tokens = newRegistryTokens(keys, { ttlSeconds: 300 });
  const access = [{ type: 'repository' as const, name: 'acme/hub/library/alpine', actions: ['pull'] }];
  const issued = await tokens.issue(userActor(5, [[ACME, ROLES.guest]]), access);
  assert.equal(issued.expiresIn, 300);
  assert.ok(Math.abs(Date.parse(issued.issuedAt) - Date.now()) < 60_000);
  const claims = decodeJwt(issued.token);
  assert.equal(claims.iss, 'manifold-test');
  assert.equal(claims.aud, 'registry.test');
  assert.equal(claims.sub, 'user:5');
  assert.equal((claims.exp as number) - (claims.iat as number), 300);
  assert.equal(claims.nbf, claims.iat);
  assert.equal(typeof claims.jti, 'string');
  assert.deepEqual(claims.access, access);
  assert.equal(decodeProtectedHeader(issued.token).kid, keys.keyId);
  const verified = await tokens.verify(issued.token);
  assert.ok(verified.ok);
  assert.deepEqual(verified.value, { subject: { kind: 'user', id: 5, tokenId: null }, access });
  const second = await tokens.issue(userActor(5), []);
  assert.notEqual(decodeJwt(second.token).jti, claims.jti);
});

test('subjects of personal, group and deploy tokens and of anonymous callers survive the round trip', async () => {
  const tokens = newRegistryTokens(await newSigningKeys());
  const grant = { id: 9, scopes: ['api' as const], expiresAt: null, revokedAt: null };
  const cases: [Actor, unknown][] = [
    [userActor(5, [], { scopes: ['read_virtual_registry'] }), { kind: 'user', id: 5, tokenId: 1 }],
    [{ kind: 'group_token', groupId: ACME, accessLevel: ROLES.developer, token: grant, channel: 'registry' }, { kind: 'group_token', id: 9 }],
    [{ kind: 'deploy_token', groupId: ACME, token: grant, channel: 'registry' }, { kind: 'deploy_token', id: 9 }],
    [ANONYMOUS, { kind: 'anonymous' }],
  ];
  for (const [actor, subject] of cases) {
    const verified = await tokens.verify((await tokens.issue(actor, [])).token);
    assert.ok(verified.ok);
    assert.deepEqual(verified.value.subject, subject);
  }
});

test('expired, forged, tampered, foreign-audience and foreign-issuer tokens are refused', async () => {
  const keys = await newSigningKeys();
  const tokens = newRegistryTokens(keys);
  const actor = userActor(5);

  const anHourAgo = newRegistryTokens(keys, { ttlSeconds: 300, now: () => Date.now() - 3600_000 });
  const expired = await tokens.verify((await anHourAgo.issue(actor, [])).token);
  assert.equal(!expired.ok && expired.reason, 'unauthorized');

  const notYet = newRegistryTokens(keys, { now: () => Date.now() + 3600_000 });
  assert.equal((await tokens.verify((await notYet.issue(actor, [])).token)).ok, false);

  const otherKey = newRegistryTokens(await newSigningKeys(keys.keyId));
  assert.equal((await tokens.verify((await otherKey.issue(actor, [])).token)).ok, false);

  const genuine = (await tokens.issue(actor, [])).token;
  const [header, , signature] = genuine.split('.');
  const widened = Buffer.from(JSON.stringify({ ...decodeJwt(genuine), access: [{ type: 'repository', name: 'other/hub/x', actions: ['pull'] }] })).toString('base64url');
  assert.equal((await tokens.verify(`${header}.${widened}.${signature}`)).ok, false);

  const otherService = newRegistryTokens(keys, { service: 'someone-else' });
  assert.equal((await tokens.verify((await otherService.issue(actor, [])).token)).ok, false);
  const otherIssuer = newRegistryTokens(keys, { issuer: 'someone-else' });
  assert.equal((await tokens.verify((await otherIssuer.issue(actor, [])).token)).ok, false);

  for (const garbage of ['', 'not.a.jwt', 'mfpat_abc', `${header}.e30.${signature}`]) {
    assert.equal((await tokens.verify(garbage)).ok, false, garbage);
  }
});

test('scope parameters: repository scopes, several per parameter, names with slashes, unknown types ignored', () => {
  assert.deepEqual(parseScopes([
    'repository:acme/hub/library/alpine:pull',
    'repository:acme/hub/library/alpine:push repository:acme/ghcr/org/app:pull,push',
    'registry:catalog:*',
    'repository(plugin):acme/hub/x:pull',
    'repository:localhost:5000/acme/hub/x:pull',
    'repository::pull',
    'repository:acme/hub/y:',
    'garbage',
  ]), [
    { type: 'repository', name: 'acme/hub/library/alpine', actions: ['pull', 'push'] },
    { type: 'repository', name: 'acme/ghcr/org/app', actions: ['pull', 'push'] },
    { type: 'repository', name: 'localhost:5000/acme/hub/x', actions: ['pull'] },
  ]);
  assert.deepEqual(parseScopes([]), []);
});

test('grants pull only, only on groups the actor may read through the registry', async () => {
  const requested = parseScopes([
    'repository:acme/hub/library/alpine:pull,push',
    'repository:other/hub/library/alpine:pull',
    'repository:unknown/hub/library/alpine:pull',
    'repository:acme/hub:pull',
    'repository:acme/hub/library/nginx:push',
    'repository:acme/hub/library/busybox:*',
  ]);
  const acmeAlpine = { type: 'repository', name: 'acme/hub/library/alpine', actions: ['pull'] };
  const acmeBusybox = { type: 'repository', name: 'acme/hub/library/busybox', actions: ['pull'] };

  assert.deepEqual(await grantAccess(userActor(5, [[ACME, ROLES.guest]]), requested, resolveGroup), [acmeAlpine, acmeBusybox]);
  assert.deepEqual(await grantAccess(userActor(5), requested, resolveGroup), [], 'non-member');
  assert.deepEqual(await grantAccess(ANONYMOUS, requested, resolveGroup), []);
  assert.equal((await grantAccess(userActor(6, [], { admin: true }), requested, resolveGroup)).length, 3, 'admins pull from every group');
  assert.deepEqual(await grantAccess(userActor(5, [[ACME, ROLES.owner]], { scopes: ['read_api'] }), requested, resolveGroup), [], 'read_api does not pull');
  assert.deepEqual(await grantAccess(userActor(5, [[ACME, ROLES.guest]], { scopes: ['read_virtual_registry'], channel: 'api' }), requested, resolveGroup), [acmeAlpine, acmeBusybox]);
  const deploy: Actor = { kind: 'deploy_token', groupId: OTHER, token: { id: 3, scopes: ['read_virtual_registry'], expiresAt: null, revokedAt: null }, channel: 'registry' };
  assert.deepEqual(await grantAccess(deploy, requested, resolveGroup), [{ type: 'repository', name: 'other/hub/library/alpine', actions: ['pull'] }]);
});
