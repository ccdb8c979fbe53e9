// A database outage as HTTP answers it everywhere (/v2, /auth/token, /api/v1): 503 with Retry-After,
// in each surface's own error format, and a message that names no host.
import type { FastifyReply } from 'fastify';
import type { Err } from '../result.ts';
import { isDatabaseUnavailable } from '../services/database.ts';

/** Seconds a client should wait before trying again. */
export const RETRY_AFTER_SECONDS = 5;

export const UNAVAILABLE_MESSAGE = 'the database is unavailable; try again shortly';

/** True for the `unavailable` result and for a DatabaseUnavailableError that escaped a service. */
export function isUnavailable(failure: Err<string> | unknown): boolean {
  if (typeof failure === 'object' && failure !== null && (failure as Err<string>).ok === false) return (failure as Err<string>).reason === 'unavailable';
  return isDatabaseUnavailable(failure);
}

export function retryLater(reply: FastifyReply): FastifyReply {
  return reply.header('retry-after', String(RETRY_AFTER_SECONDS));
}
