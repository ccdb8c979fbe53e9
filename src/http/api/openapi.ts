// The parts of the OpenAPI document that are not a route: the description of the conventions every
// route follows, the security schemes, and the error responses each route declares.
import { z } from 'zod';
import { problemSchema } from './schemas.ts';

export const OPENAPI_INFO = {
  title: 'Manifold management API',
  version: '1',
  description: [
    'Users, groups, tokens, virtual registries, upstreams, cache entries and cleanup policies of a Manifold instance.',
    '',
    '**Authentication**: `Authorization: Bearer <access token>`, `PRIVATE-TOKEN: <access token>`, or HTTP Basic with a username and',
    'password (or any username and an access token). A token\'s scopes narrow its owner\'s role: `read_api` reads, `api` reads and writes.',
    'Missing or invalid credentials: 401 with `WWW-Authenticate: Basic realm="manifold"`. Deploy tokens only pull images: 403 here.',
    '',
    '**Permissions** (per group): guests and above read; maintainers and above create, change and delete registries, upstreams, links',
    'and cache entries; owners manage members, group and deploy tokens, the cleanup policy and read audit events. Instance admins may do',
    'everything. What a caller may not see is 404; what they may see but not change is 403.',
    '',
    '**Errors** are `application/problem+json` (RFC 9457): `type` (`urn:manifold:problem:<reason>`), `title`, `status`, `detail`, and',
    '`errors` (messages per input field) for invalid input. 400 invalid input (also a group\'s or registry\'s limit reached), 401, 403,',
    '404, 409 conflict (a name taken, the last owner), 412 `If-Unmodified-Since` failed, 415 unsupported content type, 503 database',
    'unavailable.',
    '',
    '**Pagination**: `page` (from 1) and `per_page` (default 20, at most 100); headers `X-Total`, `X-Total-Pages`, `X-Page`, `X-Per-Page`,',
    '`X-Next-Page`, `X-Prev-Page` and `Link` (RFC 8288: first, prev, next, last).',
    '',
    '**Times** are epoch milliseconds. Single resources carry `Last-Modified`; the `DELETE` of a resource that has one honours',
    '`If-Unmodified-Since` (412 when the resource changed after that date; token revocations do not: tokens never change). A group',
    '`{id}` may also be the group\'s path. Every answer is `Cache-Control: no-store`.',
  ].join('\n'),
};

export const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: 'a personal or group access token (`mfpat_…`, `mfgat_…`)' },
  privateToken: { type: 'apiKey', in: 'header', name: 'PRIVATE-TOKEN', description: 'an access token' },
  basic: { type: 'http', scheme: 'basic', description: 'username and password, or any username and an access token' },
} as const;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'invalid input: messages per field in `errors`',
  401: 'missing or invalid credentials',
  403: 'the caller may see the resource but not do this (or has no API access: deploy tokens, tokens without api/read_api)',
  404: 'no such resource, or the caller may not see it',
  409: 'conflicts with the current state (a name taken, already a member, the last owner)',
  412: 'If-Unmodified-Since: the resource changed after that date',
  415: 'unsupported content type: send application/json',
  503: 'the database is unavailable; try again',
};

/** Response entries for these error statuses, all with the Problem body. */
export function errorResponses(...statuses: number[]) {
  const responses: Record<number, { description: string; content: { 'application/problem+json': { schema: typeof problemSchema } } }> = {};
  for (const status of [...new Set([401, 403, ...statuses, 503])].sort((a, b) => a - b)) {
    responses[status] = { description: ERROR_DESCRIPTIONS[status] ?? 'error', content: { 'application/problem+json': { schema: problemSchema } } };
  }
  return responses;
}

/** The 204 of a delete: no body. */
export const noContent = z.null().describe('done; no body');

/** Headers of every list response, documented once here and in the description above. */
export const LIST_DESCRIPTION = 'A page of results; see X-Total, X-Page, X-Per-Page and Link.';
