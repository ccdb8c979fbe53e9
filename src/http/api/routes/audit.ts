// Audit events, newest first: a group's (owners and admins), the instance's (admins: users and other
// events outside any group).
import { z } from 'zod';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, groupIdOf, sendPage } from '../context.ts';
import { errorResponses } from '../openapi.ts';
import { auditEventSchema, groupParams, paginationQuery } from '../schemas.ts';

const tags = ['audit events'];

export function auditRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const audit = deps.auditService;

  app.get('/groups/:id/audit_events', {
    schema: { summary: 'List the audit events of a group (owners, admins)', tags, params: groupParams, querystring: paginationQuery, response: { 200: z.array(auditEventSchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(deps.groupService, actor, request.params.id);
    return sendPage(request, reply, group.ok ? await audit.list(actor, { ...request.query, group_id: group.value }) : group);
  });

  app.get('/audit_events', {
    schema: { summary: 'List the instance\'s audit events outside any group: users and the like (admins)', tags, querystring: paginationQuery, response: { 200: z.array(auditEventSchema), ...errorResponses(400) } },
  }, async (request, reply) => sendPage(request, reply, await audit.list(actorOf(request), request.query)));
}
