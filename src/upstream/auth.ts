// Upstream authentication (DESIGN §3.4, PROTOCOL.md "Auth"): anonymous first; a Bearer challenge is
// answered with a token from the realm (scope `repository:<image>:pull`), a Basic challenge with the
// credentials. Tokens are cached per (upstream, credentials, scope) until they expire. Credentials cross
// the trust boundary only to the upstream's own host, a realm on the same host or registrable domain, or
// the configured token endpoint.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { BoundedCache } from '../lib/bounded-cache.ts';
import { SingleFlight } from '../lib/single-flight.ts';
import type { Challenge } from './challenge.ts';
import { errorBodyMessage } from './headers.ts';
import type { UpstreamFailure, UpstreamTarget } from './types.ts';

/** Tokens without `expires_in` live this long; shorter lifetimes are raised to it (token.md). */
export const MIN_TOKEN_SECONDS = 60;
const MAX_CACHED_TOKENS = 10_000;
/** A token is kept at most this long, whatever expires_in says. */
const MAX_TOKEN_KEEP_MS = 24 * 60 * 60 * 1000;

export function pullScope(image: string): string {
  return `repository:${image}:pull`;
}

function bareHost(url: URL): string {
  return url.hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

function isLocalName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost');
}

/**
 * May the upstream's credentials be sent to this token realm? Same hostname (any port), or both names
 * under one registrable domain per the public suffix list (registry-1.docker.io and auth.docker.io share
 * docker.io; a.github.io and b.github.io do not). IP literals and localhost only match exactly. An https
 * upstream never sends its credentials to a plain-http realm. The public suffix list (tldts, over 1 MB of an
 * idle server) is loaded by the first realm on another host than its upstream's (issue 19).
 */
export async function isTrustedRealm(realm: URL, upstream: URL): Promise<boolean> {
  if (upstream.protocol === 'https:' && realm.protocol !== 'https:') return false;
  const realmHost = bareHost(realm);
  const upstreamHost = bareHost(upstream);
  if (realmHost === upstreamHost) return true;
  if (isIP(realmHost) || isIP(upstreamHost) || isLocalName(realmHost) || isLocalName(upstreamHost)) return false;
  const { getDomain } = await import('tldts');
  const realmDomain = getDomain(realmHost, { allowPrivateDomains: true });
  return realmDomain !== null && realmDomain === getDomain(upstreamHost, { allowPrivateDomains: true });
}

export function hasCredentials(target: UpstreamTarget): target is UpstreamTarget & { username: string; password: string } {
  return target.username !== null && target.username !== '' && target.password !== null;
}

export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** Identifies the credentials in cache keys without holding them. */
function credentialsDigest(target: UpstreamTarget): string {
  if (!hasCredentials(target)) return 'anonymous';
  return createHash('sha256').update(target.username).update('\0').update(target.password).digest('hex').slice(0, 32);
}

/** A response of the token endpoint, as the client's transport delivers it. */
export type TokenResponse =
  | { kind: 'response'; status: number; body: string; retryAfterSeconds: number | null }
  | UpstreamFailure;

/** Performs the token GET (through the same agent, timeouts and address rule as every other request). */
export type TokenFetcher = (url: URL, headers: Record<string, string>) => Promise<TokenResponse>;

/** What to send next: an Authorization value (null = anonymous); `fresh` when it was just obtained. */
export type Authorization = { kind: 'authorization'; value: string | null; fresh: boolean } | UpstreamFailure;

export interface UpstreamAuthOptions {
  fetchToken: TokenFetcher;
  now: () => number;
}

export class UpstreamAuth {
  readonly #options: UpstreamAuthOptions;
  /** The last challenge each upstream sent, so later requests authenticate without a 401 first. */
  readonly #challenges = new Map<string, Challenge>();
  readonly #tokens: BoundedCache<string>;
  /** Token fetches under way: concurrent requests for one scope share one. */
  readonly #fetching = new SingleFlight<Authorization>();

  constructor(options: UpstreamAuthOptions) {
    this.#options = options;
    this.#tokens = new BoundedCache({ maxEntries: MAX_CACHED_TOKENS, ttlMs: MAX_TOKEN_KEEP_MS, now: options.now });
  }

  #upstreamKey(target: UpstreamTarget): string {
    return `${target.id}|${new URL(target.url).origin}`;
  }

  #tokenKey(target: UpstreamTarget, scope: string): string {
    return `${this.#upstreamKey(target)}|${credentialsDigest(target)}|${scope}`;
  }

  /** The Authorization for a first attempt, from what this upstream asked for before; anonymous otherwise. */
  async before(target: UpstreamTarget, scope: string): Promise<Authorization> {
    const challenge = this.#challenges.get(this.#upstreamKey(target));
    if (!challenge) return { kind: 'authorization', value: null, fresh: false };
    if (challenge.scheme === 'basic') {
      return hasCredentials(target)
        ? { kind: 'authorization', value: basicAuthorization(target.username, target.password), fresh: true }
        : { kind: 'authorization', value: null, fresh: false };
    }
    const cached = this.#tokens.get(this.#tokenKey(target, scope));
    if (cached !== undefined) return { kind: 'authorization', value: `Bearer ${cached}`, fresh: false };
    return this.#token(target, scope, challenge);
  }

  /**
   * Answers a 401: remembers the challenge and obtains fresh credentials for it. A challenge we cannot
   * answer is `unauthorized` with the upstream's message.
   */
  async answer(target: UpstreamTarget, scope: string, challenges: Challenge[], message: string, sent: string | null): Promise<Authorization> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      this.#challenges.set(this.#upstreamKey(target), bearer);
      // Requests sent before a concurrent one obtained a token all get the 401: they share that token.
      const cached = this.#tokens.get(this.#tokenKey(target, scope));
      if (cached !== undefined && `Bearer ${cached}` !== sent) {
        return { kind: 'authorization', value: `Bearer ${cached}`, fresh: true };
      }
      this.forget(target, scope);
      return this.#token(target, scope, bearer);
    }
    if (basic) {
      this.#challenges.set(this.#upstreamKey(target), basic);
      if (!hasCredentials(target)) return { kind: 'unauthorized', status: 401, message: `${message} (the upstream wants credentials and none are configured)` };
      return { kind: 'authorization', value: basicAuthorization(target.username, target.password), fresh: true };
    }
    return { kind: 'unauthorized', status: 401, message };
  }

  /** Drops a cached token the upstream refused. */
  forget(target: UpstreamTarget, scope: string): void {
    this.#tokens.delete(this.#tokenKey(target, scope));
  }

  /** Shared by every caller of one key, so it is bounded by the transport's timeouts, not by one caller's signal. */
  #token(target: UpstreamTarget, scope: string, challenge: Challenge): Promise<Authorization> {
    const key = this.#tokenKey(target, scope);
    return this.#fetching.run(key, () => this.#fetchToken(target, scope, challenge, key));
  }

  async #fetchToken(target: UpstreamTarget, scope: string, challenge: Challenge, key: string): Promise<Authorization> {
    let realm: URL;
    try {
      realm = new URL(target.tokenUrl ?? challenge.params.realm);
    } catch {
      return { kind: 'unavailable', cause: `the upstream's token realm is not a URL` };
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') return { kind: 'unavailable', cause: `the token realm must be http or https` };
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.append('scope', scope);

    const headers: Record<string, string> = { accept: 'application/json' };
    const trusted = target.tokenUrl !== null || (await isTrustedRealm(realm, new URL(target.url)));
    if (hasCredentials(target) && trusted) headers.authorization = basicAuthorization(target.username, target.password);

    const response = await this.#options.fetchToken(realm, headers);
    if (response.kind !== 'response') return response;
    const where = `token endpoint ${realm.origin}`;
    const message = errorBodyMessage(response.body);
    if (response.status === 401 || response.status === 403) {
      return { kind: 'unauthorized', status: response.status, message: `${where} refused: ${message ?? `HTTP ${response.status}`}` };
    }
    if (response.status === 429) {
      return { kind: 'rate_limited', retryAfterSeconds: response.retryAfterSeconds, message: `${where}: ${message ?? 'too many requests'}` };
    }
    if (response.status < 200 || response.status > 299) {
      return { kind: 'unavailable', cause: `${where} answered HTTP ${response.status}${message ? `: ${message}` : ''}`, status: response.status };
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(response.body) as typeof body;
    } catch {
      return { kind: 'unavailable', cause: `${where} answered something that is not JSON` };
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : typeof body.access_token === 'string' ? body.access_token : '';
    if (token === '') return { kind: 'unavailable', cause: `${where} answered without a token` };
    const seconds = typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) ? Math.max(body.expires_in, MIN_TOKEN_SECONDS) : MIN_TOKEN_SECONDS;
    // Renew a little early so a token never expires between our check and the upstream's.
    const margin = Math.min(5, seconds / 10);
    this.#tokens.set(key, token, { ttlMs: (seconds - margin) * 1000 });
    return { kind: 'authorization', value: `Bearer ${token}`, fresh: true };
  }
}
