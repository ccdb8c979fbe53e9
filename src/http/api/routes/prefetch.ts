// Prefetch jobs (issue 18): fill a registry's cache with images (and platforms) before they are pulled.
// Maintainers and above create and cancel them; whoever may read the registry sees them and their progress.
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, sendPage, sendResource, sendResult } from '../context.ts';
import { LIST_DESCRIPTION, errorResponses } from '../openapi.ts';
import { idParams, paginationQuery, prefetchBody, prefetchJobSchema } from '../schemas.ts';
import { z } from 'zod';

const tags = ['prefetch'];

export function prefetchRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const jobs = deps.prefetchJobs;

  app.post('/registries/:id/prefetch', {
    schema: {
      summary: 'Prefetch images into the registry\'s cache (maintainers): a job that fills their manifests and blobs, for the platforms given (default: all), through the normal pull path',
      tags, params: idParams, body: prefetchBody,
      response: { 202: prefetchJobSchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const created = await jobs.create(actorOf(request), request.params.id, request.body);
    if (created.ok) reply.header('Location', `${request.url.split('/registries/')[0]}/prefetch_jobs/${created.value.id}`);
    return sendResult(request, reply, created, 202);
  });

  app.get('/registries/:id/prefetch_jobs', {
    schema: { summary: 'List the registry\'s prefetch jobs, newest first', description: LIST_DESCRIPTION, tags, params: idParams, querystring: paginationQuery, response: { 200: z.array(prefetchJobSchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => sendPage(request, reply, await jobs.list(actorOf(request), request.params.id, request.query)));

  app.get('/prefetch_jobs/:id', {
    schema: { summary: 'Show a prefetch job and its progress (done and total objects and bytes)', tags, params: idParams, response: { 200: prefetchJobSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await jobs.get(actorOf(request), request.params.id)));

  app.delete('/prefetch_jobs/:id', {
    schema: { summary: 'Cancel a queued or running prefetch job (maintainers); 409 when it has finished', tags, params: idParams, response: { 200: prefetchJobSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => sendResult(request, reply, await jobs.cancel(actorOf(request), request.params.id)));
}
