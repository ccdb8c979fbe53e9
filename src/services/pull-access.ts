// Who may read a repository through /v2 (DESIGN §3.1 step 1), shared by every read of a repository:
// manifests and blobs (pull.ts), referrers (referrers.ts) and tags (tags.ts).
import { can, canSee } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { parseRepositoryName } from './pull/access.ts';
import type { RepositoryName } from './pull/access.ts';
import type { PullRegistry, RegistryService } from './registries.ts';

export interface RepositoryAccess {
  name: RepositoryName;
  registry: PullRegistry;
}

/** A registry token (JWT) must list the pull of this repository; other credentials carry no such list. */
export function tokenGrantsPull(actor: Actor, repository: string): boolean {
  if (!('registryAccess' in actor) || actor.registryAccess === undefined) return true;
  return actor.registryAccess.some((entry) => entry.type === 'repository' && entry.name === repository && entry.actions.includes('pull'));
}

/**
 * Those who may not know the group get not_found, as if it did not exist; those who may see it but not
 * pull (a token without the read_virtual_registry scope) get forbidden; a registry token for other
 * repositories is unauthorized (the client should ask for a token with this scope).
 */
export async function authorizeRepository(registries: Pick<RegistryService, 'findForPull'>, actor: Actor, repository: string): Promise<Result<RepositoryAccess>> {
  // Anonymous callers only where the /v2 layer let them in (the registry's anonymous_pull, its networks).
  if (actor.kind === 'anonymous' && !actor.anonymousPull) return err('unauthorized', 'authentication required');
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
