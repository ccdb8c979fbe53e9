// Names, tags and digests of the OCI distribution spec.

/** Repository name: path components separated by `/` (spec "Pulling manifests"). */
const NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
/** One path component: what a group path or a registry name must be. */
const COMPONENT = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Many clients cap host + name at 255 characters. */
export const MAX_NAME_LENGTH = 255;

/** Hex length of each digest algorithm we can verify; others are refused. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex` */
  value: string;
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function isPathComponent(value: string): boolean {
  return value.length <= MAX_NAME_LENGTH && COMPONENT.test(value);
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Parses a digest of a supported algorithm with the right hex length; null for anything else. */
export function parseDigest(value: string): Digest | null {
  const match = DIGEST.exec(value);
  if (!match) return null;
  if (!Object.hasOwn(DIGEST_ALGORITHMS, match[1])) return null;
  const algorithm = match[1] as DigestAlgorithm;
  if (match[2].length !== DIGEST_ALGORITHMS[algorithm] || !/^[a-f0-9]+$/.test(match[2])) return null;
  return { algorithm, hex: match[2], value };
}

export function isDigest(reference: string): boolean {
  return reference.includes(':');
}

/** A manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseReference(reference: string): Reference | null {
  if (isDigest(reference)) {
    const digest = parseDigest(reference);
    return digest ? { kind: 'digest', digest } : null;
  }
  return isValidTag(reference) ? { kind: 'tag', tag: reference } : null;
}

/** The cache entry path of a manifest or blob (DESIGN §1). */
export function manifestPath(image: string, reference: string): string {
  return `/${image}/manifests/${reference}`;
}

export function blobPath(image: string, digest: string): string {
  return `/${image}/blobs/${digest}`;
}
