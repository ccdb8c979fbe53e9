// Virtual registries of a group: list and create; a registry: show (with its upstreams in order),
// update, delete (with the upstreams only it uses).
import { z } from 'zod';
import { ok } from '../../../result.ts';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, groupIdOf, pageOf, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { createRegistryBody, groupParams, idParams, paginationQuery, registryDetailSchema, registrySchema, updateRegistryBody } from '../schemas.ts';

const tags = ['registries'];

export function registryRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const registries = deps.registryService;
  const links = deps.registryUpstreamService;
  const groups = deps.groupService;

  app.get('/groups/:id/registries', {
    schema: { summary: 'List the registries of a group', tags, params: groupParams, querystring: paginationQuery, response: { 200: z.array(registrySchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendPage(request, reply, pageOf(group.ok ? await registries.list(actor, group.value) : group, request.query));
  });

  app.post('/groups/:id/registries', {
    schema: { summary: 'Create a registry (maintainers); a group has at most limits.registriesPerGroup of them', tags, params: groupParams, body: createRegistryBody, response: { 201: registrySchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, group.ok ? await registries.create(actor, group.value, request.body) : group, 201);
  });

  app.get('/registries/:id', {
    schema: { summary: 'Show a registry with its upstreams by position', tags, params: idParams, response: { 200: registryDetailSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const registry = await registries.get(actor, request.params.id);
    if (!registry.ok) return sendResult(request, reply, registry);
    const upstreams = await links.listForRegistry(actor, request.params.id);
    return sendResource(request, reply, upstreams.ok ? ok({ ...registry.value, upstreams: upstreams.value }) : upstreams);
  });

  app.patch('/registries/:id', {
    schema: { summary: 'Change a registry\'s name or description (maintainers)', tags, params: idParams, body: updateRegistryBody, response: { 200: registrySchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => sendResource(request, reply, await registries.update(actorOf(request), request.params.id, request.body)));

  app.delete('/registries/:id', {
    schema: { summary: 'Delete a registry and the upstreams only it uses (maintainers); their cache is purged', tags, params: idParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const unchanged = await checkUnmodifiedSince(request, () => registries.get(actor, request.params.id));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await registries.destroy(actor, request.params.id), 204);
  });
}
