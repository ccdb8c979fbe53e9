// Which registry a /v2 request is for (DESIGN §3.6), decided once per request for every endpoint
// (manifests, blobs, referrers, tags): the request's repository name, its `ns`, its Host, and the seed's
// alias path become a registry and the image its upstreams are asked for.
//
// In this order:
//   1. `virtual_registries/containers/<registry_id>/<image>`: GitLab's path, the registry by id;
//   2. a Host a registry claims (`hub.cache.example.com`): that registry, the whole name is the image;
//   3. `<group>/<registry>/<image>` when that registry exists: the canonical form;
//   4. `?ns=<host>` (containerd, CRI-O, podman mirrors): the mirror route of that host;
//   5. no `ns` (Docker's registry-mirrors, which implies Docker Hub): the default route.
// `ns` is only a lookup key: an unknown host is refused, never dialled. On routes of Docker Hub a
// one-component name is `library/<name>`.
import { isDatabaseUnavailable } from './database.ts';
import ipaddr from 'ipaddr.js';
import { can } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import type { Change } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import { isValidName } from '../oci/reference.ts';
import { DOCKER_HUB, canonicalHostname, canonicalRegistryHost, dockerHubName } from '../oci/registry-host.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { SingleFlight } from '../lib/single-flight.ts';
import { PULL_CACHE_TTL_MS } from './registries.ts';
import type { PullRegistry, RegistryService } from './registries.ts';

export const ALIAS_PREFIX = 'virtual_registries/containers/';

export interface RouteRequest {
  /** The repository name of the /v2 path, as the client wrote it. */
  name: string;
  /** The `ns` query parameter, when given. */
  ns?: string;
  /** The request's host (a port is ignored); the forwarded one behind a trusted proxy. */
  host?: string;
}

export type RouteKind = 'alias' | 'hostname' | 'path' | 'ns' | 'default';

export interface Routed {
  registry: PullRegistry;
  /** The image as the registry's upstreams know it (`library/alpine`). */
  image: string;
  /** `<group>/<registry>/<image>`: the canonical name, the one the pull service and the cache key know. */
  repository: string;
  via: RouteKind;
}

interface Route {
  host: string;
  registryId: number | null;
}

/** The routes and claimed hostnames, read together: two short tables. */
interface Snapshot {
  routes: Map<string, Route>;
  defaultRoute: Route | null;
  hostnames: Map<string, number>;
}

export interface MirrorRoutingDeps {
  db: Db;
  registries: Pick<RegistryService, 'findForPull' | 'findForPullById'>;
  /**
   * How long the routes are remembered; default 5 s, 0 = not at all. Changes drop them at once (onChange,
   * on every replica); the TTL bounds what a missed notification leaves.
   */
  ttlMs?: number;
  now?: () => number;
}

export class MirrorRouting {
  readonly #db: Db;
  readonly #registries: MirrorRoutingDeps['registries'];
  readonly #ttlMs: number;
  readonly #now: () => number;
  #snapshot: { value: Snapshot; generation: number; expiresAt: number } | null = null;
  /** Bumped by every change of the routes or hostnames, so that a read older than the change is not kept. */
  #generation = 0;
  readonly #loading = new SingleFlight<Snapshot>();
  #lastRead: Snapshot | null = null;

  constructor(deps: MirrorRoutingDeps) {
    this.#db = deps.db;
    this.#registries = deps.registries;
    this.#ttlMs = deps.ttlMs ?? PULL_CACHE_TTL_MS;
    this.#now = deps.now ?? Date.now;
  }

  /** The routes and claimed hostnames are read again after a change of either (change feed). */
  onChange(change: Change): void {
    if (change.kind === 'mirror_routes' || change.kind === 'registry' || change.kind === 'all') {
      this.#generation += 1;
      this.#snapshot = null;
    }
  }

  async resolve(request: RouteRequest): Promise<Result<Routed>> {
    const { name } = request;
    if (!isValidName(name)) return invalid({ name: ['must be lower-case path components separated by /'] }, `invalid repository name ${name}`);

    if (name.startsWith(ALIAS_PREFIX)) {
      const match = /^([1-9][0-9]{0,15})\/(.+)$/.exec(name.slice(ALIAS_PREFIX.length));
      if (!match) return invalid({ name: ['must be virtual_registries/containers/<registry_id>/<image>'] }, `invalid repository name ${name}`);
      const registry = await this.#registries.findForPullById(Number(match[1]));
      if (!registry) return err('not_found', `repository ${name} is not known to this registry`);
      return ok(routed(registry, match[2], 'alias'));
    }

    const snapshot = await this.#routes();
    // Most instances have no claimed hostnames: then the Host header needs no parsing.
    const hostname = request.host === undefined || snapshot.hostnames.size === 0 ? null : canonicalHostname(request.host.replace(/:\d+$/, ''));
    const claimedBy = hostname === null ? undefined : snapshot.hostnames.get(hostname);
    if (claimedBy !== undefined) {
      const registry = await this.#registries.findForPullById(claimedBy);
      if (registry) return ok(routed(registry, name, 'hostname'));
    }

    const parts = name.split('/');
    if (parts.length >= 2) {
      const registry = await this.#registries.findForPull(parts[0], parts[1]);
      if (registry && parts.length === 2) return invalid({ name: ['must be <group>/<registry>/<image>: the image is missing'] }, `invalid repository name ${name}`);
      if (registry) return ok(routed(registry, parts.slice(2).join('/'), 'path'));
    }

    if (request.ns !== undefined) {
      const host = canonicalRegistryHost(request.ns);
      const route = host === null ? undefined : snapshot.routes.get(host);
      if (!route) return err('not_found', `no mirror route for ns=${host ?? request.ns}: an instance admin adds one with POST /api/v1/mirror_routes (manifold mirror route ${host ?? request.ns} <group>/<registry>)`);
      return this.#follow(route, name, `the mirror route for ${route.host}`, 'ns');
    }
    if (snapshot.defaultRoute) return this.#follow(snapshot.defaultRoute, name, `the default mirror route (${snapshot.defaultRoute.host})`, 'default');
    return err('not_found', `repository ${name} is not known to this registry: not <group>/<registry>/<image> of an existing registry, and there is no default mirror route`, { cause: 'unrouted' });
  }

  /**
   * Every registry a name may be routed to, whatever `ns` a request brings (the token endpoint sees no
   * `ns`): its alias, claimed-hostname or canonical registry, else every routed registry. A registry
   * token grant for the name is decided on these; each /v2 request then checks its own registry again.
   */
  async candidates(name: string, host?: string): Promise<PullRegistry[]> {
    if (!isValidName(name)) return [];
    const direct = await this.resolve({ name, host });
    if (direct.ok && direct.value.via !== 'default') return [direct.value.registry];
    const snapshot = await this.#routes();
    const ids = new Set<number>();
    for (const route of snapshot.routes.values()) if (route.registryId !== null) ids.add(route.registryId);
    const found: PullRegistry[] = [];
    for (const id of ids) {
      const registry = await this.#registries.findForPullById(id);
      if (registry) found.push(registry);
    }
    return found;
  }

  /**
   * May this actor pull the name through some route (the token endpoint's question)? Anonymous callers
   * may where a candidate registry allows anonymous pulls from `address`; others where they may
   * read_virtual_registry on a candidate's group.
   */
  async mayPull(actor: Actor, name: string, address: string, host?: string): Promise<boolean> {
    const puller: Actor = actor.kind === 'user' || actor.kind === 'group_token' || actor.kind === 'deploy_token' ? { ...actor, channel: 'registry' } : actor;
    for (const registry of await this.candidates(name, host)) {
      if (actor.kind === 'anonymous' ? anonymousPullAllowed(registry, address).ok : can(puller, 'read_virtual_registry', { groupId: registry.group.id })) return true;
    }
    return false;
  }

  async #follow(route: Route, name: string, what: string, via: 'ns' | 'default'): Promise<Result<Routed>> {
    const registry = route.registryId === null ? null : await this.#registries.findForPullById(route.registryId);
    if (!registry) return err('not_found', `${what} points at a registry that was deleted: an instance admin must point it at another registry`);
    return ok(routed(registry, route.host === DOCKER_HUB ? dockerHubName(name) : name, via));
  }

  async #routes(): Promise<Snapshot> {
    const generation = this.#generation;
    const now = this.#now();
    if (this.#snapshot && this.#snapshot.generation === generation && this.#snapshot.expiresAt > now) return this.#snapshot.value;
    // One read at a time: a burst of requests after expiry shares it (not one that started before a change).
    let value: Snapshot;
    try {
      value = await this.#loading.run(`routes#${generation}`, () => this.#load());
    } catch (error) {
      // While the database is away the last table read stands in, so cached pulls keep their routes.
      if (isDatabaseUnavailable(error) && this.#lastRead) return this.#lastRead;
      throw error;
    }
    this.#lastRead = value;
    if (this.#ttlMs > 0 && generation === this.#generation) this.#snapshot = { value, generation, expiresAt: now + this.#ttlMs };
    return value;
  }

  async #load(): Promise<Snapshot> {
    const [routeRows, hostnameRows] = await Promise.all([
      this.#db.selectFrom('mirror_routes').select(['host', 'registry_id', 'is_default']).execute(),
      this.#db.selectFrom('registry_hostnames').select(['hostname', 'registry_id']).execute(),
    ]);
    const routes = new Map<string, Route>();
    let defaultRoute: Route | null = null;
    for (const row of routeRows) {
      const route = { host: row.host, registryId: row.registry_id };
      routes.set(row.host, route);
      if (row.is_default === 1) defaultRoute = route;
    }
    return { routes, defaultRoute, hostnames: new Map(hostnameRows.map((row) => [row.hostname, row.registry_id])) };
  }
}

function routed(registry: PullRegistry, image: string, via: RouteKind): Routed {
  return { registry, image, repository: `${registry.group.path}/${registry.registry.name}/${image}`, via };
}

/**
 * May an anonymous client at `address` pull from this registry? Its `anonymous_pull` must be on and the
 * address inside one of its `anonymous_networks` (none = anywhere). The refusal says why, for the log.
 */
export function anonymousPullAllowed(registry: PullRegistry, address: string): Result<undefined> {
  const path = `${registry.group.path}/${registry.registry.name}`;
  if (!registry.registry.anonymousPull) return err('unauthorized', `anonymous pull refused: registry ${path} does not allow anonymous pulls (anonymous_pull is false)`);
  const networks = registry.registry.anonymousNetworks;
  if (networks.length === 0) return ok();
  if (!ipaddr.isValid(address)) return err('unauthorized', `anonymous pull refused: the client address ${address} cannot be read`);
  const client = ipaddr.process(address);
  for (const network of networks) {
    const [range, prefix] = ipaddr.parseCIDR(network);
    if (range.kind() === client.kind() && client.match(range, prefix)) return ok();
  }
  return err('unauthorized', `anonymous pull refused: client ${client.toString()} is outside the anonymous_networks of ${path} (${networks.join(', ')})`);
}

/**
 * The actor with its registry token's grant of `clientName` (the name the client asked the token
 * endpoint for, e.g. `library/alpine`) also granting the routed `<group>/<registry>/<image>`, which the
 * pull service checks. Credentials without a token's access list are returned as they are.
 */
export function grantsAsRouted(actor: Actor, clientName: string, repository: string): Actor {
  if (clientName === repository || !('registryAccess' in actor) || actor.registryAccess === undefined) return actor;
  const granted = actor.registryAccess.some((entry) => entry.type === 'repository' && entry.name === clientName && entry.actions.includes('pull'));
  if (!granted) return actor;
  return { ...actor, registryAccess: [...actor.registryAccess, { type: 'repository', name: repository, actions: ['pull'] }] };
}
