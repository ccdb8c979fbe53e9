// Services answer every expected outcome with a Result, never an exception (DESIGN §2).
// The HTTP layer maps `reason` to a status code and an OCI error or problem+json body.

export type Reason =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'invalid'
  | 'conflict'
  | 'limit_reached'
  | 'no_upstreams'
  | 'not_found_on_upstreams'
  | 'upstream_unavailable'
  | 'rate_limited'
  | 'path_not_present'
  | 'object_not_present'
  | 'persistence_error';

/** Per-field messages for `invalid`, keyed by the input field's name. */
export type FieldErrors = Record<string, string[]>;

export type Ok<T> = { readonly ok: true; readonly value: T };
export type Err<R extends string = Reason> = {
  readonly ok: false;
  readonly reason: R;
  readonly message: string;
  readonly fields?: FieldErrors;
  readonly cause?: unknown;
  /** When trying again makes sense (`rate_limited`): the HTTP layer sends it as Retry-After. */
  readonly retryAfterSeconds?: number;
};
export type Result<T, R extends string = Reason> = Ok<T> | Err<R>;

export function ok<T>(value: T): Ok<T>;
export function ok(): Ok<undefined>;
export function ok<T>(value?: T): Ok<T | undefined> {
  return { ok: true, value };
}

export function err<R extends string = Reason>(
  reason: R,
  message: string,
  extra: { fields?: FieldErrors; cause?: unknown; retryAfterSeconds?: number } = {},
): Err<R> {
  return { ok: false, reason, message, ...extra };
}

/** An `invalid` result built from per-field messages. */
export function invalid(fields: FieldErrors, message = 'invalid input'): Err<'invalid'> {
  const summary = Object.entries(fields)
    .map(([field, messages]) => `${field}: ${messages.join(', ')}`)
    .join('; ');
  return err('invalid', summary ? `${message}: ${summary}` : message, { fields });
}
