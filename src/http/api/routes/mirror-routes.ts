// The instance's mirror routes (instance admins): an upstream registry host as clients name it → a
// registry; one route may be the default (requests without `ns`).
import { z } from 'zod';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, pageOf, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { createMirrorRouteBody, idParams, mirrorRouteSchema, paginationQuery, updateMirrorRouteBody } from '../schemas.ts';

const tags = ['mirror routes'];

export function mirrorRouteRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const routes = deps.mirrorRouteService;

  app.get('/mirror_routes', {
    schema: { summary: 'List the mirror routes, by host (instance admins)', tags, querystring: paginationQuery, response: { 200: z.array(mirrorRouteSchema), ...errorResponses(400) } },
  }, async (request, reply) => sendPage(request, reply, pageOf(await routes.list(actorOf(request)), request.query)));

  app.post('/mirror_routes', {
    schema: { summary: 'Route an upstream host (`docker.io`, `ghcr.io`) to a registry (instance admins)', tags, body: createMirrorRouteBody, response: { 201: mirrorRouteSchema, ...errorResponses(400, 409) } },
  }, async (request, reply) => sendResource(request, reply, await routes.create(actorOf(request), request.body), 201));

  app.get('/mirror_routes/:id', {
    schema: { summary: 'Show a mirror route (instance admins)', tags, params: idParams, response: { 200: mirrorRouteSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await routes.get(actorOf(request), request.params.id)));

  app.patch('/mirror_routes/:id', {
    schema: { summary: 'Change a mirror route\'s host, registry or default flag (instance admins)', tags, params: idParams, body: updateMirrorRouteBody, response: { 200: mirrorRouteSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => sendResource(request, reply, await routes.update(actorOf(request), request.params.id, request.body)));

  app.delete('/mirror_routes/:id', {
    schema: { summary: 'Remove a mirror route (instance admins)', tags, params: idParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const unchanged = await checkUnmodifiedSince(request, () => routes.get(actor, request.params.id));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await routes.destroy(actor, request.params.id), 204);
  });
}
