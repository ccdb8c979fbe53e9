// JSON logs (pino). Secrets never reach a log line: credentials and tokens are censored by key.
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export const REDACTED_KEYS = ['password', 'password_encrypted', 'token', 'authorization', 'secret', 'plaintext', 'access_token', 'cookie', 'private-token'];

const SECRET_KEYS = new Set(REDACTED_KEYS);
const CENSOR = '[redacted]';
/** How deep secrets are looked for: `key`, `*.key` and `*.*.key` of the logged object. */
const CENSOR_DEPTH = 3;

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, formatters: { log: (object) => censorSecrets(object) }, base: undefined }, destination ?? stdout());
}

/**
 * The logged object with the value of every secret key (any case) replaced, down to CENSOR_DEPTH levels,
 * copying only the branches it changes. Done here rather than with pino's `redact`, whose wildcard paths
 * were parsed again on every line: a tenth of a cached manifest's CPU at thousands of requests a second.
 * Walks plain objects, arrays and errors; other instances (buffers, streams, dates) are left as they are.
 */
export function censorSecrets<T>(value: T, depth = 1): T {
  if (!isWalkable(value)) return value;
  let copy: Record<string, unknown> | null = null;
  for (const key of Object.keys(value)) {
    const inner = (value as Record<string, unknown>)[key];
    const censored = SECRET_KEYS.has(key.toLowerCase()) ? (inner === undefined ? inner : CENSOR) : depth < CENSOR_DEPTH ? censorSecrets(inner, depth + 1) : inner;
    if (censored === inner) continue;
    copy ??= shallowCopy(value);
    copy[key] = censored;
  }
  return (copy ?? value) as T;
}

function isWalkable(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value) || value instanceof Error) return true;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** A copy to censor; an error keeps what pino's error serializer would have written of it. */
function shallowCopy(value: object): Record<string, unknown> {
  if (Array.isArray(value)) return [...value] as unknown as Record<string, unknown>;
  if (value instanceof Error) return { ...value, type: value.name, message: value.message, stack: value.stack };
  return { ...value };
}

/**
 * Standard output, written asynchronously: lines logged while a write is under way go out together in the
 * next one, so a busy server does not pay a system call per request line (at 10,000 requests a second
 * that was half of a cached manifest's cost). pino flushes what is left when the process exits.
 */
function stdout(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}
