// Helpers for the identity tests: row counts (a refused call writes nothing), signing keys, actors.
import { generateKeyPair } from 'jose';
import type { SigningKeys } from '../../src/auth/keys.ts';
import { RegistryTokens } from '../../src/auth/registry-tokens.ts';
import type { Actor } from '../../src/auth/policy.ts';



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
