// Members of a group: every member lists them; owners add, change roles and remove (never the last owner).
import { z } from 'zod';
import { err } from '../../../result.ts';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, groupIdOf, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { addMemberBody, changeRoleBody, groupMemberParams, groupParams, memberSchema, paginationQuery } from '../schemas.ts';

const tags = ['members'];

export function memberRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const members = deps.membershipService;
  const groups = deps.groupService;

  app.get('/groups/:id/members', {
    schema: { summary: 'List the members of a group', tags, params: groupParams, querystring: paginationQuery, response: { 200: z.array(memberSchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendPage(request, reply, group.ok ? await members.list(actor, { ...request.query, group_id: group.value }) : group);
  });

  app.post('/groups/:id/members', {
    schema: { summary: 'Add a member with a role (owners)', tags, params: groupParams, body: addMemberBody, response: { 201: memberSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, group.ok ? await members.add(actor, { ...request.body, group_id: group.value }) : group, 201);
  });

  app.patch('/groups/:id/members/:user_id', {
    schema: { summary: 'Change a member\'s role (owners); the last owner stays owner', tags, params: groupMemberParams, body: changeRoleBody, response: { 200: memberSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, group.ok ? await members.changeRole(actor, { ...request.body, user_id: request.params.user_id, group_id: group.value }) : group);
  });

  app.delete('/groups/:id/members/:user_id', {
    schema: { summary: 'Remove a member (owners); never the last owner', tags, params: groupMemberParams, response: { 204: noContent, ...errorResponses(400, 404, 409, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    if (!group.ok) return sendResult(request, reply, group);
    const input = { group_id: group.value, user_id: request.params.user_id };
    const unchanged = await checkUnmodifiedSince(request, async () => {
      // The member as the caller sees it: the group's members are a short list, read a page at a time.
      for (let page = 1; ; page++) {
        const listed = await members.list(actor, { group_id: group.value, page, per_page: 100 });
        if (!listed.ok) return listed;
        const found = listed.value.items.find((member) => member.user_id === input.user_id);
        if (found) return { ok: true, value: found } as const;
        if (page * 100 >= listed.value.total) return err('not_found', 'member not found');
      }
    });
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await members.remove(actor, input), 204);
  });
}
