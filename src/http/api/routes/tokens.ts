// Access tokens: personal tokens of the current user; group access tokens and deploy tokens (owners).
// The plaintext is in the create response only.
import { z } from 'zod';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, groupIdOf, sendPage, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import {
  createDeployTokenBody, createGroupTokenBody, createPersonalTokenBody, createdTokenSchema, groupParams, groupTokenParams,
  paginationQuery, tokenParams, tokenSchema,
} from '../schemas.ts';

export function tokenRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const tokens = deps.tokenService;
  const groups = deps.groupService;

  app.get('/user/personal_access_tokens', {
    schema: { summary: 'List the current user\'s personal access tokens, newest first', tags: ['personal access tokens'], querystring: paginationQuery, response: { 200: z.array(tokenSchema), ...errorResponses(400) } },
  }, async (request, reply) => sendPage(request, reply, await tokens.listPersonal(actorOf(request), request.query)));

  app.post('/user/personal_access_tokens', {
    schema: { summary: 'Create a personal access token (the plaintext is returned once)', tags: ['personal access tokens'], body: createPersonalTokenBody, response: { 201: createdTokenSchema, ...errorResponses(400) } },
  }, async (request, reply) => sendResult(request, reply, await tokens.createPersonal(actorOf(request), request.body), 201));

  app.delete('/user/personal_access_tokens/:token_id', {
    schema: { summary: 'Revoke one of the current user\'s personal access tokens', tags: ['personal access tokens'], params: tokenParams, response: { 204: noContent, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResult(request, reply, await tokens.revoke(actorOf(request), { id: request.params.token_id, kind: 'personal' }), 204));

  for (const kind of ['group', 'deploy'] as const) {
    const path = kind === 'group' ? 'access_tokens' : 'deploy_tokens';
    const tag = kind === 'group' ? 'group access tokens' : 'deploy tokens';
    const what = kind === 'group' ? 'group access tokens (robots of the group with a role)' : 'deploy tokens (pull only)';

    app.get(`/groups/:id/${path}`, {
      schema: { summary: `List the group's ${what} (owners)`, tags: [tag], params: groupParams, querystring: paginationQuery, response: { 200: z.array(tokenSchema), ...errorResponses(400, 404) } },
    }, async (request, reply) => {
      const actor = actorOf(request);
      const group = await groupIdOf(groups, actor, request.params.id);
      if (!group.ok) return sendResult(request, reply, group);
      const input = { ...request.query, group_id: group.value };
      return sendPage(request, reply, kind === 'group' ? await tokens.listGroupTokens(actor, input) : await tokens.listDeployTokens(actor, input));
    });

    app.post(`/groups/:id/${path}`, {
      schema: {
        summary: `Create one of the group's ${what} (owners; the plaintext is returned once)`, tags: [tag], params: groupParams,
        body: kind === 'group' ? createGroupTokenBody : createDeployTokenBody, response: { 201: createdTokenSchema, ...errorResponses(400, 404) },
      },
    }, async (request, reply) => {
      const actor = actorOf(request);
      const group = await groupIdOf(groups, actor, request.params.id);
      if (!group.ok) return sendResult(request, reply, group);
      const created = kind === 'group'
        ? await tokens.createGroupToken(actor, { ...(request.body as z.output<typeof createGroupTokenBody>), group_id: group.value })
        : await tokens.createDeployToken(actor, { ...(request.body as z.output<typeof createDeployTokenBody>), group_id: group.value });
      return sendResult(request, reply, created, 201);
    });

    app.delete(`/groups/:id/${path}/:token_id`, {
      schema: { summary: `Revoke one of the group's ${what} (owners)`, tags: [tag], params: groupTokenParams, response: { 204: noContent, ...errorResponses(400, 404) } },
    }, async (request, reply) => {
      const actor = actorOf(request);
      const group = await groupIdOf(groups, actor, request.params.id);
      if (!group.ok) return sendResult(request, reply, group);
      return sendResult(request, reply, await tokens.revoke(actor, { id: request.params.token_id, kind, group_id: group.value }), 204);
    });
  }
}
