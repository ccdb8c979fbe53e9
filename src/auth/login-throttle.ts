// Brute-force protection of password and token authentication (DESIGN §5): failed attempts are counted
// per client address and per username; past a number of free attempts each further one blocks that key
// for a time that doubles (exponential backoff) up to a bound. Blocked attempts are refused before any
// password is checked, so a guess costs no scrypt. Counters live in rate-limiter-flexible limiters: in
// memory with one process (SQLite), in its PostgreSQL store on PostgreSQL (services/throttle-store.ts), so that
// every replica counts the same failures and honours the same blocks. Used by the Authenticator for /v2,
// /auth/token and /api/v1, and by anything else that checks a password (a console sign-in).
import ipaddr from 'ipaddr.js';
import { RateLimiterMemory } from './rate-limiters.ts';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';

export interface ThrottleSettings {
  /** Failed (or unfinished) attempts per client address within the window before backoff starts. */
  addressFailures: number;
  /** Failed attempts per username within the window before backoff starts. */
  usernameFailures: number;
  /** Attempts are forgotten this long after the first one of a key. */
  windowSeconds: number;
  /** The first block; each further attempt past the free ones doubles it. */
  baseBlockSeconds: number;
  maxBlockSeconds: number;
  /**
   * How long a refused attempt is held before its 429 goes out (at most until the block ends): a client
   * that guesses in a loop then sends about one request a second per connection instead of a flood of
   * cheap refusals that would take the event loop from the pulls. Holding costs a timer, no CPU.
   */
  refusalDelayMs: number;
}

export const DEFAULT_THROTTLE: ThrottleSettings = { addressFailures: 10, usernameFailures: 5, windowSeconds: 3600, baseBlockSeconds: 1, maxBlockSeconds: 900, refusalDelayMs: 1000 };

/** Who is attempting: the client address (when known) and the username of a password attempt. */
export interface AttemptSubject {
  address?: string;
  username?: string;
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** A key that has just been blocked: audited by the caller of the throttle. */
export interface BlockEvent {
  key: 'address' | 'username';
  /** The address (an IPv6 one as its /64) or the username. */
  value: string;
  attempts: number;
  blockSeconds: number;
}

export interface LoginThrottleDeps {
  settings?: ThrottleSettings;
  /** Called once for each block imposed (at most once per block period and key). */
  onBlock?: (event: BlockEvent) => void;
  /** Builds a limiter; default in memory. A shared store goes here for several replicas. */
  limiter?: (options: { keyPrefix: string; points: number; duration: number }) => RateLimiterAbstract;
}

/** The address as one key: IPv4-mapped as IPv4; IPv6 by its /64, which one client usually owns whole. */
export function addressKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}

export class LoginThrottle {
  readonly settings: ThrottleSettings;
  readonly #attempts: RateLimiterAbstract;
  readonly #blocks: RateLimiterAbstract;
  readonly #onBlock: (event: BlockEvent) => void;

  constructor(deps: LoginThrottleDeps = {}) {
    this.settings = deps.settings ?? DEFAULT_THROTTLE;
    const limiter = deps.limiter ?? ((options) => new RateLimiterMemory(options));
    // Counters only (no refusal by points): the free attempts differ per key kind.
    this.#attempts = limiter({ keyPrefix: 'auth-attempts', points: Number.MAX_SAFE_INTEGER, duration: this.settings.windowSeconds });
    this.#blocks = limiter({ keyPrefix: 'auth-blocks', points: 1, duration: 1 });
    this.#onBlock = deps.onBlock ?? (() => {});
  }

  /**
   * Counts one attempt (before its credentials are checked: concurrent guesses count at once) and says
   * whether it may go on. Refused while a key is blocked. The first attempt past the free ones, and each
   * one after a block ran out, goes on but blocks its key for the next base·2^k seconds.
   */
  async attempt(subject: AttemptSubject): Promise<ThrottleVerdict> {
    const keys = this.#keys(subject);
    const blocked = await this.#blockedFor(keys);
    if (blocked > 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(blocked * 1000, this.settings.refusalDelayMs)));
      return { allowed: false, retryAfterSeconds: blocked };
    }
    for (const key of keys) {
      const counted = await this.#attempts.penalty(key.id, 1);
      const over = counted.consumedPoints - key.free;
      if (over <= 0) continue;
      const blockSeconds = Math.min(this.settings.maxBlockSeconds, this.settings.baseBlockSeconds * 2 ** (over - 1));
      await this.#blocks.block(key.id, blockSeconds);
      this.#onBlock({ key: key.kind, value: key.value, attempts: counted.consumedPoints, blockSeconds });
    }
    return { allowed: true };
  }

  /**
   * A checked attempt succeeded: it no longer counts against the address, and the username's failures
   * and block are forgotten (its owner has proven the password).
   */
  async succeeded(subject: AttemptSubject): Promise<void> {
    for (const key of this.#keys(subject)) {
      if (key.kind === 'address') await this.#attempts.reward(key.id, 1);
      else {
        await this.#attempts.delete(key.id);
        await this.#blocks.delete(key.id);
      }
    }
  }

  /** Seconds until every key of the subject may try again; 0 when none is blocked. */
  async #blockedFor(keys: { id: string }[]): Promise<number> {
    let longest = 0;
    for (const key of keys) {
      const block = await this.#blocks.get(key.id);
      if (block && block.consumedPoints > 1 && block.msBeforeNext > 0) longest = Math.max(longest, Math.ceil(block.msBeforeNext / 1000));
    }
    return longest;
  }

  #keys(subject: AttemptSubject): { kind: 'address' | 'username'; id: string; value: string; free: number }[] {
    const keys: { kind: 'address' | 'username'; id: string; value: string; free: number }[] = [];
    if (subject.address) {
      const value = addressKey(subject.address);
      keys.push({ kind: 'address', id: `address:${value}`, value, free: this.settings.addressFailures });
    }
    if (subject.username) {
      const value = subject.username.toLowerCase();
      keys.push({ kind: 'username', id: `username:${value}`, value, free: this.settings.usernameFailures });
    }
    return keys;
  }
}
