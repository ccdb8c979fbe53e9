// Upstream URL rules (DESIGN §3.4): http(s) only, no credentials, query or fragment; a trailing `/v2`
// is tolerated (the client adds `/v2/` itself); stored normalised so equal URLs compare equal.
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { ALLOW_PRIVATE_HINT, checkUpstreamHost } from './address-policy.ts';

export const MAX_URL_LENGTH = 2048;

const DOCKER_HUB_HOSTS: ReadonlySet<string> = new Set(['registry-1.docker.io', 'docker.io', 'index.docker.io']);

function refuse(message: string): Result<string> {
  return err('invalid', message, { fields: { url: [message] } });
}

/** The authority as written: between `scheme:` (and its slashes) and the first path separator. */
function writtenAuthority(raw: string): string {
  return raw.replace(/^[a-zA-Z][a-zA-Z0-9+.-]*:[\\/]*/, '').split(/[\\/?#]/)[0];
}

/**
 * Checks the syntax of an upstream URL and normalises it: lower-case host (punycode), default port
 * dropped, dot segments resolved, trailing `/` and `/v2` removed. The error's `fields` use the key `url`;
 * callers validating another field (a token URL) reuse `message`.
 */
export function normalizeUpstreamUrl(raw: string): Result<string> {
  const trimmed = raw.trim();
  if (trimmed === '') return refuse('is required');
  if (trimmed.length > MAX_URL_LENGTH) return refuse(`must be at most ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return refuse('must be an absolute http or https URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse('must use http or https');
  // `https://@host` parses to an empty username; refuse any userinfo as written, not only a non-empty one.
  if (url.username || url.password || writtenAuthority(trimmed).includes('@')) {
    return refuse('must not contain credentials: give username and password separately');
  }
  // An empty `?` or `#` parses to '' too: look at the text.
  if (trimmed.includes('?')) return refuse('must not contain a query');
  if (trimmed.includes('#')) return refuse('must not contain a fragment');
  if (!url.hostname) return refuse('must name a host');
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '').replace(/\/+$/, '');
  const normalized = `${url.protocol}//${url.host}${path}`;
  if (normalized.length > MAX_URL_LENGTH) return refuse(`must be at most ${MAX_URL_LENGTH} characters`);
  return ok(normalized);
}

/**
 * Syntax and address: the host must not be loopback, private or link-local (names are resolved)
 * unless the instance allows private upstreams.
 */
export async function checkUpstreamUrl(raw: string, allowPrivate: boolean): Promise<Result<string>> {
  const normalized = normalizeUpstreamUrl(raw);
  if (!normalized.ok) return normalized;
  const verdict = await checkUpstreamHost(new URL(normalized.value).hostname, allowPrivate);
  if (!verdict.allowed) return refuse(`must not point to an internal host: ${verdict.reason}; ${ALLOW_PRIVATE_HINT}`);
  return normalized;
}

/** Docker Hub needs `library/` before one-component image names. */
export function isDockerHub(url: string): boolean {
  try {
    return DOCKER_HUB_HOSTS.has(new URL(url).hostname.replace(/\.$/, ''));
  } catch {
    return false;
  }
}
