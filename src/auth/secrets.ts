// Password hashing, token digests and constant-time comparison. scrypt runs on the password hashing pool
// (worker threads), never on libuv's thread pool; token digests are one SHA-256, on the calling thread.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { scryptOnPool } from './password-hashing.ts';

const scryptAsync = (password: string, salt: Buffer, keyLength: number, options: { N: number; r: number; p: number; maxmem: number }) =>
  scryptOnPool({ password, salt, keyLength, ...options });

// One of OWASP's equivalent scrypt settings: N=2^14, r=8, p=5. Memory is 128·N·r = 16 MiB per check
// (N=2^17, p=1 would take 128 MiB, most of a cache's memory, for each `docker login` in flight); the
// five passes keep the work. Hashes keep their parameters: older ones still verify, up to maxmem.
const SCRYPT = { N: 2 ** 14, r: 8, p: 5, maxmem: 256 * 1024 * 1024 };
const KEY_LENGTH = 32;

/** `scrypt$N$r$p$salt$hash`, base64 parts. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, KEY_LENGTH, SCRYPT);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem });
  return timingSafeEqual(actual, expected);
}

export const TOKEN_PREFIX = { personal: 'mfpat_', group: 'mfgat_', deploy: 'mfdt_' } as const;

/** A new token's plaintext: recognisable prefix + 32 random bytes (base64url). */
export function generateToken(kind: keyof typeof TOKEN_PREFIX): string {
  return TOKEN_PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** Tokens are stored only as their SHA-256 (hex); high-entropy secrets need no slow hash. */
export function tokenDigest(plaintext: string): string {
  return createHash('sha256').update(plaintext).digest('hex');
}

export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
