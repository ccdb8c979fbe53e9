// Helpers for the identity tests: row counts (a refused call writes nothing), signing keys, actors.
import { generateKeyPair } from 'jose';
import type { Db } from '../../src/db/connect.ts';
import type { SigningKeys } from '../../src/auth/keys.ts';
import { RegistryTokens } from '../../src/auth/registry-tokens.ts';
import type { Actor } from '../../src/auth/policy.ts';

const TABLES = ['users', 'groups', 'memberships', 'access_tokens', 'audit_events'] as const;

/** Row counts of the identity tables; compare before and after a refused call. */
export async function countRows(db: Db): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const { n } = await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    counts[table] = Number(n);
  }
  return counts;
}

let counter = 0;
export const uniqueName = (prefix: string) => `${prefix}${process.pid}x${++counter}`;

export async function newSigningKeys(keyId = 'test-key'): Promise<SigningKeys> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, publicKey, keyId };
}

export function newRegistryTokens(keys: SigningKeys, options: { issuer?: string; service?: string; ttlSeconds?: number; now?: () => number } = {}): RegistryTokens {
  return new RegistryTokens({ keys, issuer: options.issuer ?? 'manifold-test', service: options.service ?? 'registry.test', ttlSeconds: options.ttlSeconds ?? 300, now: options.now });
}

/** The same actor seen through the management API. */
export function onApi(actor: Actor): Actor {
  return actor.kind === 'user' || actor.kind === 'group_token' || actor.kind === 'deploy_token' ? { ...actor, channel: 'api' } : actor;
}
