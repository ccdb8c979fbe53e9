// The console's only way to the server: JSON over the public /api/v1, with the session cookie (sent
// by the browser) and the session's CSRF token on every change. Failures become ApiError with the
// problem+json body's per-field messages, which forms show next to their fields.
export interface Problem {
  status: number;
  detail: string;
  errors: Record<string, string[]>;
}

export class ApiError extends Error {
  readonly status: number;
  readonly errors: Record<string, string[]>;

  constructor(problem: Problem) {
    super(problem.detail);
    this.status = problem.status;
    this.errors = problem.errors;
  }
}

let csrfToken = '';
let onSignedOut: () => void = () => {};

export function useCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when a request finds the session gone (expired, or signed out elsewhere). */
export function whenSignedOut(callback: () => void): void {
  onSignedOut = callback;
}

export interface Answer<T> {
  data: T;
  headers: Headers;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
  const headers: Record<string, string> = { 'x-requested-with': 'manifold-console', accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError({ status: 0, detail: 'the server could not be reached', errors: {} });
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const problem = (parsed ?? {}) as Partial<Problem>;
    if (response.status === 401 && path !== '/session') onSignedOut();
    throw new ApiError({ status: response.status, detail: problem.detail ?? `${response.status} ${response.statusText}`, errors: problem.errors ?? {} });
  }
  return { data: parsed as T, headers: response.headers };
}

export const get = async <T>(path: string) => (await call<T>('GET', path)).data;
export const post = async <T>(path: string, body?: unknown) => (await call<T>('POST', path, body ?? {})).data;
export const patch = async <T>(path: string, body: unknown) => (await call<T>('PATCH', path, body)).data;
export const put = async <T>(path: string, body: unknown) => (await call<T>('PUT', path, body)).data;
export const del = async (path: string) => {
  await call<unknown>('DELETE', path);
};

// ---- the shapes the console reads (see /api/v1/openapi.json) ------------------------------------------

export type Role = 'guest' | 'reporter' | 'developer' | 'maintainer' | 'owner';
export const ROLES: Role[] = ['guest', 'reporter', 'developer', 'maintainer', 'owner'];
export const LEVEL: Record<Role, number> = { guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50 };

export interface User { id: number; username: string; email: string | null; admin: boolean; blocked: boolean; created_at: number }
export interface Session {
  user: User;
  csrf_token: string;
  expires_at: number;
  idle_timeout_seconds: number;
  scopes: string[] | null;
  memberships: { group_id: number; role: Role; access_level: number }[];
}
export interface Group { id: number; path: string; name: string; description: string | null }
export interface Registry { id: number; group_id: number; name: string; description: string | null }
export interface Upstream {
  id: number; group_id: number; name: string; url: string; username: string | null; has_credentials: boolean;
  cache_validity_hours: number; description: string | null;
  [extra: string]: unknown;
}
export interface Link { id: number; registry_id: number; upstream_id: number; position: number; upstream: Upstream }
export interface RegistryDetail extends Registry { upstreams: Link[] }
export interface CacheEntry {
  id: number; upstream_id: number; relative_path: string; digest: string; size: number; content_type: string;
  downloaded_at: number | null; downloads_count: number; status: string; created_at: number;
}
export interface Token {
  id: number; kind: string; name: string; role: Role | null; scopes: string[]; token_hint: string;
  expires_at: number | null; revoked_at: number | null; last_used_at: number | null; created_at: number; active: boolean;
}
export interface CreatedToken extends Token { token: string }
export interface Member { user_id: number; username: string; role: Role; access_level: number }
export interface CleanupPolicy {
  enabled: boolean; keep_n_days_after_download: number; cadence_days: number; next_run_at: number | null;
  last_run_at: number | null; last_run_deleted_entries: number; last_run_deleted_bytes: number; failure_message: string | null;
}
export interface AuditEvent { id: number; actor_name: string; action: string; target_type: string; target_id: number | null; details: Record<string, unknown>; created_at: number }
export interface ConnectionTest { success: boolean; status: number | null; message: string }
export interface Instance { public_url: string; registry_host: string; service: string }
export interface TrafficHour { hour: number; hits: number; misses: number; bytes_from_cache: number; bytes_from_upstream: number }
export interface Statistics {
  hours: TrafficHour[]; hits: number; misses: number; hit_ratio: number | null;
  bytes_from_cache: number; bytes_from_upstream: number; cached_entries: number; cached_bytes: number;
}

/** GET /registries/{id}/usage: what the cache holds (objects counted once) and what cleanups and quotas evicted. */
export interface RegistryUsage {
  registry_id: number; since: number; stored_bytes: number; entries: number; evicted_entries: number; evicted_bytes: number;
  upstreams: { upstream_id: number; name: string; stored_bytes: number; entries: number; evicted_entries: number; evicted_bytes: number }[];
}
