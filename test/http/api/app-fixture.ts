// The management API over real services on the test database, for `app.inject`: one app per test file,
// its pino log captured (tests search it for secrets), and a world of users in every role with tokens.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Authenticator } from '../../../src/services/authentication.ts';
import { CredentialsCipher } from '../../../src/auth/credentials-cipher.ts';
import type { Actor } from '../../../src/auth/policy.ts';
import { SYSTEM } from '../../../src/auth/policy.ts';
import { hashPassword } from '../../../src/auth/secrets.ts';
import { ROLES } from '../../../src/db/schema.ts';
import type { RoleName } from '../../../src/db/schema.ts';
import { buildApp } from '../../../src/http/app.ts';
import { apiRoutes } from '../../../src/http/api/index.ts';
import { createLogger } from '../../../src/log.ts';
import { AuditService } from '../../../src/services/audit.ts';
import { CacheEntryService } from '../../../src/services/cache-entries.ts';
import { CacheEntryQueryService } from '../../../src/services/cache-entry-queries.ts';
import { CleanupPolicyService } from '../../../src/services/cleanup-policies.ts';
import { GroupService } from '../../../src/services/groups.ts';
import { MembershipService } from '../../../src/services/memberships.ts';
import { MirrorRouteService } from '../../../src/services/mirror-routes.ts';
import { RegistryService } from '../../../src/services/registries.ts';
import { StorageUsage } from '../../../src/services/storage-usage.ts';
import { RegistryTraffic } from '../../../src/services/registry-traffic.ts';
import { RegistryUpstreamQueryService } from '../../../src/services/registry-upstream-queries.ts';
import { RegistryUpstreamService } from '../../../src/services/registry-upstreams.ts';
import { SessionService } from '../../../src/services/sessions.ts';
import { TokenService } from '../../../src/services/tokens.ts';
import { UpstreamService } from '../../../src/services/upstreams.ts';
import { UserService } from '../../../src/services/users.ts';
import { FilesystemObjectStore } from '../../../src/storage/filesystem.ts';
import { UpstreamClient } from '../../../src/upstream/client.ts';
import { createTestDatabase } from '../../helpers/db.ts';
import type { TestDatabase } from '../../helpers/db.ts';
import { insertGroup, insertMembership, insertUser } from '../../helpers/fixtures.ts';
import { newRegistryTokens, newSigningKeys } from '../../helpers/identity.ts';

import { PrefetchJobService } from '../../../src/services/prefetch-jobs.ts';

export const LIMITS = { registriesPerGroup: 5, upstreamsPerRegistry: 5 };

export interface ApiFixture {
  app: FastifyInstance;
  database: TestDatabase;
  services: {
    users: UserService;
    groups: GroupService;
    memberships: MembershipService;
    tokens: TokenService;
    registries: RegistryService;
    upstreams: UpstreamService;
    links: RegistryUpstreamService;
    mirrorRoutes: MirrorRouteService;
    prefetchJobs: PrefetchJobService;
  };
  cleanupPolicies: CleanupPolicyService;
  /** `METHOD /path` of every route registered under /api/v1 (HEAD excluded), as Fastify's onRoute saw them. */
  apiRoutes(): string[];
  /** Everything the app logged so far, one JSON line per entry. */
  logs(): string;
  close(): Promise<void>;
}

export async function createApiFixture(options: { allowPrivateUpstreams?: boolean; database?: TestDatabase; now?: () => number; trustProxy?: boolean } = {}): Promise<ApiFixture> {
  const database = options.database ?? (await createTestDatabase());
  const db = database.db;
  const allowPrivate = options.allowPrivateUpstreams ?? false;
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  const objectsDir = mkdtempSync(path.join(tmpdir(), 'manifold-api-objects-'));
  const cipher = new CredentialsCipher(randomBytes(32));
  const changes = database.changes;
  const registries = new RegistryService({ db, cipher, changes, limits: LIMITS, pullCacheTtlMs: 0 });
  const upstreams = new UpstreamService({ db, cipher, changes, allowPrivate });
  const links = new RegistryUpstreamService({ db, changes, limits: LIMITS, upstreams });
  const services = {
    users: new UserService({ db, changes }),
    groups: new GroupService({ db, changes }),
    memberships: new MembershipService({ db, changes }),
    tokens: new TokenService({ db, changes }),
    registries,
    upstreams,
    links,
    mirrorRoutes: new MirrorRouteService({ db, changes }),
    prefetchJobs: new PrefetchJobService({ db }),
  };
  const upstreamClient = new UpstreamClient({
    allowPrivate, connectTimeoutMs: 2_000, headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000, probeTimeoutMs: 2_000, probeConcurrency: 3, maxManifestBytes: 4 * 1024 * 1024, logger,
  });
  const app = buildApp({ logger, trustProxy: options.trustProxy ?? false, health: { database: () => database.ping(), storage: async () => true } });
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (route.url.startsWith('/api/v1') && method !== 'HEAD') routes.push(`${method} ${route.url}`);
  });
  const cleanupPolicies = new CleanupPolicyService({ db });
  const sessionTimes = { ttlMs: 12 * 60 * 60 * 1000, idleMs: 60 * 60 * 1000 };
  const sessions = new SessionService({ db, changes, times: sessionTimes, now: options.now });
  apiRoutes(app, {
    sessionService: sessions,
    registryTraffic: new RegistryTraffic({ db, flushIntervalMs: 60_000 }),
    storageUsage: new StorageUsage({ db }),
    service: 'manifold',
    cleanupPolicies,
    cacheEntryQueries: new CacheEntryQueryService({ db }),
    linkQueries: new RegistryUpstreamQueryService({ db }),
    authenticator: new Authenticator({ db, registryTokens: newRegistryTokens(await newSigningKeys()), now: options.now, sessionIdleMs: sessionTimes.idleMs }),
    userService: services.users,
    groupService: services.groups,
    membershipService: services.memberships,
    tokenService: services.tokens,
    registryService: registries,
    upstreamService: upstreams,
    registryUpstreamService: links,
    mirrorRouteService: services.mirrorRoutes,
    cacheEntries: new CacheEntryService({ db, dialect: database.dialect, changes, store: new FilesystemObjectStore({ root: objectsDir }) }),
    auditService: new AuditService({ db }),
    upstreamClient,
    allowPrivateUpstreams: allowPrivate,
    prefetchJobs: services.prefetchJobs,
  });
  await app.ready();
  return {
    app,
    database,
    services,
    cleanupPolicies,
    apiRoutes: () => [...new Set(routes)],
    logs: () => lines.join(''),
    async close() {
      await app.close();
      await upstreamClient.close();
      if (!options.database) await database.destroy();
      rmSync(objectsDir, { recursive: true, force: true });
    },
  };
}

/** Request headers that authenticate a caller. */
export type Auth = Record<string, string>;
export const bearer = (token: string): Auth => ({ authorization: `Bearer ${token}` });
export const privateToken = (token: string): Auth => ({ 'private-token': token });
export const basic = (username: string, password: string): Auth => ({ authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` });

export interface Call {
  status: number;
  headers: LightMyRequestResponse['headers'];
  body: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- responses are checked field by field
}

export async function call(app: FastifyInstance, method: string, url: string, options: { auth?: Auth; body?: unknown; headers?: Record<string, string>; rawBody?: string } = {}): Promise<Call> {
  const headers: Record<string, string> = { ...options.auth, ...options.headers };
  let payload: string | undefined;
  if (options.rawBody !== undefined) payload = options.rawBody;
  else if (options.body !== undefined) {
    payload = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await app.inject({ method: method as 'GET', url, headers, payload });
  let json: unknown;
  try {
    json = response.body ? JSON.parse(response.body) : null;
  } catch {
    json = null;
  }
  return { status: response.statusCode, headers: response.headers, body: response.body, json };
}

/** An API actor for a user row, as authentication builds it (for calling services directly). */
export function apiActor(user: { id: number; username: string; admin?: boolean }, memberships: [number, number][] = []): Actor {
  return { kind: 'user', userId: user.id, username: user.username, admin: user.admin ?? false, blocked: false, memberships: new Map(memberships) as Map<number, 10 | 20 | 30 | 40 | 50>, token: null, channel: 'api' };
}

export const ROLE_NAMES = Object.keys(ROLES) as RoleName[];

/** The password of every user of the world (Basic authentication). */
export const WORLD_PASSWORD = 'correct horse battery staple';
let worldPasswordHash: Promise<string> | null = null;

export interface World {
  group: { id: number; path: string };
  /** Users of each role in `group`, a user outside it, an admin: each with WORLD_PASSWORD and a personal token (scope api). */
  users: Record<RoleName | 'non_member' | 'admin', { id: number; username: string; token: string }>;
  /** The owner's personal token with read_api only. */
  readApiToken: string;
  /** A group access token of `group` with the maintainer role and scope api. */
  groupToken: string;
  /** A deploy token of `group`. */
  deployToken: string;
}

/** One group with a user of each role, plus an outsider and an admin, and their tokens. */
export async function createWorld(fixture: ApiFixture): Promise<World> {
  const db = fixture.database.db;
  const group = await insertGroup(db);
  const users = {} as World['users'];
  worldPasswordHash ??= hashPassword(WORLD_PASSWORD);
  const passwordHash = await worldPasswordHash;
  const personalToken = async (user: { id: number; username: string; admin: 0 | 1 }, memberships: [number, number][], scopes: ('api' | 'read_api')[] = ['api']) => {
    await db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', user.id).execute();
    const created = await fixture.services.tokens.createPersonal(apiActor({ id: user.id, username: user.username, admin: user.admin === 1 }, memberships), { name: 'test', scopes });
    if (!created.ok) throw new Error(created.message);
    return created.value.token;
  };
  for (const role of ROLE_NAMES) {
    const user = await insertUser(db);
    await insertMembership(db, group.id, user.id, role);
    users[role] = { id: user.id, username: user.username, token: await personalToken(user, [[group.id, ROLES[role]]]) };
  }
  const outsider = await insertUser(db);
  users.non_member = { id: outsider.id, username: outsider.username, token: await personalToken(outsider, []) };
  const admin = await insertUser(db, { admin: true });
  users.admin = { id: admin.id, username: admin.username, token: await personalToken(admin, []) };
  const owner = await db.selectFrom('users').selectAll().where('id', '=', users.owner.id).executeTakeFirstOrThrow();
  const readApiToken = await personalToken(owner, [[group.id, ROLES.owner]], ['read_api']);
  const groupToken = await fixture.services.tokens.createGroupToken(SYSTEM, { group_id: group.id, name: 'robot', role: 'maintainer', scopes: ['api'] });
  const deployToken = await fixture.services.tokens.createDeployToken(SYSTEM, { group_id: group.id, name: 'deploy' });
  if (!groupToken.ok || !deployToken.ok) throw new Error('cannot create the group tokens');
  return { group: { id: group.id, path: group.path }, users, readApiToken, groupToken: groupToken.value.token, deployToken: deployToken.value.token };
}
