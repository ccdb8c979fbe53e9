// Console sessions (issue 20): a sign-in gives the browser a random secret in an HttpOnly cookie; the
// database keeps only its SHA-256 (like access tokens), so every replica can check it. A session ends
// at sign-out, after its absolute lifetime, or when unused for the idle timeout. The CSRF token of a
// session is derived from its secret, so it needs no storage and no replica can disagree about it.
import { createHash, randomBytes } from 'node:crypto';
import type { Actor } from '../auth/policy.ts';
import { constantTimeEqual, tokenDigest } from '../auth/secrets.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';

export const SESSION_COOKIE = 'manifold_session';

export interface SessionTimes {
  /** Absolute lifetime of a session. */
  ttlMs: number;
  /** A session unused this long has ended. */
  idleMs: number;
}

export interface StartedSession {
  id: number;
  /** The cookie's value; never stored. */
  secret: string;
  csrfToken: string;
  expiresAt: number;
}

/** The CSRF token of a session: a digest of its secret under a label of its own (never the cookie value). */
export function csrfTokenOf(secret: string): string {
  return createHash('sha256').update('manifold-csrf\0').update(secret).digest('base64url');
}

/** True when `presented` is the CSRF token of the session whose secret is `secret`. */
export function csrfTokenMatches(secret: string, presented: string | undefined): boolean {
  return presented !== undefined && constantTimeEqual(csrfTokenOf(secret), presented);
}

export class SessionService {
  readonly #db: Db;
  readonly #times: SessionTimes;
  readonly #now: () => number;
  readonly #changes: ChangeFeed;

  constructor(deps: { db: Db; times: SessionTimes; changes: ChangeFeed; now?: () => number }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
    this.#times = deps.times;
    this.#now = deps.now ?? Date.now;
  }

  get times(): SessionTimes {
    return this.#times;
  }

  /**
   * Starts a session for a user who has just authenticated (with a password, or a personal token whose
   * limits the session keeps: its scopes, expiry and revocation). Ended sessions are deleted on the way.
   */
  async start(actor: Actor): Promise<Result<StartedSession>> {
    if (actor.kind !== 'user') return err('forbidden', 'only users sign in to the console: group and deploy tokens have no session');
    const now = this.#now();
    const secret = randomBytes(32).toString('base64url');
    const tokenExpiry = actor.token?.expiresAt ?? null;
    const expiresAt = Math.min(now + this.#times.ttlMs, tokenExpiry ?? Number.MAX_SAFE_INTEGER);
    try {
      await this.#db.deleteFrom('sessions').where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<=', now - this.#times.idleMs)])).execute();
      const row = await this.#db.insertInto('sessions')
        .values({ user_id: actor.userId, token_id: actor.token?.id ?? null, secret_digest: tokenDigest(secret), created_at: now, last_seen_at: now, expires_at: expiresAt })
        .returning('id').executeTakeFirstOrThrow();
      return ok({ id: row.id, secret, csrfToken: csrfTokenOf(secret), expiresAt });
    } catch (cause) {
      return err('persistence_error', 'the session could not be stored', { cause });
    }
  }

  /** When a live session ends at the latest. */
  async expiresAt(sessionId: number): Promise<Result<number>> {
    try {
      const row = await this.#db.selectFrom('sessions').select('expires_at').where('id', '=', sessionId).executeTakeFirst();
      return row ? ok(Number(row.expires_at)) : err('not_found', 'session not found');
    } catch (cause) {
      return err('persistence_error', 'the session could not be read', { cause });
    }
  }

  /** Ends a session (sign out): its cookie is refused from now on, on every replica. */
  async end(sessionId: number): Promise<Result<undefined>> {
    try {
      await this.#db.deleteFrom('sessions').where('id', '=', sessionId).execute();
    } catch (cause) {
      return err('persistence_error', 'the session could not be ended', { cause });
    }
    await this.#changes.publish({ kind: 'session', id: sessionId });
    return ok();
  }
}
