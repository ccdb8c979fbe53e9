// The cleanup policy of a group: members read it and its runs; owners create, change or delete it.
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, groupIdOf, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { cleanupPolicyBody, cleanupPolicySchema, cleanupRunSchema, groupParams } from '../schemas.ts';
import { z } from 'zod';

const tags = ['cleanup policy'];

export function cleanupPolicyRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const policies = deps.cleanupPolicies;
  const groups = deps.groupService;

  app.get('/groups/:id/cleanup_policy', {
    schema: { summary: 'Show the group\'s cleanup policy (404 when it has none)', tags, params: groupParams, response: { 200: cleanupPolicySchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, group.ok ? await policies.get(actor, group.value) : group);
  });

  app.put('/groups/:id/cleanup_policy', {
    schema: {
      summary: 'Create or change the group\'s cleanup policy (owners): 201 when created, 200 when changed', tags, params: groupParams, body: cleanupPolicyBody,
      response: { 200: cleanupPolicySchema, 201: cleanupPolicySchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    if (!group.ok) return sendResult(request, reply, group);
    const put = await policies.put(actor, group.value, request.body);
    if (!put.ok) return sendResult(request, reply, put);
    return sendResource(request, reply, { ok: true, value: put.value.policy }, put.value.created ? 201 : 200);
  });

  app.get('/groups/:id/cleanup_policy/runs', {
    schema: {
      summary: 'The group\'s latest cleanup runs, newest first: runs of its cleanup policy and evictions under the storage quotas, with the entries and bytes each removed',
      tags, params: groupParams, response: { 200: z.array(cleanupRunSchema), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendResult(request, reply, group.ok ? await policies.runs(actor, group.value) : group);
  });

  app.delete('/groups/:id/cleanup_policy', {
    schema: { summary: 'Delete the group\'s cleanup policy (owners)', tags, params: groupParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    if (!group.ok) return sendResult(request, reply, group);
    const unchanged = await checkUnmodifiedSince(request, () => policies.get(actor, group.value));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await policies.delete(actor, group.value), 204);
  });
}
