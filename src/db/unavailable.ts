// The one place that decides whether a database error means "the database is unavailable" (refused or
// dropped connections, timeouts, a server shutting down, a SQLite file locked for longer than the busy
// timeout). The drivers' errors of that kind are rethrown as DatabaseUnavailableError, whose message
// names no host: services turn it into the `unavailable` result, the HTTP layer into a 503.

/** SQLSTATE codes of a server that is going away, not answering in time, or full. */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown: pg_terminate_backend, a fast shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery
  '57P05', // idle_session_timeout
  '57014', // query_canceled: statement_timeout
  '53300', // too_many_connections
  '25P03', // idle_in_transaction_session_timeout
]);

/** Socket errors of a database that cannot be reached. */
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOENT', 'ECONNABORTED']);

/** node-postgres and pg-pool say these in words, without a code. */
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Query read timeout/,
  /is not queryable/,
  /^Cannot use a pool after calling end/,
  /^Client was closed/,
];

/** SQLITE_BUSY (5) and SQLITE_LOCKED (6): another connection holds the lock past the busy timeout. */
const SQLITE_BUSY_CODES = new Set([5, 6]);

export class DatabaseUnavailableError extends Error {
  /** What went wrong, in words that name no host or address (safe for any log or answer). */
  readonly kind: string;

  constructor(kind: string, cause: unknown) {
    super(`the database is unavailable (${kind})`, { cause });
    this.name = 'DatabaseUnavailableError';
    this.kind = kind;
  }
}

/** The kind of unavailability this driver error shows, or null for any other error (a bug, a constraint). */
export function unavailabilityOf(error: unknown): string | null {
  if (error instanceof DatabaseUnavailableError) return error.kind;
  if (typeof error !== 'object' || error === null) return null;
  const { code, errcode, message } = error as { code?: unknown; errcode?: unknown; message?: unknown };
  if (typeof code === 'string' && UNAVAILABLE_SQLSTATES.has(code)) return code === '57014' ? 'statement timeout' : `server ${code}`;
  if (typeof code === 'string' && code.startsWith('08')) return `connection failure ${code}`;
  if (typeof code === 'string' && UNAVAILABLE_ERRNOS.has(code)) return `connection ${code}`;
  if (typeof errcode === 'number' && SQLITE_BUSY_CODES.has(errcode & 0xff)) return 'database file locked';
  if (typeof message === 'string') {
    if (UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message))) return /timeout/i.test(message) ? 'timeout' : 'connection lost';
    if (/^database (table )?is locked/.test(message)) return 'database file locked';
  }
  // AggregateError of a connect to several addresses (localhost → ::1 and 127.0.0.1).
  if (error instanceof AggregateError && error.errors.length > 0 && error.errors.every((inner) => unavailabilityOf(inner) !== null)) {
    return unavailabilityOf(error.errors[0]);
  }
  return null;
}

export function isDatabaseUnavailable(error: unknown): boolean {
  return unavailabilityOf(error) !== null;
}

/** The error as a DatabaseUnavailableError when it is one of unavailability, else unchanged. */
export function classifyDatabaseError(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError) return error;
  const kind = unavailabilityOf(error);
  return kind === null ? error : new DatabaseUnavailableError(kind, error);
}
