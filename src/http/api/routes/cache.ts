// Cache entries of an upstream (list, delete one) and purges of a registry's or an upstream's cache.
// Deleting marks entries for the destroy worker: instant, whatever the size of the cache.
import { z } from 'zod';
import { ok } from '../../../result.ts';
import type { Result } from '../../../result.ts';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, forbiddenNotUnauthorized, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { cacheEntryQuery, cacheEntrySchema, idParams, purgeSchema } from '../schemas.ts';

const purged = (result: Result<{ marked: number }>): Result<{ marked_entries: number }> =>
  result.ok ? ok({ marked_entries: result.value.marked }) : forbiddenNotUnauthorized(result);

export function cacheRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const entries = deps.cacheEntryQueries;
  const marks = deps.cacheEntries;

  app.get('/upstreams/:id/cache_entries', {
    schema: { summary: 'List the cache entries of an upstream, newest first, optionally those whose path contains `search`', tags: ['cache entries'], params: idParams, querystring: cacheEntryQuery, response: { 200: z.array(cacheEntrySchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => sendPage(request, reply, await entries.list(actorOf(request), request.params.id, request.query)));

  app.get('/registries/:id/cache_entries', {
    schema: { summary: 'List the cache entries of all the upstreams a registry links, optionally those whose path contains `search`', tags: ['cache entries'], params: idParams, querystring: cacheEntryQuery, response: { 200: z.array(cacheEntrySchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => sendPage(request, reply, await entries.listForRegistry(actorOf(request), request.params.id, request.query)));

  app.get('/cache_entries/:id', {
    schema: { summary: 'Show a cache entry', tags: ['cache entries'], params: idParams, response: { 200: cacheEntrySchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await entries.get(actorOf(request), request.params.id)));

  app.delete('/cache_entries/:id', {
    schema: { summary: 'Delete a cache entry (maintainers); the next pull fetches it again', tags: ['cache entries'], params: idParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const unchanged = await checkUnmodifiedSince(request, () => entries.get(actor, request.params.id));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, forbiddenNotUnauthorized(await marks.markEntryForDestruction(actor, request.params.id)), 204);
  });

  app.delete('/registries/:id/cache', {
    schema: { summary: 'Purge a registry\'s cache: the entries of the upstreams only it uses (maintainers)', tags: ['cache entries'], params: idParams, response: { 202: purgeSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResult(request, reply, purged(await marks.markRegistryForDestruction(actorOf(request), request.params.id)), 202));

  app.delete('/upstreams/:id/cache', {
    schema: { summary: 'Purge an upstream\'s cache (maintainers)', tags: ['cache entries'], params: idParams, response: { 202: purgeSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResult(request, reply, purged(await marks.markUpstreamForDestruction(actorOf(request), request.params.id)), 202));
}
