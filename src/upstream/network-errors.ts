// Turning transport errors into a cause a person can read, and deciding which ones are worth one retry.
import { AddressRefusedError } from './dispatcher.ts';

function codeOf(error: unknown): string | undefined {
  const withCode = error as { code?: unknown; cause?: unknown; errors?: unknown[] } | null;
  if (!withCode || typeof withCode !== 'object') return undefined;
  if (typeof withCode.code === 'string') return withCode.code;
  if (Array.isArray(withCode.errors) && withCode.errors.length > 0) return codeOf(withCode.errors[0]);
  return withCode.cause ? codeOf(withCode.cause) : undefined;
}

function refusedBy(error: unknown): AddressRefusedError | null {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    if (current instanceof AddressRefusedError) return current;
    const next = current as { cause?: unknown; errors?: unknown[] };
    current = Array.isArray(next.errors) ? next.errors[0] : next.cause;
  }
  return null;
}

/**
 * Failures before the response started that a second attempt may well not meet: a refused, reset or
 * closed connection, a connect timeout. A headers timeout is not retried (a slow upstream stays slow, and
 * the wait would double), nor is a refused address, an unknown host or an abort.
 */
export function isRetryableNetworkError(error: unknown): boolean {
  if (refusedBy(error)) return false;
  const code = codeOf(error);
  return code !== undefined && ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT', 'EAI_AGAIN'].includes(code);
}

/** No connection or no response headers within the configured time. */
export function isTimeoutError(error: unknown): boolean {
  const code = codeOf(error);
  return code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT';
}

export function isAbort(error: unknown): boolean {
  const code = codeOf(error);
  return (error as Error | null)?.name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR';
}

export interface TimeoutSettings {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

/** What went wrong, in words, naming the host but never a credential. */
export function describeNetworkError(error: unknown, host: string, timeouts: TimeoutSettings): string {
  const refused = refusedBy(error);
  if (refused) return `${host}: ${refused.message}`;
  const code = codeOf(error);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `${host}: no connection within ${timeouts.connectTimeoutMs} ms`;
    case 'UND_ERR_HEADERS_TIMEOUT':
      return `${host}: no response headers within ${timeouts.headersTimeoutMs} ms`;
    case 'UND_ERR_BODY_TIMEOUT':
      return `${host}: the response body stalled for more than ${timeouts.bodyTimeoutMs} ms`;
    case 'ECONNREFUSED':
      return `${host}: connection refused`;
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return `${host}: connection reset or closed by the upstream`;
    case 'ENOTFOUND':
    case 'EAI_NONAME':
      return `${host}: host not found`;
    case 'EAI_AGAIN':
      return `${host}: name resolution failed temporarily`;
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return `${host}: the response body did not match its Content-Length`;
    default:
      if (isAbort(error)) return `${host}: request aborted`;
      return `${host}: ${(error as Error | null)?.message ?? String(error)}${code ? ` (${code})` : ''}`;
  }
}
