import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CredentialsCipher } from '../../src/auth/credentials-cipher.ts';

const key = randomBytes(32);

test('encrypts to a versioned base64 of iv|tag|ciphertext that decrypts back', () => {
  const cipher = new CredentialsCipher(key);
  for (const plain of ['s3cr3t-password', 'ünïcødé 🔑', 'x'.repeat(5000), '']) {
    const stored = cipher.encrypt(plain);
    assert.match(stored, /^v1:[A-Za-z0-9+/]+=*$/);
    assert.ok(!stored.includes(plain) || plain === '');
    assert.equal(Buffer.from(stored.slice(3), 'base64').length, 12 + 16 + Buffer.byteLength(plain));
    assert.equal(cipher.decrypt(stored), plain);
  }
});

test('the same password encrypts differently each time (random IV)', () => {
  const cipher = new CredentialsCipher(key);
  const first = cipher.encrypt('same');
  const second = cipher.encrypt('same');
  assert.notEqual(first, second);
  assert.notEqual(first.slice(3, 19), second.slice(3, 19));
});

test('a tampered value throws instead of decrypting to something else', () => {
  const cipher = new CredentialsCipher(key);
  const stored = cipher.encrypt('the password');
  const bytes = Buffer.from(stored.slice(3), 'base64');
  for (const index of [0, 12, 28, bytes.length - 1]) {
    const tampered = Buffer.from(bytes);
    tampered[index] ^= 0x01;
    assert.throws(() => cipher.decrypt(`v1:${tampered.toString('base64')}`), `byte ${index}`);
  }
  assert.throws(() => cipher.decrypt(`v1:${bytes.subarray(0, 20).toString('base64')}`), /truncated/);
});

test('another key, an unknown version or no version throws', () => {
  const stored = new CredentialsCipher(key).encrypt('the password');
  assert.throws(() => new CredentialsCipher(randomBytes(32)).decrypt(stored));
  assert.throws(() => new CredentialsCipher(key).decrypt(`v2:${stored.slice(3)}`), /version/);
  assert.throws(() => new CredentialsCipher(key).decrypt(stored.slice(3)), /version/);
});

test('refuses a key that is not 32 bytes', () => {
  assert.throws(() => new CredentialsCipher(randomBytes(16)), /32 bytes/);
  assert.throws(() => new CredentialsCipher(Buffer.alloc(0)), /32 bytes/);
});

test('error messages never contain the plaintext', () => {
  const cipher = new CredentialsCipher(key);
  const stored = cipher.encrypt('hunter2-secret');
  try {
    new CredentialsCipher(randomBytes(32)).decrypt(stored);
    assert.fail('decrypt with another key must throw');
  } catch (error) {
    assert.ok(!String((error as Error).message).includes('hunter2-secret'));
  }
});
