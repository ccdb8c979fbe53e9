// What the console shows at a glance (issue 20): the instance's public address (for the "connect your
// nodes" snippets), a registry's hits, misses and bytes per hour, and its usage (what its cache holds
// and saves, per upstream).
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, sendResult } from '../context.ts';
import { errorResponses } from '../openapi.ts';
import { idParams, instanceSchema, registryStatisticsSchema, registryUsageSchema, statisticsQuery } from '../schemas.ts';

export function overviewRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  app.get('/instance', {
    schema: { summary: 'This instance as clients reach it: its public URL and registry host', tags: ['instance'], response: { 200: instanceSchema, ...errorResponses() } },
  }, async (request, reply) => {
    const publicUrl = (deps.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/+$/, '');
    return reply.send({ public_url: publicUrl, registry_host: new URL(publicUrl).host, service: deps.service });
  });

  app.get('/registries/:id/statistics', {
    schema: {
      summary: 'A registry\'s cache hits, misses and bytes (from the cache, from upstreams) per hour, over the last `hours` hours (default 24); written every few seconds',
      tags: ['registries'], params: idParams, querystring: statisticsQuery, response: { 200: registryStatisticsSchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => sendResult(request, reply, await deps.registryTraffic.statistics(actorOf(request), request.params.id, request.query.hours)));

  app.get('/registries/:id/usage', {
    schema: {
      summary: 'What a registry\'s cache holds and saves: bytes stored and entries, hits, misses, bytes served from the cache and fetched from upstreams, evictions; in all and per upstream',
      tags: ['registries'], params: idParams, response: { 200: registryUsageSchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => sendResult(request, reply, await deps.storageUsage.registry(actorOf(request), request.params.id)));
}
