// DESIGN §3.1 step 2: whether the request names an object at all (the OCI grammar of repository names,
// tags and digests), before anything asks the cache or an upstream. Who may pull (step 1) is
// ../pull-access.ts, shared with referrers and tags.
import { isValidName, parseDigest, parseReference } from '../../oci/reference.ts';
import { invalid } from '../../result.ts';
import type { Err } from '../../result.ts';
import type { PullRegistry } from '../registries.ts';

export interface RepositoryName {
  groupPath: string;
  registryName: string;
  /** The image as upstreams know it, e.g. `library/alpine`. */
  image: string;
}

export type { PullRegistry };
export type PullUpstream = PullRegistry['upstreams'][number];

/** `<group>/<registry>/<image>`: three components at least. */
export function parseRepositoryName(name: string): RepositoryName | null {
  if (!isValidName(name)) return null;
  const [groupPath, registryName, ...image] = name.split('/');
  if (image.length === 0) return null;
  return { groupPath, registryName, image: image.join('/') };
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
