// Manifest media types (PROTOCOL.md "Manifests and content negotiation").

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
} as const;

/** What Manifold asks upstreams for, so that one canonical representation is cached. Schema 1 is never asked for. */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.dockerManifest];

export const MANIFEST_ACCEPT_HEADER = MANIFEST_ACCEPT.join(', ');

export const SCHEMA1_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.dockerSchema1Signed, MEDIA_TYPES.dockerSchema1]);

export const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

/** The media type without parameters, lower-cased. */
export function baseMediaType(contentType: string | undefined | null): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * Does the client's Accept header allow a stored manifest's media type?
 * No Accept (or a wildcard) allows anything, as registries do for old clients.
 */
export function acceptAllows(accept: string | string[] | undefined, mediaType: string): boolean {
  // Loops rather than flatMap/map/filter: this runs on every manifest request.
  let named = false;
  for (const header of Array.isArray(accept) ? accept : [accept ?? '']) {
    for (const part of header.split(',')) {
      const value = baseMediaType(part);
      if (value === '') continue;
      if (value === mediaType || value === '*/*' || value === 'application/*') return true;
      named = true;
    }
  }
  return !named;
}
