// How each upstream is doing, as this process has seen it (DESIGN §3.5): consecutive failures open a
// circuit for a backoff window (a timeout opens it at once: that is what makes clients wait), and a
// 429, a Retry-After or a `ratelimit-remaining` of 0 puts the upstream in a limited state until its
// reset. The pull decision reads a snapshot of it (`condition`); the pull service reports every answer.
// In memory, per process: a replica that has not met the failure yet asks once and learns it too.

/** What the pull decision needs to know about one upstream. */
export interface UpstreamCondition {
  /** closed = ask it; open = do not; probe_due = the window is over and one request may ask. */
  circuit: 'closed' | 'open' | 'probe_due';
  /** Rate limited until this time (epoch ms), or null. */
  limitedUntil: number | null;
  /** The last failure in words (`no answer within 2 s`), when the circuit is not closed. */
  lastFailure: string | null;
  /** When the open circuit lets a probe through (epoch ms), or null. */
  openUntil: number | null;
}

/** The state as the API and /metrics show it. */
export interface UpstreamHealthView {
  state: 'healthy' | 'circuit_open' | 'rate_limited';
  consecutive_failures: number;
  last_failure: string | null;
  last_failure_at: number | null;
  circuit_open_until: number | null;
  rate_limited_until: number | null;
  revalidations_skipped: number;
}

export interface UpstreamHealthOptions {
  /** Consecutive failures (not timeouts) that open the circuit. */
  failureThreshold: number;
  /** The first backoff window; each failed probe doubles it up to maxOpenMs. */
  openMs: number;
  maxOpenMs: number;
  /** How long a 429 without Retry-After (or a remaining count of 0 without a reset) limits an upstream. */
  defaultRateLimitMs: number;
  now?: () => number;
}

interface State {
  failures: number;
  lastFailure: string | null;
  lastFailureAt: number | null;
  openUntil: number | null;
  windowMs: number;
  /** When the probe of this window was taken (epoch ms), or null; one that never reports expires after a window. */
  probingSince: number | null;
  limitedUntil: number | null;
  skipped: number;
}

export type HealthOutcome =
  | { kind: 'answered' }
  | { kind: 'failed'; cause: string; timedOut: boolean }
  | { kind: 'rate_limited'; retryAfterSeconds: number | null };

const MAX_TRACKED = 10_000;

export class UpstreamHealth {
  readonly #options: UpstreamHealthOptions;
  readonly #now: () => number;
  readonly #states = new Map<number, State>();

  constructor(options: UpstreamHealthOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  condition(upstreamId: number, now = this.#now()): UpstreamCondition {
    const state = this.#states.get(upstreamId);
    if (!state) return { circuit: 'closed', limitedUntil: null, lastFailure: null, openUntil: null };
    const limitedUntil = state.limitedUntil !== null && state.limitedUntil > now ? state.limitedUntil : null;
    let circuit: UpstreamCondition['circuit'] = 'closed';
    if (state.openUntil !== null) circuit = state.openUntil > now || this.#probing(state, now) ? 'open' : 'probe_due';
    return { circuit, limitedUntil, lastFailure: circuit === 'closed' ? null : state.lastFailure, openUntil: state.openUntil };
  }

  /** Takes the one probe of an elapsed window; false when the circuit is closed or another caller has it. */
  claimProbe(upstreamId: number): boolean {
    const state = this.#states.get(upstreamId);
    const now = this.#now();
    if (!state || state.openUntil === null || this.#probing(state, now) || state.openUntil > now) return false;
    state.probingSince = now;
    return true;
  }

  /** What one request to the upstream came to. A 404 or a 401 is an answer: the upstream is up. */
  record(upstreamId: number, outcome: HealthOutcome): void {
    const now = this.#now();
    if (outcome.kind === 'rate_limited') {
      const state = this.#state(upstreamId);
      const ms = outcome.retryAfterSeconds !== null ? outcome.retryAfterSeconds * 1000 : this.#options.defaultRateLimitMs;
      state.limitedUntil = Math.max(state.limitedUntil ?? 0, now + ms);
      // A 429 is an answer: the circuit is not the place for it.
      this.#close(state);
      return;
    }
    if (outcome.kind === 'answered') {
      const state = this.#states.get(upstreamId);
      if (state) this.#close(state);
      return;
    }
    const state = this.#state(upstreamId);
    state.failures++;
    state.lastFailure = outcome.cause;
    state.lastFailureAt = now;
    const reopening = state.openUntil !== null;
    if (reopening || outcome.timedOut || state.failures >= this.#options.failureThreshold) {
      state.windowMs = reopening ? Math.min(state.windowMs * 2, this.#options.maxOpenMs) : this.#options.openMs;
      state.openUntil = now + state.windowMs;
    }
    state.probingSince = null;
  }

  /** A `ratelimit-remaining` of 0 limits the upstream until its reset (or the default). */
  recordRemaining(upstreamId: number, remaining: number | null, resetSeconds: number | null): void {
    if (remaining !== 0) return;
    const state = this.#state(upstreamId);
    const ms = resetSeconds !== null ? resetSeconds * 1000 : this.#options.defaultRateLimitMs;
    state.limitedUntil = Math.max(state.limitedUntil ?? 0, this.#now() + ms);
  }

  /** A revalidation that was not sent because of the upstream's state (the saved request). */
  countSkipped(upstreamId: number): void {
    this.#state(upstreamId).skipped++;
  }

  view(upstreamId: number): UpstreamHealthView {
    const now = this.#now();
    const state = this.#states.get(upstreamId);
    const condition = this.condition(upstreamId, now);
    return {
      state: condition.circuit !== 'closed' ? 'circuit_open' : condition.limitedUntil !== null ? 'rate_limited' : 'healthy',
      consecutive_failures: state?.failures ?? 0,
      last_failure: state?.lastFailure ?? null,
      last_failure_at: state?.lastFailureAt ?? null,
      circuit_open_until: state?.openUntil ?? null,
      rate_limited_until: condition.limitedUntil,
      revalidations_skipped: state?.skipped ?? 0,
    };
  }

  /** Upstream ids with any state, for /metrics. */
  ids(): number[] {
    return [...this.#states.keys()];
  }

  /** Forgets an upstream (deleted or changed: its new URL may well answer). */
  forget(upstreamId?: number): void {
    if (upstreamId === undefined) this.#states.clear();
    else this.#states.delete(upstreamId);
  }

  #probing(state: State, now: number): boolean {
    return state.probingSince !== null && now - state.probingSince < state.windowMs;
  }

  #close(state: State): void {
    state.failures = 0;
    state.openUntil = null;
    state.probingSince = null;
    state.windowMs = this.#options.openMs;
  }

  #state(upstreamId: number): State {
    let state = this.#states.get(upstreamId);
    if (!state) {
      if (this.#states.size >= MAX_TRACKED) this.#states.delete(this.#states.keys().next().value as number);
      state = { failures: 0, lastFailure: null, lastFailureAt: null, openUntil: null, windowMs: this.#options.openMs, probingSince: null, limitedUntil: null, skipped: 0 };
      this.#states.set(upstreamId, state);
    }
    return state;
  }
}
