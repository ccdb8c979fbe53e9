// Authentication (DESIGN §5): turns the credentials of a request into an Actor. No credentials is the
// anonymous actor; anything presented and wrong is `unauthorized`, without saying which part was wrong.
import { createHmac, hash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Change } from '../db/change-feed.ts';
import { BoundedCache } from '../lib/bounded-cache.ts';
import type { CacheStats } from '../lib/bounded-cache.ts';
import type { Db } from '../db/connect.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import type { AccessLevel, AccessToken, User } from '../db/schema.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { ANONYMOUS, SCOPES } from '../auth/policy.ts';
import type { Actor, Channel, RegistryAccess, Scope, TokenGrant } from '../auth/policy.ts';
import type { RegistryTokens, TokenSubject } from '../auth/registry-tokens.ts';
import { LoginThrottle } from '../auth/login-throttle.ts';
import type { AttemptSubject } from '../auth/login-throttle.ts';
import { PasswordHashingBusyError } from '../auth/password-hashing.ts';
import { TOKEN_PREFIX, hashPassword, tokenDigest, verifyPassword } from '../auth/secrets.ts';

export interface Credentials {
  /** The Authorization header: `Basic …` or `Bearer …`. */
  authorization?: string;
  /** The PRIVATE-TOKEN header: an access token's plaintext. */
  privateToken?: string;
  /** A username and password (or token) given outside a header, e.g. the OAuth2 password grant. */
  username?: string;
  password?: string;
  /** The client's address: failed attempts are throttled per address (and per username). */
  address?: string;
  /** The secret of a console session cookie; used only when no other credentials are given. */
  session?: string;
}


/** A token's last_used_at is written at most this often (not once per request). */
export const LAST_USED_INTERVAL_MS = 60_000;
/** How long a successful password check is remembered, so a pull's many requests run scrypt once. */
export const PASSWORD_CACHE_MS = 10_000;
const PASSWORD_CACHE_SIZE = 1000;
/** Actors of tokens kept in memory at most (see #actors). */
const ACTORS_MAX = 10_000;
/** How long an actor resolved from credentials still stands in while the database is unavailable. */
export const OUTAGE_MEMORY_MS = 60_000;
const OUTAGE_MEMORY_SIZE = 10_000;

const REFUSED = 'invalid credentials';
const DEFAULT_SESSION_IDLE_MS = 60 * 60 * 1000;
/** A session's last_seen_at is written at most this often. */
const SESSION_TOUCH_INTERVAL_MS = 60_000;
const refused = () => err('unauthorized', REFUSED);
/** A wrong password: already counted by the throttle; callers see REFUSED like any other failure. */
const REFUSED_PASSWORD = 'invalid username or password';
const throttled = (retryAfterSeconds: number) =>
  err('rate_limited', `too many failed sign-in attempts; try again in ${retryAfterSeconds} s`, { retryAfterSeconds });

const TOKEN_PREFIXES = Object.values(TOKEN_PREFIX);
const BEARER_JWT = /^bearer\s+([\w-]+\.[\w-]+\.[\w-]+)$/i;
const looksLikeAccessToken = (secret: string) => TOKEN_PREFIXES.some((prefix) => secret.startsWith(prefix));

export class Authenticator {
  readonly #db: Db;
  readonly #registryTokens: RegistryTokens;
  readonly #now: () => number;
  readonly #verifyPassword: typeof verifyPassword;
  readonly #throttle: LoginThrottle;
  /** HMAC(credentials) → the user and the hash the password was checked against. */
  readonly #passwordCache: BoundedCache<{ userId: number; passwordHash: string }>;
  /** A process-local key, so the cache holds nothing an attacker could test passwords against. */
  readonly #cacheKey = randomBytes(32);
  readonly #cacheKeyPrefix = this.#cacheKey.toString('base64');
  #dummyHash: Promise<string> | null = null;
  /** HMAC(credentials) → the actor they gave last time, for a database outage (see authenticate). */
  readonly #recentActors: BoundedCache<Actor>;

  /**
   * The actor behind a registry token's subject or an access token, reused for `hotMemoryMs` (a pull is
   * dozens of requests with one token): a revoked token, a blocked user or a removed membership read on
   * another replica take effect within that; invalidate() drops them all at once.
   */
  readonly #actors: BoundedCache<Actor>;

  readonly #sessionIdleMs: number;

  constructor(deps: { db: Db; registryTokens: RegistryTokens; now?: () => number; verifyPassword?: typeof verifyPassword; throttle?: LoginThrottle; sessionIdleMs?: number; outageMemoryMs?: number; hotMemoryMs?: number }) {
    this.#db = deps.db;
    this.#sessionIdleMs = deps.sessionIdleMs ?? DEFAULT_SESSION_IDLE_MS;
    this.#registryTokens = deps.registryTokens;
    this.#now = deps.now ?? Date.now;
    this.#verifyPassword = deps.verifyPassword ?? verifyPassword;
    this.#recentActors = new BoundedCache({ maxEntries: OUTAGE_MEMORY_SIZE, ttlMs: deps.outageMemoryMs ?? OUTAGE_MEMORY_MS });
    this.#passwordCache = new BoundedCache({ maxEntries: PASSWORD_CACHE_SIZE, ttlMs: PASSWORD_CACHE_MS, now: this.#now });
    this.#throttle = deps.throttle ?? new LoginThrottle();
    this.#actors = new BoundedCache({ maxEntries: ACTORS_MAX, ttlMs: deps.hotMemoryMs ?? 0, now: this.#now });
  }

  /** The actors of tokens in memory (for /metrics). */
  get actorMemory(): CacheStats {
    return this.#actors.stats;
  }

  /** Users, tokens, memberships or groups changed: actors read before are not used again. */
  invalidate(): void {
    this.#actors.clear();
  }

  /**
   * What this process remembers of users, tokens and memberships (the password checks, the actors kept
   * for an outage) is dropped when they change, here or on another replica (change feed): a token
   * revoked, a user blocked or a member removed anywhere is not let in by this memory.
   */
  onChange(change: Change): void {
    switch (change.kind) {
      case 'user':
        this.#passwordCache.deleteWhere((entry) => entry.userId === change.id);
        this.#forgetActors((actor) => actor.kind === 'user' && actor.userId === change.id);
        break;
      case 'token':
        this.#forgetActors((actor) => 'token' in actor && actor.token?.id === change.id);
        break;
      case 'membership':
        this.#forgetActors((actor) => actor.kind === 'user' && actor.userId === change.userId);
        break;
      case 'group':
        // Its members, tokens and deploy tokens went with it.
        this.#forgetActors((actor) => actor.kind === 'user' ? actor.memberships.has(change.id) : 'groupId' in actor && actor.groupId === change.id);
        break;
      case 'all':
        this.#passwordCache.clear();
        this.#recentActors.clear();
        this.#actors.clear();
        break;
      default:
        break;
    }
  }

  #forgetActors(matches: (actor: Actor) => boolean): void {
    this.#recentActors.deleteWhere(matches);
    this.#actors.deleteWhere(matches);
  }

  /**
   * The actor of these credentials. While the database is unavailable, credentials that succeeded
   * within the outage window give the same actor again (a registry token is verified again, an access
   * token's expiry still applies), so that cached content keeps being served; any other credentials
   * get `unavailable`, never `unauthorized`.
   */
  async authenticate(credentials: Credentials, channel: Channel): Promise<Result<Actor>> {
    const key = this.#credentialsKey(credentials, channel);
    try {
      const result = await this.#throttled(credentials, channel);
      if (key !== null) {
        if (result.ok && result.value.kind !== 'anonymous') this.#recentActors.set(key, result.value);
        else this.#recentActors.delete(key);
      }
      return result;
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      const remembered = key === null ? undefined : this.#recentActors.get(key);
      if (remembered && (await this.#stillUsable(credentials, remembered))) return ok(remembered);
      return err('unavailable', 'the database is unavailable; try again shortly', { cause: error });
    }
  }

  #credentialsKey(credentials: Credentials, channel: Channel): string | null {
    const parts = [credentials.authorization, credentials.privateToken, credentials.username, credentials.password];
    if (parts.every((part) => part === undefined)) return null;
    // A registry token alone is its own key: signed, short-lived and already kept as sent by the
    // verification cache (RegistryTokens), so hashing it again would protect nothing (2 % of a cached
    // manifest's CPU).
    if (parts[1] === undefined && parts[2] === undefined && parts[3] === undefined) {
      const bearer = BEARER_JWT.exec(parts[0]!);
      if (bearer && !looksLikeAccessToken(bearer[1])) return `${channel}\0${bearer[1]}`;
    }
    // Anything else: a keyed SHA-256 (a secret prefix) in one call: no password or access token is kept
    // as it was sent, and an HMAC object per request cost a twentieth of a cached manifest's CPU.
    return hash('sha256', `${this.#cacheKeyPrefix}\0${channel}\0${parts.map((part) => part ?? '\u0001').join('\0')}`, 'base64');
  }

  async #stillUsable(credentials: Credentials, actor: Actor): Promise<boolean> {
    const bearer = /^bearer\s+(\S+)\s*$/i.exec(credentials.authorization ?? '');
    if (bearer && !looksLikeAccessToken(bearer[1]) && !(await this.#registryTokens.verify(bearer[1])).ok) return false;
    const token = 'token' in actor ? actor.token : null;
    return !token || token.revokedAt === null && (token.expiresAt === null || token.expiresAt > this.#now());
  }

  /**
   * The actor of these credentials. Failures are throttled (LoginThrottle): a password attempt is counted
   * before scrypt runs and refused (`rate_limited`, with retryAfterSeconds) while its address or username
   * is blocked; a wrong token counts against its address. A valid token is never throttled: it costs one
   * SHA-256 and cannot be guessed, so nobody else's wrong guesses slow it down.
   */
  async #throttled(credentials: Credentials, channel: Channel): Promise<Result<Actor>> {
    const result = await this.#authenticate(credentials, channel);
    if (result.ok || result.reason !== 'unauthorized') return result;
    // A wrong token, JWT or malformed header (password attempts were counted before their check). A
    // session cookie alone is not counted: an expired one is no guess, and it must not block its owner.
    const sessionOnly = credentials.authorization === undefined && credentials.privateToken === undefined && credentials.username === undefined && credentials.password === undefined;
    if (result.message !== REFUSED_PASSWORD && credentials.address !== undefined && !sessionOnly) {
      const verdict = await this.#throttle.attempt({ address: credentials.address });
      if (!verdict.allowed) return throttled(verdict.retryAfterSeconds);
    }
    return refused();
  }

  async #authenticate(credentials: Credentials, channel: Channel): Promise<Result<Actor>> {
    const subject: AttemptSubject = { address: credentials.address };
    if (credentials.privateToken !== undefined) return this.#accessToken(credentials.privateToken, channel);
    if (credentials.username !== undefined || credentials.password !== undefined) {
      return this.#basic(credentials.username ?? '', credentials.password ?? '', channel, subject);
    }
    if (credentials.authorization === undefined) {
      return credentials.session !== undefined && channel === 'api' ? this.#session(credentials.session) : ok(ANONYMOUS);
    }
    const match = /^(\S+)\s+(\S+)\s*$/.exec(credentials.authorization);
    if (!match) return refused();
    const [, scheme, value] = match;
    switch (scheme.toLowerCase()) {
      case 'basic': {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) return refused();
        return this.#basic(decoded.slice(0, colon), decoded.slice(colon + 1), channel, subject);
      }
      case 'bearer':
        if (looksLikeAccessToken(value)) return this.#accessToken(value, channel);
        if (channel === 'registry') return this.#registryToken(value);
        return refused();
      default:
        return refused();
    }
  }

  /** Basic credentials: `<anything>:<access token>` or `<username>:<password>`. */
  async #basic(username: string, secret: string, channel: Channel, subject: AttemptSubject): Promise<Result<Actor>> {
    if (looksLikeAccessToken(secret)) return this.#accessToken(secret, channel);
    if (username === '' || secret === '') return refused();
    const cacheKey = createHmac('sha256', this.#cacheKey).update(username.toLowerCase()).update('\0').update(secret).digest('base64');
    const cached = this.#passwordCache.get(cacheKey);
    if (cached) {
      const user = await this.#db.selectFrom('users').selectAll().where('id', '=', cached.userId).executeTakeFirst();
      // A changed password (or a deleted user) invalidates the entry at once.
      if (user && user.password_hash === cached.passwordHash) return this.#userActor(user, null, channel);
    }
    this.#passwordCache.delete(cacheKey);
    // Read first: a database that is unavailable is no failed attempt (it throws before counting).
    const user = await this.#db.selectFrom('users').selectAll().where(sql<string>`lower(username)`, '=', username.toLowerCase()).executeTakeFirst();
    // Counted before scrypt runs: a blocked guess costs nothing, concurrent guesses count at once.
    const attempt = { ...subject, username };
    const verdict = await this.#throttle.attempt(attempt);
    if (!verdict.allowed) return throttled(verdict.retryAfterSeconds);
    let matches: boolean;
    try {
      // Unknown users cost a password check too, so timing does not tell which usernames exist.
      matches = await this.#verifyPassword(secret, user?.password_hash ?? (await this.#unusableHash()));
    } catch (error) {
      if (error instanceof PasswordHashingBusyError) return throttled(1);
      throw error;
    }
    if (!user || !matches) return err('unauthorized', REFUSED_PASSWORD);
    await this.#throttle.succeeded(attempt);
    this.#passwordCache.set(cacheKey, { userId: user.id, passwordHash: user.password_hash });
    return this.#userActor(user, null, channel);
  }

  /**
   * A console session: alive (neither past its end nor idle too long), its user not blocked, and the
   * personal token it was started with (if any) still usable; the actor keeps that token's scopes.
   */
  async #session(secret: string): Promise<Result<Actor>> {
    const row = await this.#db.selectFrom('sessions').selectAll().where('secret_digest', '=', tokenDigest(secret)).executeTakeFirst();
    const now = this.#now();
    if (!row || row.expires_at <= now || row.last_seen_at <= now - this.#sessionIdleMs) return refused();
    const user = await this.#db.selectFrom('users').selectAll().where('id', '=', row.user_id).executeTakeFirst();
    if (!user) return refused();
    let token: AccessToken | null = null;
    if (row.token_id !== null) {
      token = (await this.#tokenRow(row.token_id)) ?? null;
      if (!token || !this.#usable(token)) return refused();
    }
    const actor = await this.#userActor(user, token, 'api');
    if (!actor.ok || actor.value.kind !== 'user') return actor;
    if (row.last_seen_at <= now - SESSION_TOUCH_INTERVAL_MS) {
      await this.#db.updateTable('sessions').set({ last_seen_at: now }).where('id', '=', row.id).where('last_seen_at', '<=', now - SESSION_TOUCH_INTERVAL_MS).execute();
    }
    return ok({ ...actor.value, sessionId: row.id });
  }

  async #accessToken(plaintext: string, channel: Channel): Promise<Result<Actor>> {
    if (!looksLikeAccessToken(plaintext)) return refused();
    const digest = tokenDigest(plaintext);
    return this.#remembered(`token:${channel}:${digest}`, async () => {
      const row = await this.#db.selectFrom('access_tokens').selectAll().where('token_digest', '=', digest).executeTakeFirst();
      if (!row || !this.#usable(row)) return refused();
      const actor = await this.#tokenActor(row, channel);
      if (actor.ok) await this.#touch(row);
      return actor;
    });
  }

  /** An actor from #actors, or read (and kept when it is one). Refusals are never kept. */
  async #remembered(key: string, read: () => Promise<Result<Actor>>): Promise<Result<Actor>> {
    const known = this.#actors.get(key);
    // An access token's own expiry still applies to a kept actor.
    if (known && (!('token' in known) || !known.token || known.token.expiresAt === null || known.token.expiresAt > this.#now())) return ok(known);
    const generation = this.#actors.generation;
    const since = this.#now();
    const actor = await read();
    if (actor.ok && actor.value.kind !== 'anonymous') this.#actors.set(key, actor.value, { generation, since });
    return actor;
  }

  /** A registry JWT: its subject is read again (blocked users, revoked tokens stop at once); its access list is kept. */
  async #registryToken(jwt: string): Promise<Result<Actor>> {
    const verified = await this.#registryTokens.verify(jwt);
    if (!verified.ok) return refused();
    const subject = verified.value.subject;
    const key = subject.kind === 'user' ? `subject:user:${subject.id}:${subject.tokenId ?? ''}` : `subject:${subject.kind}:${'id' in subject ? subject.id : ''}`;
    const actor = await this.#remembered(key, () => this.#subjectActor(subject));
    if (!actor.ok || actor.value.kind === 'anonymous') return actor;
    return ok({ ...actor.value, registryAccess: verified.value.access as readonly RegistryAccess[] } as Actor);
  }

  async #subjectActor(subject: TokenSubject): Promise<Result<Actor>> {
    if (subject.kind === 'anonymous') return ok(ANONYMOUS);
    if (subject.kind === 'user') {
      const user = await this.#db.selectFrom('users').selectAll().where('id', '=', subject.id).executeTakeFirst();
      if (!user) return refused();
      if (subject.tokenId === null) return this.#userActor(user, null, 'registry');
      const row = await this.#tokenRow(subject.tokenId);
      if (!row || row.kind !== 'personal' || row.user_id !== user.id || !this.#usable(row)) return refused();
      return this.#userActor(user, row, 'registry');
    }
    const row = await this.#tokenRow(subject.id);
    if (!row || `${row.kind}_token` !== subject.kind || !this.#usable(row)) return refused();
    return this.#tokenActor(row, 'registry');
  }

  async #tokenActor(row: AccessToken, channel: Channel): Promise<Result<Actor>> {
    switch (row.kind) {
      case 'personal': {
        const user = row.user_id === null ? undefined : await this.#db.selectFrom('users').selectAll().where('id', '=', row.user_id).executeTakeFirst();
        return user ? this.#userActor(user, row, channel) : refused();
      }
      case 'group':
        if (row.group_id === null || row.access_level === null) return refused();
        return ok({ kind: 'group_token', groupId: row.group_id, accessLevel: row.access_level, token: grantOf(row), channel });
      case 'deploy':
        if (row.group_id === null) return refused();
        return ok({ kind: 'deploy_token', groupId: row.group_id, token: grantOf(row), channel });
    }
  }

  async #userActor(user: User, token: AccessToken | null, channel: Channel): Promise<Result<Actor>> {
    if (user.blocked === 1) return refused();
    const rows = await this.#db.selectFrom('memberships').select(['group_id', 'access_level']).where('user_id', '=', user.id).execute();
    return ok({
      kind: 'user',
      userId: user.id,
      username: user.username,
      admin: user.admin === 1,
      blocked: false,
      memberships: new Map<number, AccessLevel>(rows.map((row) => [row.group_id, row.access_level])),
      token: token ? grantOf(token) : null,
      channel,
    });
  }

  async #tokenRow(id: number): Promise<AccessToken | undefined> {
    return this.#db.selectFrom('access_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }

  #usable(row: AccessToken): boolean {
    return row.revoked_at === null && (row.expires_at === null || row.expires_at > this.#now());
  }

  /** Bumps last_used_at when it is older than a minute; the condition keeps concurrent requests to one write. */
  async #touch(row: AccessToken): Promise<void> {
    const now = this.#now();
    if (row.last_used_at !== null && row.last_used_at > now - LAST_USED_INTERVAL_MS) return;
    await this.#db.updateTable('access_tokens').set({ last_used_at: now }).where('id', '=', row.id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', now - LAST_USED_INTERVAL_MS)]))
      .execute();
  }

  #unusableHash(): Promise<string> {
    this.#dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    return this.#dummyHash;
  }
}

function grantOf(row: AccessToken): TokenGrant {
  let stored: unknown;
  try {
    stored = JSON.parse(row.scopes);
  } catch {
    stored = [];
  }
  const scopes = Array.isArray(stored) ? stored.filter((scope): scope is Scope => (SCOPES as readonly string[]).includes(scope)) : [];
  return { id: row.id, scopes, expiresAt: row.expires_at, revokedAt: row.revoked_at };
}
