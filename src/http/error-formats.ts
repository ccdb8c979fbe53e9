// Every error in its protocol's format (issue 14): on /v2 and /auth/token an OCI error body with
// `Docker-Distribution-Api-Version`, elsewhere (the management API, health, metrics) problem+json. This
// covers what no route answers: unrouted methods and paths, URLs Fastify cannot decode, parameters too
// long, errors raised outside a route's own handler, and requests Node's HTTP parser refuses before
// Fastify sees them (400, 431). One place decides the format from the path.
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ociError } from '../oci/errors.ts';
import type { OciErrorCode } from '../oci/errors.ts';
import { PROBLEM_CONTENT_TYPE, problem } from './api/problems.ts';

// Not an ES import: importing node:http evaluates its lazy WebSocket getters, which load Node's bundled
// fetch (undici, about 8 MB resident) that nothing here uses (issue 19).
const { STATUS_CODES } = process.getBuiltinModule('node:http');

export type ErrorFormat = 'oci' | 'problem';

/** The request target's path, without query. */
function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

/** /v2 and the token endpoint speak the registry protocol; everything else problem+json. */
export function errorFormatOf(url: string): ErrorFormat {
  const path = pathOf(url);
  return path === '/v2' || path.startsWith('/v2/') || path === '/auth/token' || path.startsWith('/auth/token/') ? 'oci' : 'problem';
}

const isV2 = (url: string) => {
  const path = pathOf(url);
  return path === '/v2' || path.startsWith('/v2/');
};

function ociCode(status: number): OciErrorCode {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 404) return 'NAME_UNKNOWN';
  if (status === 416) return 'RANGE_INVALID';
  if (status === 429) return 'TOOMANYREQUESTS';
  if (status >= 500) return 'UNAVAILABLE';
  return 'UNSUPPORTED';
}

const problemReason = (status: number) => (status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : status === 413 ? 'too_large' : status >= 500 ? 'internal' : 'invalid');

/** Status, headers and body of an error in the format of `url`. */
export function formattedError(url: string, status: number, message: string): { status: number; headers: Record<string, string>; body: string } {
  if (errorFormatOf(url) === 'oci') {
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    if (isV2(url)) headers['docker-distribution-api-version'] = 'registry/2.0';
    return { status, headers, body: JSON.stringify(ociError(ociCode(status), message)) };
  }
  return { status, headers: { 'content-type': PROBLEM_CONTENT_TYPE }, body: JSON.stringify(problem(status, problemReason(status), message)) };
}

function sendFormatted(request: FastifyRequest, reply: FastifyReply, status: number, message: string, extra: Record<string, string> = {}): FastifyReply {
  const { headers, body } = formattedError(request.url, status, message);
  return reply.code(status).headers({ ...headers, ...extra }).send(body);
}

/** The methods each protocol path answers; others get 405 with Allow. */
function allowedMethods(url: string): string | null {
  const path = pathOf(url);
  if (isV2(url)) return 'GET, HEAD';
  if (path === '/auth/token') return 'GET, POST';
  return null;
}

/**
 * Fastify's `frameworkErrors`: a URL it cannot decode (bad percent-encoding) or a path parameter over
 * the router's limit, answered before any route or hook runs.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
  const message = error.code === 'FST_ERR_BAD_URL' ? 'the request URL is not validly percent-encoded' : status === 414 ? 'the request URL is too long' : error.message;
  void sendFormatted(request, reply, status, message);
}

/** Fastify's `clientErrorHandler`: what Node's HTTP parser refused, answered on the raw socket. */
export function clientErrorHandler(error: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const message = status === 431 ? 'the request headers are too large' : status === 408 ? 'the request took too long to arrive' : 'the request is not valid HTTP/1.1';
  // The request line, as far as it arrived, tells which protocol the client meant.
  const raw = Buffer.isBuffer(error.rawPacket) ? error.rawPacket.toString('latin1') : '';
  const target = /^[A-Z]+ (\S+)/.exec(raw)?.[1] ?? '/';
  const { headers, body } = formattedError(target, status, message);
  if (socket.writable) {
    const lines = Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(body)), connection: 'close' }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines}\r\n${body}`);
  }
  socket.destroy(error);
}

/** Root-level handlers: unrouted methods and paths, and errors no encapsulated handler took. */
export function installErrorFormats(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const allow = allowedMethods(request.url);
    if (allow) return sendFormatted(request, reply, 405, `method ${request.method} is not supported here; use ${allow}`, { allow });
    return sendFormatted(request, reply, 404, `no route ${request.method} ${pathOf(request.url)}`);
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode <= 599 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ err: error }, 'request refused');
    return sendFormatted(request, reply, status, status >= 500 ? 'internal error' : error.message);
  });
}
