// The current user, and users (instance admins): create, list, show, block/unblock, delete.
import { z } from 'zod';
import { err } from '../../../result.ts';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { createUserBody, idParams, paginationQuery, userSchema } from '../schemas.ts';

const tags = ['users'];

export function userRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const users = deps.userService;

  app.get('/user', {
    schema: { summary: 'The current user', tags, response: { 200: userSchema, ...errorResponses() } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    if (actor.kind !== 'user') return sendResult(request, reply, err('forbidden', 'only users have a profile: this is a group token'));
    return sendResource(request, reply, await users.get(actor, actor.userId));
  });

  app.get('/users', {
    schema: { summary: 'List users (admins)', tags, querystring: paginationQuery, response: { 200: z.array(userSchema), ...errorResponses(400) } },
  }, async (request, reply) => sendPage(request, reply, await users.list(actorOf(request), request.query)));

  app.post('/users', {
    schema: { summary: 'Create a user (admins)', tags, body: createUserBody, response: { 201: userSchema, ...errorResponses(400, 409) } },
  }, async (request, reply) => sendResource(request, reply, await users.create(actorOf(request), request.body), 201));

  app.get('/users/:id', {
    schema: { summary: 'Show a user (admins, or oneself)', tags, params: idParams, response: { 200: userSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await users.get(actorOf(request), request.params.id)));

  app.post('/users/:id/block', {
    schema: { summary: 'Block a user (admins): they can no longer sign in or use their tokens', tags, params: idParams, response: { 200: userSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await users.block(actorOf(request), request.params.id)));

  app.post('/users/:id/unblock', {
    schema: { summary: 'Unblock a user (admins)', tags, params: idParams, response: { 200: userSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await users.unblock(actorOf(request), request.params.id)));

  app.delete('/users/:id', {
    schema: { summary: 'Delete a user (admins); never the last owner of a group', tags, params: idParams, response: { 204: noContent, ...errorResponses(400, 404, 409, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const unchanged = await checkUnmodifiedSince(request, () => users.get(actor, request.params.id));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await users.delete(actor, request.params.id), 204);
  });
}
