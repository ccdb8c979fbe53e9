// `manifold` admin commands: what an operator does from a shell on the machine, against the local
// database with the server's configuration. They act as the system (the operator owns the machine),
// through the same services as the API, and print text, or JSON with --json.
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { loadConfig } from '../config.ts';
import { SYSTEM, SCOPES } from '../auth/policy.ts';
import type { Actor, Scope } from '../auth/policy.ts';
import { generatePassword } from '../auth/secrets.ts';
import type { Err, Result } from '../result.ts';
import type { GroupView } from '../services/groups.ts';
import type { MirrorRouteView } from '../services/mirror-routes.ts';
import type { RegistryUpstreamView } from '../services/registry-upstreams.ts';
import type { UpstreamInput, UpstreamView } from '../services/upstreams.ts';
import type { FreshnessInput, FreshnessRule } from '../services/freshness.ts';
import { createLogger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { openServices } from '../server.ts';
import type { ServiceRuntime } from '../server.ts';
import { describeStorageCheck } from './storage.ts';
import { describeJob, followJob } from './prefetch.ts';

export const ADMIN_USAGE = `admin commands (they work on the local database, with the server's configuration; add --json for JSON):
  user create <username> [--admin] [--email <email>] [--password-stdin]
      without --password-stdin a password is generated and printed once
  token create --user <username> --name <name> --scopes <scope,...> [--expires-days <n>]
      a personal access token; scopes: ${SCOPES.join(', ')}; prints the token once
  group create <path> [--name <name>] [--owner <username>]
  group quota <path> <size>|none
      the group's storage quota (e.g. 50GiB, 500MB); above its high watermark its least recently pulled
      entries are evicted; none removes it
  cleanup runs <group>
      the group's latest cleanup policy runs and quota evictions: when, why, entries and bytes removed
  registry create <group>/<name> [--upstream <url>]... [--username <user> --password-stdin] [--cache-validity-hours <n>]
      creates the registry and its upstreams in this order (an upstream of the group with the same URL is reused)
  registry list <group>
  registry usage <group>/<name>
      what the registry's cache holds and saves: bytes stored, entries, hits, misses, bytes served from
      the cache and fetched from upstreams, evictions; per upstream
  registry update <group>/<name> [--anonymous-pull true|false] [--anonymous-network <cidr>]... [--hostname <name>]...
      --anonymous-network and --hostname replace the lists; --no-anonymous-networks, --no-hostnames empty them
  mirror route <host> <group>/<registry> [--default]
      routes mirror requests for <host> (?ns=<host>; without ns: the default route) to the registry
  mirror list
  mirror remove <host>
  upstream list <group> [--search <text>]
  upstream policy <id> [--max-age <s>] [--stale-while-revalidate <s>] [--stale-if-error <s>|none] [--pin|--no-pin]
                       [--negative-cache <s>] [--rule <pattern>=<setting>[,<setting>]...]... [--clear-rules]
      shows or changes the freshness policy; --rule replaces the rules (first match wins), e.g.
      --rule 'library/*:latest=max_age:300' --rule '*:v*.*.*=pin'; settings: max_age:<s>,
      stale_while_revalidate:<s>, stale_if_error:<s>|none, pin, no_pin
  cache purge <group>/<registry> | cache purge --upstream <id>
      marks the cache entries for deletion (the server's destroy worker removes them)
  storage check [--repair] [--grace-minutes <n>]
      walks cache entries against stored objects: entries whose object is missing or of another size,
      objects no entry refers to (older than the grace period, default 60), and what pulls repaired;
      --repair marks those entries for refetch and deletes those objects; exit code 3: problems found, not repaired
  prefetch <group>/<registry> <image>[:<tag>|@<digest>]... [--platform <os>/<arch>[/<variant>]]... [--detach]
      fills the cache with the images (only the platforms given; default all) through a running server,
      showing its progress; Ctrl-C cancels the job; --detach queues it and prints the job`;

/** What a command writes; tests give their own. */
export interface AdminIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
}

export class UsageError extends Error {}

/** A failed command: the message (and field messages) go to stderr, the exit code is 1. */
class CommandFailed extends Error {
  readonly fields: Record<string, string[]>;
  constructor(failure: Err<string>) {
    super(failure.message);
    this.fields = failure.fields ?? {};
  }
}

function value<T>(result: Result<T, string>): T {
  if (!result.ok) throw new CommandFailed(result);
  return result.value;
}

type Context = ServiceRuntime;

/** The same services the server wires (src/server.ts, without HTTP), on the configured database, quietly. */
async function openContext(): Promise<Context> {
  return openServices(loadConfig(), createLogger('silent'), createMetrics({ defaultMetrics: false }));
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...options, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function positional(positionals: string[], index: number, what: string): string {
  const found = positionals[index];
  if (!found) throw new UsageError(`missing ${what}`);
  return found;
}

function splitRegistryName(raw: string): { group: string; registry: string } {
  const slash = raw.indexOf('/');
  if (slash <= 0 || slash === raw.length - 1 || raw.indexOf('/', slash + 1) >= 0) throw new UsageError(`expected <group>/<registry>, got ${raw}`);
  return { group: raw.slice(0, slash), registry: raw.slice(slash + 1) };
}

async function readSecret(io: AdminIo, what: string): Promise<string> {
  const secret = (await io.readStdin()).replace(/\r?\n$/, '');
  if (secret === '') throw new UsageError(`--password-stdin: no ${what} on standard input`);
  return secret;
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `50GiB`, `500MB`, `1048576` → bytes. */
function parseSize(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = match ? SIZE_UNITS[(match[2] || 'b').toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`expected a size such as 50GiB, 500MB or a number of bytes, got ${raw}`);
  return Math.round(Number(match[1]) * unit);
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

async function groupByPath(context: Context, path: string): Promise<GroupView> {
  return value(await context.services.groups.getByPath(SYSTEM, path));
}

async function registryByPath(context: Context, raw: string) {
  const { group: groupPath, registry: name } = splitRegistryName(raw);
  const group = await groupByPath(context, groupPath);
  const registry = value(await context.services.registries.list(SYSTEM, group.id)).find((r) => r.name === name);
  if (!registry) throw new CommandFailed({ ok: false, reason: 'not_found', message: `no registry ${groupPath}/${name}` });
  return registry;
}

function describeRoute(route: MirrorRouteView): string {
  return `${route.host} → ${route.registry_path ?? '(deleted registry)'}${route.default ? '  [default]' : ''}`;
}

/** The user as an actor of their own: personal tokens belong to the user who holds them. */
async function actorOfUser(context: Context, username: string): Promise<Actor> {
  const user = value(await context.services.users.getByUsername(SYSTEM, username));
  if (user.blocked) throw new CommandFailed({ ok: false, reason: 'forbidden', message: `${username} is blocked` });
  return { kind: 'user', userId: user.id, username: user.username, admin: user.admin, blocked: false, memberships: new Map(), token: null, channel: 'api' };
}

async function allUpstreams(context: Context, groupId: number, search?: string): Promise<UpstreamView[]> {
  const found: UpstreamView[] = [];
  for (let page = 1; ; page++) {
    const listed = value(await context.services.upstreams.list(SYSTEM, groupId, { page, per_page: 100, search }));
    found.push(...listed.items);
    if (page * 100 >= listed.total) return found;
  }
}

function upstreamName(url: string): string {
  const parsed = new URL(url);
  return `${parsed.host}${parsed.pathname.replace(/\/+$/, '')}`.slice(0, 255);
}

function seconds(text: string, flag: string): number {
  const parsed = Number(text);
  if (!Number.isInteger(parsed) || parsed < 0) throw new UsageError(`${flag} must be a whole number of seconds`);
  return parsed;
}

/** `library/*:latest=max_age:300,pin` → a rule (the service validates the values). */
function parseRule(text: string): FreshnessRule {
  const at = text.lastIndexOf('=');
  if (at <= 0) throw new UsageError(`--rule ${text}: expected <pattern>=<setting>[,<setting>]...`);
  const rule: FreshnessRule = { match: text.slice(0, at) };
  for (const setting of text.slice(at + 1).split(',').map((part) => part.trim()).filter(Boolean)) {
    const [key, raw] = setting.split(':');
    if (key === 'pin' && raw === undefined) rule.pin = true;
    else if (key === 'no_pin' && raw === undefined) rule.pin = false;
    else if (key === 'stale_if_error' && raw === 'none') rule.stale_if_error = null;
    else if ((key === 'max_age' || key === 'stale_while_revalidate' || key === 'stale_if_error') && raw !== undefined) rule[key] = seconds(raw, `--rule ${key}`);
    else throw new UsageError(`--rule ${text}: unknown setting ${setting}`);
  }
  return rule;
}

function describePolicy(upstream: UpstreamView): string {
  const p = upstream.freshness;
  const settings = (r: { max_age?: number; stale_while_revalidate?: number; stale_if_error?: number | null; pin?: boolean }) => [
    r.max_age !== undefined ? `max_age ${r.max_age} s` : null,
    r.stale_while_revalidate !== undefined ? `stale_while_revalidate ${r.stale_while_revalidate} s` : null,
    r.stale_if_error !== undefined ? `stale_if_error ${r.stale_if_error === null ? 'unlimited' : `${r.stale_if_error} s`}` : null,
    r.pin !== undefined ? (r.pin ? 'pinned' : 'not pinned') : null,
  ].filter(Boolean).join(', ');
  const rules = p.rules.map((r, i) => `  ${i + 1}. ${r.match}: ${settings(r)}`);
  return [`upstream ${upstream.id} (${upstream.name}): ${settings(p)}, negative cache ${p.negative_cache} s`, ...(rules.length ? ['rules (first match wins):', ...rules] : [])].join('\n');
}

function describeLinks(links: RegistryUpstreamView[]): string {
  return links.length === 0 ? '    (no upstreams)' : links.map((l) => `    ${l.position}. ${l.upstream.url}${l.upstream.has_credentials ? ` (as ${l.upstream.username})` : ''}  [upstream ${l.upstream_id}]`).join('\n');
}

/** exitCode: 0 unless the command says otherwise (storage check: 3 when it found problems it did not repair). */
type Output = { json: unknown; text: string; exitCode?: number };
type Command = (context: Context, args: string[], io: AdminIo) => Promise<Output>;

const commands: Record<string, Record<string, Command>> = {
  user: {
    async create(context, args, io) {
      const { values, positionals } = parse(args, { admin: { type: 'boolean' }, email: { type: 'string' }, 'password-stdin': { type: 'boolean' } });
      const username = positional(positionals, 0, '<username>');
      const generated = values['password-stdin'] ? null : generatePassword();
      const password = generated ?? (await readSecret(io, 'password'));
      const user = value(await context.services.users.create(SYSTEM, { username, password, email: values.email ?? null, admin: values.admin ?? false }));
      const text = `created ${user.admin ? 'admin ' : ''}user ${user.username} (id ${user.id})${generated ? `\npassword: ${generated}\n(shown once: keep it)` : ''}`;
      return { json: generated ? { ...user, password: generated } : user, text };
    },
  },
  token: {
    async create(context, args) {
      const { values } = parse(args, { user: { type: 'string' }, name: { type: 'string' }, scopes: { type: 'string' }, 'expires-days': { type: 'string' } });
      if (!values.user || !values.name || !values.scopes) throw new UsageError('token create needs --user, --name and --scopes');
      let expiresAt: number | null = null;
      if (values['expires-days'] !== undefined) {
        const days = Number(values['expires-days']);
        if (!Number.isInteger(days) || days < 1) throw new UsageError('--expires-days must be a whole number of days, at least 1');
        expiresAt = Date.now() + days * 24 * 60 * 60 * 1000;
      }
      const actor = await actorOfUser(context, values.user);
      const scopes = values.scopes.split(',').map((s) => s.trim()).filter(Boolean) as Scope[];
      const token = value(await context.services.tokens.createPersonal(actor, { name: values.name, scopes, expires_at: expiresAt }));
      // Text mode prints the token alone, so that `TOKEN=$(manifold token create …)` works.
      return { json: token, text: token.token };
    },
  },
  group: {
    async create(context, args) {
      const { values, positionals } = parse(args, { name: { type: 'string' }, owner: { type: 'string' } });
      const path = positional(positionals, 0, '<path>');
      const group = value(await context.services.groups.create(SYSTEM, { path, name: values.name }));
      if (values.owner) {
        const added = await context.services.memberships.add(SYSTEM, { group_id: group.id, username: values.owner, role: 'owner' });
        if (!added.ok) {
          await context.services.groups.delete(SYSTEM, group.id);
          throw new CommandFailed(added.reason === 'not_found' ? { ...added, message: `no user named ${values.owner}` } : added);
        }
      }
      return { json: { ...group, owner: values.owner ?? null }, text: `created group ${group.path} (id ${group.id})${values.owner ? `, owner ${values.owner}` : ''}` };
    },
    async quota(context, args) {
      const { positionals } = parse(args, {});
      const group = await groupByPath(context, positional(positionals, 0, '<path>'));
      const raw = positional(positionals, 1, '<size>|none');
      const quota = raw === 'none' ? null : parseSize(raw);
      const updated = value(await context.services.groups.update(SYSTEM, group.id, { storage_quota_bytes: quota }));
      return { json: updated, text: `group ${updated.path}: storage quota ${updated.storage_quota_bytes === null ? 'none' : formatBytes(updated.storage_quota_bytes)}` };
    },
  },
  cleanup: {
    async runs(context, args) {
      const { positionals } = parse(args, {});
      const group = await groupByPath(context, positional(positionals, 0, '<group>'));
      const runs = value(await context.services.cleanupPolicies.runs(SYSTEM, group.id));
      const text = runs.length === 0
        ? `group ${group.path}: no cleanup runs yet`
        : runs.map((run) => `${new Date(run.finished_at).toISOString()}  ${run.reason.padEnd(14)}  ${String(run.deleted_entries).padStart(7)} entries  ${formatBytes(run.deleted_bytes).padStart(10)}${run.failure_message ? `  failed: ${run.failure_message}` : ''}`).join('\n');
      return { json: runs, text };
    },
  },
  registry: {
    async usage(context, args) {
      const { positionals } = parse(args, {});
      const registry = await registryByPath(context, positional(positionals, 0, '<group>/<name>'));
      const usage = value(await context.services.storageUsage.registry(SYSTEM, registry.id));
      const lines = [
        `stored: ${formatBytes(usage.stored_bytes)} in ${usage.entries} entries`,
        `since ${new Date(usage.since).toISOString()}: ${usage.hits} hits, ${usage.misses} misses; ${formatBytes(usage.bytes_from_cache)} served from the cache, ${formatBytes(usage.bytes_from_upstream)} fetched; ${usage.evicted_entries} entries (${formatBytes(usage.evicted_bytes)}) evicted`,
        ...usage.upstreams.map((u) => `  upstream ${u.name} (id ${u.upstream_id}): ${formatBytes(u.stored_bytes)} in ${u.entries} entries; ${u.evicted_entries} entries (${formatBytes(u.evicted_bytes)}) evicted`),
      ];
      return { json: usage, text: lines.join('\n') };
    },
    async create(context, args, io) {
      const { values, positionals } = parse(args, {
        upstream: { type: 'string', multiple: true }, username: { type: 'string' }, 'password-stdin': { type: 'boolean' },
        'cache-validity-hours': { type: 'string' }, description: { type: 'string' },
      });
      const { group: groupPath, registry: name } = splitRegistryName(positional(positionals, 0, '<group>/<name>'));
      const password = values['password-stdin'] ? await readSecret(io, 'password') : undefined;
      if ((values.username === undefined) !== (password === undefined)) throw new UsageError('--username and --password-stdin go together');
      let validity: number | undefined;
      if (values['cache-validity-hours'] !== undefined) {
        validity = Number(values['cache-validity-hours']);
        if (!Number.isInteger(validity)) throw new UsageError('--cache-validity-hours must be a whole number');
      }
      const group = await groupByPath(context, groupPath);
      // Every upstream is checked before anything is written.
      const inputs: UpstreamInput[] = [];
      for (const url of values.upstream ?? []) {
        const input: UpstreamInput = { name: url, url, username: values.username ?? null, password: password ?? null, cache_validity_hours: validity };
        const prepared = value(await context.services.upstreams.prepare(input));
        inputs.push({ ...input, name: upstreamName(prepared.url) });
      }
      const registry = value(await context.services.registries.create(SYSTEM, group.id, { name, description: values.description ?? null }));
      try {
        for (const input of inputs) {
          const created = await context.services.registryUpstreams.createUpstreamForRegistry(SYSTEM, registry.id, input);
          if (created.ok) continue;
          // The same URL (and credentials) already is an upstream of the group: link that one.
          if (created.reason !== 'conflict' || !created.fields?.url) throw new CommandFailed(created);
          const normalized = value(await context.services.upstreams.prepare(input)).url;
          const existing = (await allUpstreams(context, group.id)).find((u) => u.url === normalized && u.username === (input.username ?? null));
          if (!existing) throw new CommandFailed(created);
          value(await context.services.registryUpstreams.link(SYSTEM, registry.id, existing.id));
        }
      } catch (error) {
        await context.services.registries.destroy(SYSTEM, registry.id);
        throw error;
      }
      const links = value(await context.services.registryUpstreams.listForRegistry(SYSTEM, registry.id));
      return {
        json: { ...registry, upstreams: links },
        text: `created registry ${group.path}/${registry.name} (id ${registry.id})\n${describeLinks(links)}`,
      };
    },
    async list(context, args) {
      const { positionals } = parse(args, {});
      const group = await groupByPath(context, positional(positionals, 0, '<group>'));
      const registries = value(await context.services.registries.list(SYSTEM, group.id));
      const detailed = [];
      for (const registry of registries) detailed.push({ ...registry, upstreams: value(await context.services.registryUpstreams.listForRegistry(SYSTEM, registry.id)) });
      const text = detailed.length === 0
        ? `group ${group.path} has no registries`
        : detailed.map((r) => `${group.path}/${r.name} (id ${r.id})\n${describeLinks(r.upstreams)}`).join('\n');
      return { json: detailed, text };
    },
    async update(context, args) {
      const { values, positionals } = parse(args, {
        'anonymous-pull': { type: 'string' }, 'anonymous-network': { type: 'string', multiple: true }, 'no-anonymous-networks': { type: 'boolean' },
        hostname: { type: 'string', multiple: true }, 'no-hostnames': { type: 'boolean' },
      });
      const registry = await registryByPath(context, positional(positionals, 0, '<group>/<name>'));
      const flag = values['anonymous-pull'];
      if (flag !== undefined && flag !== 'true' && flag !== 'false') throw new UsageError('--anonymous-pull must be true or false');
      const updated = value(await context.services.registries.update(SYSTEM, registry.id, {
        anonymous_pull: flag === undefined ? undefined : flag === 'true',
        anonymous_networks: values['no-anonymous-networks'] ? [] : values['anonymous-network'],
        hostnames: values['no-hostnames'] ? [] : values.hostname,
      }));
      const networks = updated.anonymous_networks.length === 0 ? 'anywhere' : updated.anonymous_networks.join(', ');
      const text = [
        `updated registry ${positionals[0]} (id ${updated.id})`,
        `  anonymous pulls: ${updated.anonymous_pull ? `allowed from ${networks}` : 'refused'}`,
        `  hostnames: ${updated.hostnames.length === 0 ? '(none)' : updated.hostnames.join(', ')}`,
      ].join('\n');
      return { json: updated, text };
    },
  },
  mirror: {
    async route(context, args) {
      const { values, positionals } = parse(args, { default: { type: 'boolean' } });
      const host = positional(positionals, 0, '<host>');
      const registry = await registryByPath(context, positional(positionals, 1, '<group>/<registry>'));
      const routes = context.services.mirrorRoutes;
      const existing = await routes.getByHost(SYSTEM, host);
      // Routing a host again points its route at the new registry.
      const route = value(existing.ok
        ? await routes.update(SYSTEM, existing.value.id, { registry_id: registry.id, default: values.default ? true : undefined })
        : await routes.create(SYSTEM, { host, registry_id: registry.id, default: values.default ?? false }));
      return { json: route, text: `mirror route ${describeRoute(route)}` };
    },
    async list(context, args) {
      parse(args, {});
      const routes = value(await context.services.mirrorRoutes.list(SYSTEM));
      return { json: routes, text: routes.length === 0 ? 'no mirror routes' : routes.map(describeRoute).join('\n') };
    },
    async remove(context, args) {
      const { positionals } = parse(args, {});
      const routes = context.services.mirrorRoutes;
      const route = value(await routes.getByHost(SYSTEM, positional(positionals, 0, '<host>')));
      value(await routes.destroy(SYSTEM, route.id));
      return { json: route, text: `removed mirror route ${describeRoute(route)}` };
    },
  },
  upstream: {
    async list(context, args) {
      const { values, positionals } = parse(args, { search: { type: 'string' } });
      const group = await groupByPath(context, positional(positionals, 0, '<group>'));
      const upstreams = await allUpstreams(context, group.id, values.search);
      const text = upstreams.length === 0
        ? `group ${group.path} has no upstreams${values.search ? ` matching ${values.search}` : ''}`
        : upstreams.map((u) => `${u.id}\t${u.name}\t${u.url}\t${u.has_credentials ? `as ${u.username}` : 'anonymous'}\tcache ${u.cache_validity_hours} h`).join('\n');
      return { json: upstreams, text };
    },
    async policy(context, args) {
      const { values, positionals } = parse(args, {
        'max-age': { type: 'string' }, 'stale-while-revalidate': { type: 'string' }, 'stale-if-error': { type: 'string' },
        pin: { type: 'boolean' }, 'no-pin': { type: 'boolean' }, 'negative-cache': { type: 'string' },
        rule: { type: 'string', multiple: true }, 'clear-rules': { type: 'boolean' },
      });
      const id = Number(positional(positionals, 0, '<id>'));
      if (!Number.isSafeInteger(id) || id < 1) throw new UsageError('<id> must be an upstream id');
      if (values.pin && values['no-pin']) throw new UsageError('--pin and --no-pin contradict each other');
      if (values.rule && values['clear-rules']) throw new UsageError('--rule and --clear-rules contradict each other');
      const changes: FreshnessInput = {};
      if (values['max-age'] !== undefined) changes.max_age = seconds(values['max-age'], '--max-age');
      if (values['stale-while-revalidate'] !== undefined) changes.stale_while_revalidate = seconds(values['stale-while-revalidate'], '--stale-while-revalidate');
      if (values['stale-if-error'] !== undefined) changes.stale_if_error = values['stale-if-error'] === 'none' ? null : seconds(values['stale-if-error'], '--stale-if-error');
      if (values.pin || values['no-pin']) changes.pin = values.pin === true;
      if (values['negative-cache'] !== undefined) changes.negative_cache = seconds(values['negative-cache'], '--negative-cache');
      if (values.rule) changes.rules = values.rule.map(parseRule);
      if (values['clear-rules']) changes.rules = [];
      const upstream = Object.keys(changes).length === 0
        ? value(await context.services.upstreams.get(SYSTEM, id))
        : value(await context.services.upstreams.update(SYSTEM, id, { freshness: changes }));
      return { json: upstream.freshness, text: describePolicy(upstream) };
    },
  },
  cache: {
    async purge(context, args) {
      const { values, positionals } = parse(args, { upstream: { type: 'string' } });
      const cache = context.services.entries;
      if (values.upstream !== undefined) {
        if (positionals.length > 0) throw new UsageError('give either <group>/<registry> or --upstream <id>');
        const id = Number(values.upstream);
        if (!Number.isSafeInteger(id) || id < 1) throw new UsageError('--upstream must be an upstream id');
        const { marked } = value(await cache.markUpstreamForDestruction(SYSTEM, id));
        return { json: { upstream_id: id, marked_entries: marked }, text: `upstream ${id}: ${marked} cache entries marked for deletion` };
      }
      const { group: groupPath, registry: name } = splitRegistryName(positional(positionals, 0, '<group>/<registry> or --upstream <id>'));
      const group = await groupByPath(context, groupPath);
      const registry = value(await context.services.registries.list(SYSTEM, group.id)).find((r) => r.name === name);
      if (!registry) throw new CommandFailed({ ok: false, reason: 'not_found', message: `no registry ${groupPath}/${name}` });
      const { marked } = value(await cache.markRegistryForDestruction(SYSTEM, registry.id));
      return { json: { registry_id: registry.id, marked_entries: marked }, text: `${groupPath}/${name}: ${marked} cache entries marked for deletion` };
    },
  },
};

commands.storage = {
  async check(context, args) {
    const { values } = parse(args, { repair: { type: 'boolean' }, 'grace-minutes': { type: 'string' } });
    const grace = values['grace-minutes'] === undefined ? undefined : Number(values['grace-minutes']);
    if (grace !== undefined && !(Number.isFinite(grace) && grace >= 0)) throw new UsageError('--grace-minutes must be a number of minutes ≥ 0');
    const report = await context.services.storageCheck.run({ repair: values.repair === true, graceMs: grace === undefined ? undefined : grace * 60_000 });
    const unrepaired = !report.repair && report.damaged_entries.count + report.orphan_objects.count > 0;
    return { json: report, text: describeStorageCheck(report), exitCode: unrepaired ? 3 : 0 };
  },
};

/** Nouns that take no verb: `manifold prefetch <group>/<registry> <image>…`. */
const verbless: Record<string, Command> = {
  async prefetch(context, args, io) {
    const { values, positionals } = parse(args, { platform: { type: 'string', multiple: true }, detach: { type: 'boolean' } });
    const registry = await registryByPath(context, positional(positionals, 0, '<group>/<registry>'));
    const images = positionals.slice(1);
    if (images.length === 0) throw new UsageError('missing <image>[:<tag>|@<digest>]');
    let job = value(await context.services.prefetchJobs.create(SYSTEM, registry.id, { images, platforms: values.platform ?? [] }));
    if (!values.detach) job = await followJob(context.services.prefetchJobs, job, { stderr: io.stderr, isTty: process.stderr.isTTY === true });
    return { json: job, text: describeJob(job), exitCode: values.detach || job.status === 'succeeded' ? 0 : 1 };
  },
};

export const ADMIN_COMMANDS = [...Object.keys(commands), ...Object.keys(verbless)];

/** Runs `manifold <noun> <verb> …`; returns the exit code (0 done, 1 failed, 2 usage). */
export async function runAdmin(noun: string, args: string[], io: AdminIo): Promise<number> {
  const [verb, ...rest] = verbless[noun] ? ['', ...args] : args;
  const command = verbless[noun] ?? (verb ? commands[noun]?.[verb] : undefined);
  const json = rest.includes('--json');
  if (!command) {
    io.stderr(`manifold: unknown command: ${[noun, verb].filter(Boolean).join(' ')}\n\n${ADMIN_USAGE}\n`);
    return 2;
  }
  let context: Context | null = null;
  try {
    context = await openContext();
    const output = await command(context, rest, io);
    io.stdout(`${json ? JSON.stringify(output.json, null, 2) : output.text}\n`);
    return output.exitCode ?? 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`manifold ${[noun, verb].filter(Boolean).join(' ')}: ${error.message}\n\n${ADMIN_USAGE}\n`);
      return 2;
    }
    if (error instanceof CommandFailed) {
      if (json) io.stdout(`${JSON.stringify({ error: error.message, errors: error.fields }, null, 2)}\n`);
      // The message already names the fields and what is wrong with them.
      io.stderr(`manifold ${[noun, verb].filter(Boolean).join(' ')}: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await context?.close();
  }
}
