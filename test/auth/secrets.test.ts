// Password hashes: what a login costs the server, and that hashes stored by earlier versions keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { hashPassword, verifyPassword } from '../../src/auth/secrets.ts';

const MiB = 1024 * 1024;

test('a password hash costs at most 16 MiB per check and verifies only its own password', async () => {
  const stored = await hashPassword('correct horse battery');
  const [scheme, n, r, p] = stored.split('$');
  assert.equal(scheme, 'scrypt');
  // scrypt holds 128·N·r bytes while it runs: each login in flight takes that much of the cache's memory.
  assert.ok(128 * Number(n) * Number(r) <= 16 * MiB, `N=${n} r=${r} needs ${(128 * Number(n) * Number(r)) / MiB} MiB`);
  assert.ok(Number(n) * Number(r) * Number(p) >= 2 ** 19, 'the work stays at OWASP level');
  assert.equal(await verifyPassword('correct horse battery', stored), true);
  assert.equal(await verifyPassword('correct horse batterY', stored), false);
  assert.notEqual(await hashPassword('correct horse battery'), stored, 'a fresh salt per hash');
});

test('a hash stored with the earlier parameters (N=2^17, r=8, p=1) still verifies', async () => {
  const salt = randomBytes(16);
  const hash = scryptSync('an older password', salt, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * MiB });
  const stored = ['scrypt', 2 ** 17, 8, 1, salt.toString('base64'), hash.toString('base64')].join('$');
  assert.equal(await verifyPassword('an older password', stored), true);
  assert.equal(await verifyPassword('another password', stored), false);
});

test('a stored hash that is not a scrypt hash never verifies', async () => {
  for (const stored of ['', 'scrypt', 'bcrypt$2$3$4$c2FsdA==$aGFzaA==', 'scrypt$16384$8$5$$']) {
    assert.equal(await verifyPassword('anything', stored), false, stored);
  }
});
