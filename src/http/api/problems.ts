// Errors of the management API as RFC 9457 problem details (`application/problem+json`): one mapping
// from service reasons to statuses, and Fastify's own errors (bad JSON, wrong content type, failed
// schema validation) turned into the same shape, so that bad input is never a 500.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import type { Err, FieldErrors } from '../../result.ts';
import { BASE_FIELD } from '../../services/validation.ts';
import { RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, isUnavailable } from '../unavailable.ts';

// Not an ES import: importing node:http evaluates its lazy WebSocket getters, which load Node's bundled
// fetch (undici, about 8 MB resident) that nothing here uses (issue 19).
const { STATUS_CODES } = process.getBuiltinModule('node:http');

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
/** The realm of the Basic challenge on a 401. */
export const BASIC_CHALLENGE = 'Basic realm="manifold"';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldErrors;
}

/**
 * Status of each service reason. `limit_reached` (a 6th registry or upstream) is a 400 like any
 * other refused input: the request cannot succeed as it is; `conflict` (a name taken, the last owner)
 * is a 409.
 */
export const REASON_STATUS: Record<string, number> = {
  invalid: 400,
  limit_reached: 400,
  path_not_present: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  no_upstreams: 404,
  not_found_on_upstreams: 404,
  object_not_present: 404,
  conflict: 409,
  precondition_failed: 412,
  rate_limited: 429,
  upstream_unavailable: 502,
  persistence_error: 503,
  unavailable: 503,
};

export function problem(status: number, reason: string, detail: string, errors?: FieldErrors): Problem {
  const body: Problem = { type: `urn:manifold:problem:${reason}`, title: STATUS_CODES[status] ?? 'Error', status, detail };
  if (errors && Object.keys(errors).length > 0) body.errors = errors;
  return body;
}

/** A service's failure as a problem. A limit names no field of its own: its message goes under `base`. */
export function problemOf(failure: Err<string>): Problem {
  const status = REASON_STATUS[failure.reason] ?? 500;
  const errors = failure.fields ?? (failure.reason === 'limit_reached' ? { [BASE_FIELD]: [failure.message] } : undefined);
  // A database failure's message may carry SQL details: they go to the log, not to the caller.
  const detail = failure.reason === 'persistence_error' || failure.reason === 'unavailable' ? UNAVAILABLE_MESSAGE : failure.message;
  return problem(status, failure.reason, detail, errors);
}

/**
 * Sends a problem. A 401 carries the Basic challenge, except to the console (which says so with
 * `X-Requested-With`, or by sending its session cookie): a browser would answer the challenge with its
 * own password dialog instead of letting the page show its sign-in form. A 429 or 503 says when to retry.
 */
export function sendProblem(reply: FastifyReply, body: Problem, retryAfterSeconds?: number): FastifyReply {
  if (body.status === 401 && !fromConsole(reply.request)) reply.header('www-authenticate', BASIC_CHALLENGE);
  if (body.status === 503 || body.status === 429) reply.header('retry-after', String(retryAfterSeconds ?? (body.status === 503 ? RETRY_AFTER_SECONDS : 1)));
  // Sent as text: the route's response schemas describe successes, not this body.
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}

/** The request came from the console's pages. */
export function fromConsole(request: FastifyRequest): boolean {
  return request.headers['x-requested-with'] !== undefined || /(?:^|;\s*)manifold_session=/.test(request.headers.cookie ?? '');
}

export function sendFailure(request: FastifyRequest, reply: FastifyReply, failure: Err<string>): FastifyReply {
  if (failure.reason === 'persistence_error') request.log.error({ err: failure.cause, reason: failure.reason }, failure.message);
  if (failure.reason === 'unavailable') request.log.warn({ err: failure.cause, reason: failure.reason }, failure.message);
  return sendProblem(reply, problemOf(failure), failure.retryAfterSeconds);
}

/** Where Fastify found the invalid value: body fields are named as they are, others get a prefix-free name too. */
function validationFields(error: FastifyError): FieldErrors {
  const fields: FieldErrors = {};
  for (const issue of error.validation ?? []) {
    const path = issue.instancePath.replace(/^\//, '').split('/').filter(Boolean).join('.');
    const field = path || (hasZodFastifySchemaValidationErrors(error) ? BASE_FIELD : String(issue.params?.missingProperty ?? BASE_FIELD));
    (fields[field] ??= []).push(issue.message ?? 'is invalid');
  }
  return fields;
}

/** The api's error handler: validation and parse errors are 4xx problems, anything else a logged 500. */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error.validation) {
    const context = error.validationContext ?? 'body';
    const where = context === 'querystring' ? 'query string' : context === 'params' ? 'path' : context;
    return sendProblem(reply, problem(400, 'invalid', `invalid ${where}`, validationFields(error)));
  }
  if (isUnavailable(error)) {
    // A service that let the database's unavailability escape as an exception: still a 503.
    request.log.warn({ err: error }, 'management API request failed: the database is unavailable');
    return sendProblem(reply, problem(503, 'unavailable', UNAVAILABLE_MESSAGE));
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    // Fastify's own refusals: malformed JSON (400), unsupported content type (415), body too large (413)...
    const detail = error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error.name === 'SyntaxError' ? 'the body is not valid JSON'
      : status === 415 ? 'unsupported content type: send application/json' : error.message;
    return sendProblem(reply, problem(status, status === 415 ? 'unsupported_media_type' : 'invalid', detail));
  }
  request.log.error({ err: error }, 'unexpected error in the management API');
  return sendProblem(reply, problem(500, 'internal', 'an unexpected error happened; it has been logged'));
}
