// A part of the HTTP surface built on its first request (issue 19): the management API is an application
// of its own (with the shell of src/http/app.ts: logging, metrics, error formats) that the main application
// forwards `<prefix>` and `<prefix>/*` to. A cache that only serves pulls never builds it: its routes, schemas
// and OpenAPI document were about 8 MB of an idle server's memory, and in the server build its code is a
// chunk loaded only then.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A forwarding route: the mounted application logs and counts the request, not this one. */
    forwarded?: boolean;
  }
}

export function isForwarded(request: FastifyRequest): boolean {
  return request.routeOptions.config?.forwarded === true;
}

/**
 * Mounts the application `build` makes at `prefix`. Built once, by the first request under the prefix (the
 * others wait for the same build); a build that fails answers that request with a 500 in the path's error
 * format and is tried again by the next. Closed with the main application.
 */
export function lazyMount(app: FastifyInstance, prefix: string, build: () => Promise<FastifyInstance>): void {
  let mounted: Promise<FastifyInstance> | null = null;
  const mount = () => (mounted ??= build().then(async (inner) => {
    await inner.ready();
    return inner;
  }).catch((error: unknown) => {
    mounted = null;
    throw error;
  }));

  // In onRequest, before the body is read: the mounted application parses it, with its own limits.
  const forward = async (request: FastifyRequest, reply: FastifyReply) => {
    const inner = await mount();
    reply.hijack();
    inner.routing(request.raw, reply.raw);
  };
  const unreachable = async () => {
    throw new Error('a forwarded request reached its handler');
  };
  for (const url of [prefix, `${prefix}/*`]) app.all(url, { config: { forwarded: true }, onRequest: forward }, unreachable);
  app.addHook('onClose', async () => {
    const inner = await mounted?.catch(() => null);
    await inner?.close();
  });
}
