// Groups: create (any user; the creator becomes owner), list (those the caller may see), show, update
// and delete (owners).
import { z } from 'zod';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, groupIdOf, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { createGroupBody, groupParams, groupSchema, paginationQuery, updateGroupBody } from '../schemas.ts';

const tags = ['groups'];

export function groupRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const groups = deps.groupService;

  app.get('/groups', {
    schema: { summary: 'List the groups the caller may see (all of them for admins)', tags, querystring: paginationQuery, response: { 200: z.array(groupSchema), ...errorResponses(400) } },
  }, async (request, reply) => sendPage(request, reply, await groups.list(actorOf(request), request.query)));

  app.post('/groups', {
    schema: { summary: 'Create a group; the creator becomes its owner', tags, body: createGroupBody, response: { 201: groupSchema, ...errorResponses(400, 409) } },
  }, async (request, reply) => sendResource(request, reply, await groups.create(actorOf(request), request.body), 201));

  app.get('/groups/:id', {
    schema: { summary: 'Show a group', tags, params: groupParams, response: { 200: groupSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const id = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, id.ok ? await groups.get(actor, id.value) : id);
  });

  app.patch('/groups/:id', {
    schema: { summary: 'Change a group\'s name or description (owners); the path never changes', tags, params: groupParams, body: updateGroupBody, response: { 200: groupSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const id = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, id.ok ? await groups.update(actor, id.value, request.body) : id);
  });

  app.delete('/groups/:id', {
    schema: { summary: 'Delete a group with its members, tokens, registries and upstreams (owners); its cache is purged', tags, params: groupParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const id = await groupIdOf(groups, actor, request.params.id);
    if (!id.ok) return sendResult(request, reply, id);
    const unchanged = await checkUnmodifiedSince(request, () => groups.get(actor, id.value));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await groups.delete(actor, id.value), 204);
  });
}
