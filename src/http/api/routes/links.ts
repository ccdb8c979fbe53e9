// Registry-upstream links: link an existing upstream of the group (at the next position), move a link
// to a position (the others shift; positions stay 1..N), remove a link (the upstream stays).
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { idParams, linkUpstreamBody, movePositionBody, registryUpstreamSchema } from '../schemas.ts';

const tags = ['registry upstreams'];

export function linkRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const links = deps.registryUpstreamService;

  app.post('/registries/:id/upstream_links', {
    schema: { summary: 'Link an existing upstream of the registry\'s group at the next position (maintainers)', tags, params: idParams, body: linkUpstreamBody, response: { 201: registryUpstreamSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => sendResource(request, reply, await links.link(actorOf(request), request.params.id, request.body.upstream_id), 201));

  app.get('/registry_upstreams/:id', {
    schema: { summary: 'Show a link', tags, params: idParams, response: { 200: registryUpstreamSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await deps.linkQueries.get(actorOf(request), request.params.id)));

  app.patch('/registry_upstreams/:id', {
    schema: { summary: 'Move a link to a position (maintainers)', tags, params: idParams, body: movePositionBody, response: { 200: registryUpstreamSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await links.move(actorOf(request), request.params.id, request.body.position)));

  app.delete('/registry_upstreams/:id', {
    schema: { summary: 'Remove a link; the upstream stays in the group (maintainers)', tags, params: idParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const unchanged = await checkUnmodifiedSince(request, () => deps.linkQueries.get(actor, request.params.id));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await links.unlink(actor, request.params.id), 204);
  });
}
