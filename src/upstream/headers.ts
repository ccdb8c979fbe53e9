// Reading upstream response headers: rate limits (PROTOCOL.md "Docker Hub specifics"), Retry-After,
// digests, sizes and the error message of an OCI error body.
import type { IncomingHttpHeaders } from 'node:http';

export function header(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : String(value);
}

/** `Retry-After` as seconds from now: delta-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterSeconds(headers: IncomingHttpHeaders, now: number): number | null {
  const value = header(headers, 'retry-after')?.trim();
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

/** `ratelimit-limit: 100;w=21600` → 100. */
function leadingCount(value: string | null): number | null {
  const match = value === null ? null : /^\s*(\d+)/.exec(value);
  return match ? Number(match[1]) : null;
}

/** `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset` (seconds, IETF draft), when any is sent. */
export function rateLimitHeaders(headers: IncomingHttpHeaders): { limit: number | null; remaining: number | null; resetSeconds: number | null } | null {
  const limit = leadingCount(header(headers, 'ratelimit-limit'));
  const remaining = leadingCount(header(headers, 'ratelimit-remaining'));
  return limit === null && remaining === null ? null : { limit, remaining, resetSeconds: leadingCount(header(headers, 'ratelimit-reset')) };
}

export function contentLength(headers: IncomingHttpHeaders): number | null {
  const value = header(headers, 'content-length');
  return value !== null && /^\d+$/.test(value.trim()) ? Number(value) : null;
}

/** The message of an OCI or token endpoint error body, or the start of a text body. */
export function errorBodyMessage(body: string): string | null {
  const text = body.trim();
  if (text === '') return null;
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] } & Record<string, unknown>;
    const first = parsed.errors?.[0];
    if (first) return [first.code, first.message].filter(Boolean).join(': ') || null;
    // Token endpoints: Docker Hub says `details`, OAuth2 says `error_description` / `error`.
    for (const key of ['message', 'details', 'error_description', 'error']) {
      if (typeof parsed[key] === 'string') return parsed[key];
    }
  } catch {
    // not JSON: fall through to the text
  }
  return text.replace(/\s+/g, ' ').slice(0, 200);
}
