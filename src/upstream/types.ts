// What the upstream client is asked about and what it answers: typed outcomes, never exceptions for
// expected ones (DESIGN §2).
import type { Readable } from 'node:stream';

/** One remote registry as the client needs it. `id` 0 may be used for an upstream that is not saved yet. */
export interface UpstreamTarget {
  id: number;
  url: string;
  username: string | null;
  password: string | null;
  tokenUrl: string | null;
}

export type UpstreamFailure =
  | { kind: 'not_found'; status: number }
  | { kind: 'unauthorized'; status: number; message: string }
  | { kind: 'rate_limited'; retryAfterSeconds: number | null; message: string }
  /** `timedOut`: no answer within a time limit (a frozen upstream), not a refusal or an error status. */
  | { kind: 'unavailable'; cause: string; status?: number; timedOut?: boolean };

export type UpstreamResult<T> = { kind: 'found'; value: T } | UpstreamFailure;

export interface ManifestHead {
  digest: string | null;
  mediaType: string;
  size: number | null;
  etag: string | null;
}

export interface ManifestGet {
  bytes: Buffer;
  mediaType: string;
  /** The upstream's Docker-Content-Digest, when it sent one. */
  headerDigest: string | null;
  /** sha256 of `bytes`. */
  computedDigest: string;
  etag: string | null;
}

export interface BlobHead {
  digest: string | null;
  size: number | null;
}

export interface BlobGet {
  /** Streams the body; errors (never ends cleanly) when the body is cut short, idles too long or is aborted. */
  body: Readable;
  /** Bytes this response carries (the range's length for a 206). */
  size: number | null;
  status: 200 | 206;
  contentRange: string | null;
}

export interface ReferrersGet {
  bytes: Buffer;
  mediaType: string;
  /** The filters the upstream says it applied (`OCI-Filters-Applied`); only `artifactType` is known. */
  filtersApplied: 'artifactType'[];
  /** The query of the upstream's next page (its `Link`), when it has one on the same endpoint. */
  next: URLSearchParams | null;
}

export interface TagsPage {
  tags: string[];
  next: URLSearchParams | null;
}

export interface TagList {
  tags: string[];
  /** False when the upstream was still linking more pages at the page limit. */
  complete: boolean;
}

export interface ProbeFailure {
  upstreamId: number;
  failure: UpstreamFailure;
}

export type ProbeResult<T> =
  | { kind: 'found'; index: number; target: UpstreamTarget; value: T; failures: ProbeFailure[] }
  | { kind: 'not_found'; failures: ProbeFailure[] }
  | { kind: 'unavailable'; rateLimited: boolean; failures: ProbeFailure[] };

export interface RateLimitReading {
  limit: number | null;
  remaining: number | null;
  /** Seconds until the quota resets (`ratelimit-reset`), when the upstream says. */
  resetSeconds: number | null;
  /** Epoch milliseconds of the response that carried it. */
  at: number;
}

export function found<T>(value: T): { kind: 'found'; value: T } {
  return { kind: 'found', value };
}

export function unavailable(cause: string, status?: number): UpstreamFailure {
  return status === undefined ? { kind: 'unavailable', cause } : { kind: 'unavailable', cause, status };
}

/** No answer within a time limit. */
export function timedOut(cause: string): UpstreamFailure {
  return { kind: 'unavailable', cause, timedOut: true };
}
