// Upstreams: of a group (list with search, create, test an unsaved one), of a registry (list in order,
// create and link last), and one upstream (show, update, delete, test). Passwords are write-only.
import { z } from 'zod';
import { invalid, ok } from '../../../result.ts';
import type { FieldErrors, Result } from '../../../result.ts';
import { testConnection } from '../../../upstream/connection-test.ts';
import type { UpstreamTarget } from '../../../upstream/types.ts';
import { checkUpstreamUrl } from '../../../upstream/url.ts';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { actorOf, checkUnmodifiedSince, groupIdOf, pageOf, sendPage, sendResource, sendResult } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import {
  connectionTestSchema, createUpstreamBody, groupParams, idParams, paginationQuery, registryUpstreamSchema, searchQuery,
  testSavedUpstreamBody, testUnsavedUpstreamBody, updateUpstreamBody, upstreamSchema,
} from '../schemas.ts';

const tags = ['upstreams'];

type Credentials = { username?: string | null; password?: string | null };

/** Username and password go together (a password alone would be sent to nobody). */
function credentialErrors(input: Credentials): FieldErrors {
  const hasUser = input.username !== undefined && input.username !== null;
  const hasPassword = input.password !== undefined && input.password !== null;
  if (hasPassword && !hasUser) return { username: ['is required when a password is given'] };
  if (hasUser && !hasPassword) return { password: ['is required when a username is given'] };
  return {};
}

/** The URL rules of saved upstreams (syntax, internal addresses) for a URL under test. */
async function checkedTarget(base: UpstreamTarget, input: { url?: string; token_url?: string | null } & Credentials, allowPrivate: boolean): Promise<Result<UpstreamTarget>> {
  const fields: FieldErrors = credentialErrors(input);
  let url = base.url;
  if (input.url !== undefined) {
    const checked = await checkUpstreamUrl(input.url, allowPrivate);
    if (checked.ok) url = checked.value;
    else fields.url = [checked.message];
  }
  let tokenUrl = base.tokenUrl;
  if (input.token_url !== undefined) {
    const checked = input.token_url === null ? ok(null) : await checkUpstreamUrl(input.token_url, allowPrivate);
    if (checked.ok) tokenUrl = checked.value;
    else fields.token_url = [checked.message];
  }
  if (Object.keys(fields).length > 0) return invalid(fields);
  // Credentials belong to a host: a different URL is tried only with the credentials given here.
  const keepSaved = input.username === undefined && url === base.url;
  return ok({
    id: base.id,
    url,
    tokenUrl,
    username: keepSaved ? base.username : (input.username ?? null),
    password: keepSaved ? base.password : (input.password ?? null),
  });
}

export function upstreamRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  const upstreams = deps.upstreamService;
  const links = deps.registryUpstreamService;
  const groups = deps.groupService;

  /** The test's outcome is the answer, not an error: only our own refusals (input, permission) are. */
  async function runTest(target: UpstreamTarget): Promise<z.output<typeof connectionTestSchema>> {
    const tested = await testConnection(deps.upstreamClient, target);
    if (tested.ok) return { success: true, status: tested.value.status, message: tested.value.status === 404 ? 'the upstream answers and accepts the credentials (the test image does not exist there)' : 'the upstream answers and accepts the credentials' };
    const status = (tested.cause as { status?: number | null } | undefined)?.status ?? null;
    return { success: false, status, message: tested.message };
  }

  app.get('/groups/:id/upstreams', {
    schema: { summary: 'List the upstreams of a group, optionally those whose name contains `search`', tags, params: groupParams, querystring: searchQuery, response: { 200: z.array(upstreamSchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendPage(request, reply, group.ok ? await upstreams.list(actor, group.value, request.query) : group);
  });

  app.post('/groups/:id/upstreams', {
    schema: { summary: 'Create an upstream of the group without linking it (maintainers)', tags, params: groupParams, body: createUpstreamBody, response: { 201: upstreamSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    return sendResource(request, reply, group.ok ? await upstreams.create(actor, group.value, request.body) : group, 201);
  });

  app.post('/groups/:id/upstreams/test', {
    schema: { summary: 'Test the connection to an unsaved upstream (maintainers)', tags, params: groupParams, body: testUnsavedUpstreamBody, response: { 200: connectionTestSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const group = await groupIdOf(groups, actor, request.params.id);
    if (!group.ok) return sendResult(request, reply, group);
    const allowed = await upstreams.authorizeCreate(actor, group.value);
    if (!allowed.ok) return sendResult(request, reply, allowed);
    const target = await checkedTarget({ id: 0, url: '', username: null, password: null, tokenUrl: null }, request.body, deps.allowPrivateUpstreams);
    if (!target.ok) return sendResult(request, reply, target);
    return reply.send(await runTest(target.value));
  });

  app.get('/registries/:id/upstreams', {
    schema: { summary: 'List the upstreams of a registry by position', tags, params: idParams, querystring: paginationQuery, response: { 200: z.array(registryUpstreamSchema), ...errorResponses(400, 404) } },
  }, async (request, reply) => sendPage(request, reply, pageOf(await links.listForRegistry(actorOf(request), request.params.id), request.query)));

  app.post('/registries/:id/upstreams', {
    schema: { summary: 'Create an upstream in the registry\'s group and link it at the next position (maintainers)', tags, params: idParams, body: createUpstreamBody, response: { 201: registryUpstreamSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => sendResource(request, reply, await links.createUpstreamForRegistry(actorOf(request), request.params.id, request.body), 201));

  app.get('/upstreams/:id', {
    schema: { summary: 'Show an upstream (never its password)', tags, params: idParams, response: { 200: upstreamSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => sendResource(request, reply, await upstreams.get(actorOf(request), request.params.id)));

  app.patch('/upstreams/:id', {
    schema: { summary: 'Change an upstream (maintainers)', tags, params: idParams, body: updateUpstreamBody, response: { 200: upstreamSchema, ...errorResponses(400, 404, 409) } },
  }, async (request, reply) => sendResource(request, reply, await upstreams.update(actorOf(request), request.params.id, request.body)));

  app.delete('/upstreams/:id', {
    schema: { summary: 'Delete an upstream: unlinked from its registries, its cache purged (maintainers)', tags, params: idParams, response: { 204: noContent, ...errorResponses(400, 404, 412) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    const unchanged = await checkUnmodifiedSince(request, () => upstreams.get(actor, request.params.id));
    if (!unchanged.ok) return sendResult(request, reply, unchanged);
    return sendResult(request, reply, await upstreams.destroy(actor, request.params.id), 204);
  });

  app.post('/upstreams/:id/test', {
    schema: { summary: 'Test the connection to a saved upstream, optionally with another url or credentials (maintainers)', tags, params: idParams, body: testSavedUpstreamBody.nullish(), response: { 200: connectionTestSchema, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const saved = await upstreams.getTarget(actorOf(request), request.params.id);
    if (!saved.ok) return sendResult(request, reply, saved);
    const target = await checkedTarget(saved.value, request.body ?? {}, deps.allowPrivateUpstreams);
    if (!target.ok) return sendResult(request, reply, target);
    return reply.send(await runTest(target.value));
  });
}
