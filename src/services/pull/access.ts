// DESIGN §3.1 steps 1-2: who may pull from a repository, and whether the request names an object at
// all (the OCI grammar of names, tags and digests), before anything asks the cache or an upstream.
import { can, canSee } from '../../auth/policy.ts';
import type { Actor } from '../../auth/policy.ts';
import { isValidName, parseDigest, parseReference } from '../../oci/reference.ts';
import { err, invalid, ok } from '../../result.ts';
import type { Err, Result } from '../../result.ts';
import type { RegistryService } from '../registries.ts';

export interface RepositoryName {
  groupPath: string;
  registryName: string;
  /** The image as upstreams know it, e.g. `library/alpine`. */
  image: string;
}

export type PullRegistry = NonNullable<Awaited<ReturnType<RegistryService['findForPull']>>>;
export type PullUpstream = PullRegistry['upstreams'][number];

/** `<group>/<registry>/<image>`: three components at least. */
export function parseRepositoryName(name: string): RepositoryName | null {
  if (!isValidName(name)) return null;
  const [groupPath, registryName, ...image] = name.split('/');
  if (image.length === 0) return null;
  return { groupPath, registryName, image: image.join('/') };
}

/** A registry token (JWT) must list the pull of this repository; other credentials carry no such list. */
function tokenGrantsPull(actor: Actor, repository: string): boolean {
  if (!('registryAccess' in actor) || actor.registryAccess === undefined) return true;
  return actor.registryAccess.some((entry) => entry.type === 'repository' && entry.name === repository && entry.actions.includes('pull'));
}

/**
 * Who may pull from this repository. Those who may not know the group get not_found, as if it did not
 * exist; those who may see it but not pull (a token without the read_virtual_registry scope) get
 * forbidden; a registry token for other repositories is unauthorized (the client should ask for a token
 * with this scope).
 */
export async function checkPullAccess(
  registries: Pick<RegistryService, 'findForPull'>,
  actor: Actor,
  repository: string,
): Promise<Result<{ name: RepositoryName; registry: PullRegistry }>> {
  if (actor.kind === 'anonymous') return err('unauthorized', 'authentication required');
  const name = parseRepositoryName(repository);
  if (!name) return invalid({ name: ['must be <group>/<registry>/<image> with lower-case components'] }, 'invalid repository name');
  const registry = await registries.findForPull(name.groupPath, name.registryName);
  const subject = registry ? { groupId: registry.group.id } : null;
  if (!registry || !subject || !can(actor, 'read_virtual_registry', subject)) {
    if (subject && canSee(actor, subject)) return err('forbidden', `these credentials may not pull from ${name.groupPath}/${name.registryName}: a token needs the read_virtual_registry scope`);
    return err('not_found', `repository ${repository} is not known to this registry`);
  }
  if (!tokenGrantsPull(actor, repository)) return err('unauthorized', `the registry token does not grant pull on ${repository}`);
  return ok({ name, registry });
}

/** The reference's grammar: a digest for blobs, a tag or digest for manifests. */
export function referenceError(kind: 'manifest' | 'blob', reference: string): Err | null {
  if (kind === 'blob') {
    return parseDigest(reference) ? null : invalid({ digest: ['must be sha256:<64 hex> or sha512:<128 hex>'] }, 'invalid digest');
  }
  if (parseReference(reference)) return null;
  return reference.includes(':')
    ? invalid({ digest: ['must be sha256:<64 hex> or sha512:<128 hex>'] }, 'invalid digest')
    : invalid({ reference: ['a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -'] }, 'invalid tag');
}
