// In-process fake registries on 127.0.0.1 (each server its own port, so "another host" is real): a
// registry serving manifests, blobs, referrers and tags with no auth, Basic or Bearer auth; a token server; a
// "CDN" that blob GETs are redirected to; fault injection (statuses, delays, hangs, resets, short bodies)
// and a log of every request each server received. `startFakeDockerHub` wires the three like Docker Hub.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { lookup as systemLookup } from 'node:dns';
import type { LookupAllOptions } from 'node:dns';
import { content, OCI_INDEX, sha256 } from './oci-image.ts';
import type { Content, TestImage, TestIndex } from './oci-image.ts';

export interface RecordedRequest {
  method: string;
  /** Path without the query. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

export type Fault =
  /** Answer with this status (and optional headers and body) instead. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Wait, then answer normally. */
  | { kind: 'delay'; ms: number }
  /** Never answer (the connection stays open until the server closes). */
  | { kind: 'hang' }
  /** Close the connection before any response byte. */
  | { kind: 'reset' }
  /** Send the headers and `afterBytes` of the body, then destroy the connection. */
  | { kind: 'reset-mid-body'; afterBytes: number }
  /** Announce the full Content-Length, send only `bytes`, then end the connection cleanly. */
  | { kind: 'short-body'; bytes: number }
  /** Send the headers and `afterBytes` of the body, then stall without closing. */
  | { kind: 'stall-body'; afterBytes: number };

export interface FaultRule {
  method?: string;
  /** Exact path (without query) or a pattern. */
  path?: string | RegExp;
  fault: Fault;
  /** How many matching requests it applies to; default every one. */
  times?: number;
}

const BODY_FAULTS = new Set(['reset-mid-body', 'short-body', 'stall-body']);

/** A fault-injecting, request-recording HTTP server on 127.0.0.1:0. */
export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  #server: Server | null = null;
  #rules: (FaultRule & { remaining: number })[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  url = '';
  port = 0;
  /** The host name this server calls itself in URLs it hands out (realms, redirects); tests may map it to 127.0.0.1. */
  hostname = '127.0.0.1';

  /** `url` with `hostname` in place of 127.0.0.1. */
  get publicUrl(): string {
    return `http://${this.hostname}:${this.port}`;
  }

  protected async listen(): Promise<void> {
    const server = createServer((request, response) => {
      void this.#dispatch(request, response);
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket: Socket) => {
      this.connectionsAccepted++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  /** Adds a fault; the first matching rule with uses left applies. */
  fault(rule: FaultRule): this {
    this.#rules.push({ ...rule, remaining: rule.times ?? Infinity });
    return this;
  }

  clearFaults(): void {
    this.#rules = [];
  }

  /** Requests received, optionally only those of one method and path (exact or pattern). */
  received(method?: string, path?: string | RegExp): RecordedRequest[] {
    return this.requests.filter((r) => (!method || r.method === method) && matches(path, r.path));
  }

  /** TCP connections accepted since the start. */
  connectionsAccepted = 0;

  /** Connections currently open (keep-alive ones included). */
  get openConnections(): number {
    return this.#sockets.size;
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const socket of this.#sockets) socket.destroy();
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Subclasses answer here; `body` sends bytes honouring a body fault. */
  protected handle(_request: IncomingMessage, response: ServerResponse, _context: RequestContext): Promise<void> | void {
    response.writeHead(404).end();
  }

  protected sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }

  #takeFault(method: string, path: string): Fault | null {
    const rule = this.#rules.find((r) => r.remaining > 0 && (!r.method || r.method === method) && matches(r.path, path));
    if (!rule) return null;
    rule.remaining--;
    return rule.fault;
  }

  async #dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fake');
    const method = request.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query: url.searchParams, headers: request.headers });
    const fault = this.#takeFault(method, url.pathname);
    if (fault?.kind === 'reset') return void request.socket.destroy();
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'status') {
      const body = fault.body ?? '';
      response.writeHead(fault.status, { 'content-length': Buffer.byteLength(body), ...fault.headers }).end(method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.kind === 'delay') await this.sleep(fault.ms);
    const bodyFault = fault && BODY_FAULTS.has(fault.kind) ? fault : null;
    const context: RequestContext = {
      url,
      send: (status, headers, bytes) => this.#send(request, response, status, headers, bytes, bodyFault),
    };
    try {
      await this.handle(request, response, context);
    } catch (error) {
      if (!response.headersSent) response.writeHead(500).end(String(error));
    }
  }

  #send(request: IncomingMessage, response: ServerResponse, status: number, headers: Record<string, string | number>, bytes: Buffer, fault: Fault | null): void {
    response.writeHead(status, { 'content-length': bytes.length, ...headers });
    if (request.method === 'HEAD') return void response.end();
    if (!fault) return void response.end(bytes);
    if (fault.kind === 'reset-mid-body') {
      response.write(bytes.subarray(0, fault.afterBytes), () => {
        const timer = setTimeout(() => request.socket.destroy(), 20);
        this.#timers.add(timer);
      });
    } else if (fault.kind === 'short-body') {
      response.write(bytes.subarray(0, fault.bytes), () => request.socket.end());
    } else if (fault.kind === 'stall-body') {
      response.write(bytes.subarray(0, fault.afterBytes));
    }
  }
}

export interface RequestContext {
  url: URL;
  /** Writes status, headers and (unless HEAD) the bytes, honouring a body fault. */
  send(status: number, headers: Record<string, string | number>, bytes: Buffer): void;
}

function matches(pattern: string | RegExp | undefined, path: string): boolean {
  if (pattern === undefined) return true;
  return typeof pattern === 'string' ? pattern === path : pattern.test(path);
}

function ociErrorBody(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ errors: [{ code, message, detail: null }] }));
}

function jsonHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { 'content-type': 'application/json', ...extra };
}

/** Serves blobs redirected to it, as Docker Hub's CDN does: `/blobs/<digest>?expires=…`, with Range. */
export class FakeCdn extends FakeServer {
  readonly #blobs = new Map<string, Buffer>();

  static async start(): Promise<FakeCdn> {
    const cdn = new FakeCdn();
    await cdn.listen();
    return cdn;
  }

  put(digest: string, bytes: Buffer): void {
    this.#blobs.set(digest, bytes);
  }

  /** A signed-looking, expiring URL for a blob (never to be cached by clients). */
  urlFor(digest: string): string {
    return `${this.publicUrl}/blobs/${digest}?expires=${Date.now() + 600_000}&signature=${randomBytes(8).toString('hex')}`;
  }

  protected override handle(request: IncomingMessage, _response: ServerResponse, context: RequestContext): void {
    const digest = /^\/blobs\/(.+)$/.exec(context.url.pathname)?.[1];
    const bytes = digest ? this.#blobs.get(digest) : undefined;
    if (!bytes) return context.send(404, {}, Buffer.from('not found'));
    sendBlob(request, context, bytes);
  }
}

/** Answers a blob GET/HEAD with Range support (one `bytes=a-b` range). */
function sendBlob(request: IncomingMessage, context: RequestContext, bytes: Buffer, extra: Record<string, string> = {}): void {
  const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', ...extra };
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = range[2] === '' ? bytes.length - 1 : Math.min(Number(range[2]), bytes.length - 1);
    if (start >= bytes.length || end < start) return context.send(416, { 'content-range': `bytes */${bytes.length}` }, Buffer.alloc(0));
    return context.send(206, { ...headers, 'content-range': `bytes ${start}-${end}/${bytes.length}` }, bytes.subarray(start, end + 1));
  }
  context.send(200, headers, bytes);
}

export interface TokenGrantRequest {
  scope: string;
  service: string | null;
  username: string | null;
}

export interface FakeTokenServerOptions {
  /** Accepted Basic credentials; wrong ones get 401. Anonymous requests are served unless `requireCredentials`. */
  users?: Record<string, string>;
  requireCredentials?: boolean;
  /** `expires_in` of issued tokens; null leaves it out (clients then assume 60 s). */
  expiresInSeconds?: number | null;
  /** Where the token goes in the JSON answer. */
  tokenField?: 'token' | 'access_token';
  /** The actions granted for a requested scope; default: what was asked. */
  grant?: (request: TokenGrantRequest) => string[];
}

interface IssuedToken {
  repository: string;
  actions: string[];
  username: string | null;
}

/** A Docker token server (distribution spec/auth/token.md): GET /token?service=…&scope=… */
export class FakeTokenServer extends FakeServer {
  readonly #options: FakeTokenServerOptions;
  readonly #issued = new Map<string, IssuedToken>();

  constructor(options: FakeTokenServerOptions) {
    super();
    this.#options = options;
  }

  static async start(options: FakeTokenServerOptions = {}): Promise<FakeTokenServer> {
    const server = new FakeTokenServer(options);
    await server.listen();
    return server;
  }

  get realm(): string {
    return `${this.publicUrl}/token`;
  }

  /** Token requests received so far. */
  get tokenRequests(): RecordedRequest[] {
    return this.received('GET', '/token');
  }

  /** What a token grants, or null for a token this server never issued. */
  verify(token: string): IssuedToken | null {
    return this.#issued.get(token) ?? null;
  }

  protected override handle(request: IncomingMessage, _response: ServerResponse, context: RequestContext): void {
    if (context.url.pathname !== '/token') return context.send(404, {}, Buffer.from('not found'));
    let username: string | null = null;
    const basic = /^Basic (.+)$/i.exec(request.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const [user, ...rest] = decoded.split(':');
      if (this.#options.users?.[user] !== rest.join(':')) {
        return context.send(401, jsonHeaders(), Buffer.from(JSON.stringify({ details: 'incorrect username or password' })));
      }
      username = user;
    } else if (this.#options.requireCredentials) {
      return context.send(401, jsonHeaders(), Buffer.from(JSON.stringify({ details: 'credentials required' })));
    }
    const scope = context.url.searchParams.get('scope') ?? '';
    const [, repository = '', asked = ''] = /^repository:([^:]+):(.*)$/.exec(scope) ?? [];
    const actions = this.#options.grant?.({ scope, service: context.url.searchParams.get('service'), username }) ?? asked.split(',').filter(Boolean);
    const token = randomBytes(16).toString('hex');
    this.#issued.set(token, { repository, actions, username });
    const body: Record<string, unknown> = { [this.#options.tokenField ?? 'token']: token, issued_at: new Date().toISOString() };
    if (this.#options.expiresInSeconds !== null) body.expires_in = this.#options.expiresInSeconds ?? 300;
    context.send(200, jsonHeaders(), Buffer.from(JSON.stringify(body)));
  }
}

export type FakeRegistryAuth =
  | { kind: 'basic'; username: string; password: string; realm?: string }
  | { kind: 'bearer'; tokenServer: FakeTokenServer; service?: string; realm?: string };

export interface FakeRegistryOptions {
  auth?: FakeRegistryAuth;
  /** Blob GETs and HEADs answered with a 307 to this CDN. */
  cdn?: FakeCdn;
  /** Sent on manifest GETs and HEADs like Docker Hub (`100;w=21600`); `remaining` drops with each GET. */
  rateLimit?: { limit: number; remaining: number };
  /** Answer referrers requests (OCI 1.1); false answers 404 like older registries. Default true. */
  referrers?: boolean;
  /** Apply the artifactType filter of referrers requests (and say so); false ignores it. Default true. */
  referrersFilter?: boolean;
  /** Referrers descriptors per page, with a `Link` to the next (`?page=<k>`); default all in one. */
  referrersPageSize?: number;
  /** Tags per page of tags/list when the client sends no `n`, with a `Link` to the next; default all. */
  tagsPageSize?: number;
}

interface Repository {
  manifests: Map<string, Content>;
  blobs: Map<string, Buffer>;
  referrers: Map<string, Record<string, unknown>[]>;
}

const NAME_PATTERN = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS_PATTERN = /^\/v2\/(.+)\/tags\/list$/;

/** A registry speaking the pull side of the OCI distribution API. */
export class FakeRegistry extends FakeServer {
  readonly #options: FakeRegistryOptions;
  readonly #repositories = new Map<string, Repository>();

  constructor(options: FakeRegistryOptions) {
    super();
    this.#options = options;
  }

  static async start(options: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const registry = new FakeRegistry(options);
    await registry.listen();
    return registry;
  }

  #repository(name: string): Repository {
    let repository = this.#repositories.get(name);
    if (!repository) {
      repository = { manifests: new Map(), blobs: new Map(), referrers: new Map() };
      this.#repositories.set(name, repository);
    }
    return repository;
  }

  addBlob(repository: string, bytes: Buffer): string {
    const digest = sha256(bytes);
    this.#repository(repository).blobs.set(digest, bytes);
    this.#options.cdn?.put(digest, bytes);
    return digest;
  }

  /** Stores a manifest under its digest and the given tags; returns its digest. */
  addManifest(repository: string, manifest: Content | { mediaType: string; bytes: Buffer }, tags: string[] = []): string {
    const stored = 'digest' in manifest ? manifest : content(manifest.mediaType, manifest.bytes);
    const manifests = this.#repository(repository).manifests;
    manifests.set(stored.digest, stored);
    for (const tag of tags) manifests.set(tag, stored);
    return stored.digest;
  }

  /** Stores an image or index with all its blobs; the tags name the top-level manifest. */
  addImage(repository: string, image: TestImage | TestIndex, tags: string[] = []): string {
    for (const blob of image.blobs) this.addBlob(repository, blob.bytes);
    if ('index' in image) {
      for (const one of image.images) this.addManifest(repository, one.manifest);
      return this.addManifest(repository, image.index, tags);
    }
    return this.addManifest(repository, image.manifest, tags);
  }

  /** Adds a referrer descriptor (an artifact manifest) to the referrers index of `subject`. */
  addReferrer(repository: string, subject: string, artifact: Content, artifactType: string, annotations?: Record<string, string>): void {
    this.addManifest(repository, artifact);
    const list = this.#repository(repository).referrers;
    const descriptor = { mediaType: artifact.mediaType, digest: artifact.digest, size: artifact.size, artifactType, ...(annotations ? { annotations } : {}) };
    list.set(subject, [...(list.get(subject) ?? []), descriptor]);
  }

  removeTag(repository: string, tag: string): void {
    this.#repository(repository).manifests.delete(tag);
  }

  #challenge(scope: string | null, error?: string): string {
    const auth = this.#options.auth;
    if (!auth) return '';
    if (auth.kind === 'basic') return `Basic realm="${auth.realm ?? 'fake-registry'}"`;
    const params = [`realm="${auth.realm ?? auth.tokenServer.realm}"`, `service="${auth.service ?? 'fake-registry'}"`];
    if (scope) params.push(`scope="${scope}"`);
    if (error) params.push(`error="${error}"`);
    return `Bearer ${params.join(',')}`;
  }

  /** null when the request may proceed; otherwise the challenge header to answer 401 with. */
  #authorize(request: IncomingMessage, repository: string | null): string | null {
    const auth = this.#options.auth;
    if (!auth) return null;
    const scope = repository ? `repository:${repository}:pull` : null;
    const header = request.headers.authorization ?? '';
    if (auth.kind === 'basic') {
      const basic = /^Basic (.+)$/i.exec(header);
      const expected = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
      return basic && basic[1] === expected ? null : this.#challenge(scope);
    }
    const bearer = /^Bearer (.+)$/i.exec(header);
    if (!bearer) return this.#challenge(scope);
    const granted = auth.tokenServer.verify(bearer[1]);
    if (!granted) return this.#challenge(scope, 'invalid_token');
    if (repository === null) return null;
    return granted.repository === repository && granted.actions.includes('pull') ? null : this.#challenge(scope, 'insufficient_scope');
  }

  protected override handle(request: IncomingMessage, _response: ServerResponse, context: RequestContext): void {
    const path = context.url.pathname;
    const method = request.method ?? 'GET';
    const common = { 'docker-distribution-api-version': 'registry/2.0' };
    if (path === '/v2/' || path === '/v2') {
      const challenge = this.#authorize(request, null);
      if (challenge) return context.send(401, { ...common, ...jsonHeaders(), 'www-authenticate': challenge }, ociErrorBody('UNAUTHORIZED', 'authentication required'));
      return context.send(200, { ...common, ...jsonHeaders() }, Buffer.from('{}'));
    }
    const tagsMatch = TAGS_PATTERN.exec(path);
    if (tagsMatch && method === 'GET') return this.#tags(request, context, tagsMatch[1]);
    const match = NAME_PATTERN.exec(path);
    if (!match || (method !== 'GET' && method !== 'HEAD')) return context.send(404, { ...common, ...jsonHeaders() }, ociErrorBody('NAME_UNKNOWN', 'no such route'));
    const [, name, kind, reference] = match;
    const challenge = this.#authorize(request, name);
    if (challenge) {
      return context.send(401, { ...common, ...jsonHeaders(), 'www-authenticate': challenge }, ociErrorBody('UNAUTHORIZED', 'authentication required'));
    }
    const repository = this.#repositories.get(name);

    if (kind === 'manifests') {
      const manifest = repository?.manifests.get(reference);
      const limits = this.#rateLimitHeaders(method);
      if (!manifest) return context.send(404, { ...common, ...limits, ...jsonHeaders() }, ociErrorBody('MANIFEST_UNKNOWN', `manifest unknown: ${reference}`));
      return context.send(200, { ...common, ...limits, 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest, etag: `"${manifest.digest}"` }, manifest.bytes);
    }
    if (kind === 'blobs') {
      const bytes = repository?.blobs.get(reference);
      if (!bytes) return context.send(404, { ...common, ...jsonHeaders() }, ociErrorBody('BLOB_UNKNOWN', `blob unknown: ${reference}`));
      if (this.#options.cdn) return context.send(307, { ...common, location: this.#options.cdn.urlFor(reference) }, Buffer.alloc(0));
      return sendBlob(request, context, bytes, { ...common, 'docker-content-digest': reference });
    }
    if (this.#options.referrers === false) return context.send(404, { ...common, ...jsonHeaders() }, ociErrorBody('NAME_UNKNOWN', 'referrers not supported'));
    const artifactType = this.#options.referrersFilter === false ? null : context.url.searchParams.get('artifactType');
    const all = repository?.referrers.get(reference) ?? [];
    const matching = artifactType ? all.filter((d) => d.artifactType === artifactType) : all;
    const size = this.#options.referrersPageSize ?? Math.max(1, matching.length);
    const page = Number(context.url.searchParams.get('page') ?? '0');
    const manifests = matching.slice(page * size, (page + 1) * size);
    const headers: Record<string, string> = { ...common, 'content-type': OCI_INDEX };
    if (artifactType) headers['oci-filters-applied'] = 'artifactType';
    if ((page + 1) * size < matching.length) {
      const next = new URLSearchParams(context.url.searchParams);
      next.set('page', String(page + 1));
      headers.link = `<${path}?${next}>; rel="next"`;
    }
    return context.send(200, headers, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })));
  }

  /** tags/list with `n` and `last` as Distribution answers them, or pages of `tagsPageSize` when no `n`. */
  #tags(request: IncomingMessage, context: RequestContext, name: string): void {
    const common = { 'docker-distribution-api-version': 'registry/2.0', ...jsonHeaders() };
    const challenge = this.#authorize(request, name);
    if (challenge) return context.send(401, { ...common, 'www-authenticate': challenge }, ociErrorBody('UNAUTHORIZED', 'authentication required'));
    const repository = this.#repositories.get(name);
    if (!repository) return context.send(404, common, ociErrorBody('NAME_UNKNOWN', `repository name not known to registry: ${name}`));
    const tags = [...repository.manifests.keys()].filter((key) => !key.includes(':')).sort();
    const last = context.url.searchParams.get('last');
    const after = last === null ? tags : tags.filter((tag) => tag > last);
    const asked = context.url.searchParams.get('n');
    const n = asked !== null ? Number(asked) : (this.#options.tagsPageSize ?? after.length);
    const page = after.slice(0, n);
    const headers: Record<string, string> = { ...common };
    if (page.length < after.length && page.length > 0) headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`;
    return context.send(200, headers, Buffer.from(JSON.stringify({ name, tags: page })));
  }

  #rateLimitHeaders(method: string): Record<string, string> {
    const limit = this.#options.rateLimit;
    if (!limit) return {};
    if (method === 'GET' && limit.remaining > 0) limit.remaining--;
    return { 'ratelimit-limit': `${limit.limit};w=21600`, 'ratelimit-remaining': `${limit.remaining};w=21600`, 'docker-ratelimit-source': '127.0.0.1' };
  }
}

export interface FakeDockerHub {
  registry: FakeRegistry;
  tokenServer: FakeTokenServer;
  cdn: FakeCdn;
  close(): Promise<void>;
}

/**
 * Docker Hub's shape: a registry answering with a Bearer challenge (service `registry.docker.io`), its
 * token server on another port, and blobs answered with a 307 to a CDN on a third port.
 */
export async function startFakeDockerHub(
  options: {
    tokenServer?: FakeTokenServerOptions;
    rateLimit?: { limit: number; remaining: number };
    /** Names for the realm and CDN URLs instead of 127.0.0.1 (e.g. auth.docker.io), resolved by the test. */
    hostnames?: { tokenServer?: string; cdn?: string };
  } = {},
): Promise<FakeDockerHub> {
  const tokenServer = await FakeTokenServer.start(options.tokenServer);
  const cdn = await FakeCdn.start();
  if (options.hostnames?.tokenServer) tokenServer.hostname = options.hostnames.tokenServer;
  if (options.hostnames?.cdn) cdn.hostname = options.hostnames.cdn;
  const registry = await FakeRegistry.start({
    auth: { kind: 'bearer', tokenServer, service: 'registry.docker.io' },
    cdn,
    rateLimit: options.rateLimit,
  });
  return {
    registry,
    tokenServer,
    cdn,
    async close() {
      await Promise.all([registry.close(), tokenServer.close(), cdn.close()]);
    },
  };
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | { address: string; family: number }[], family?: number) => void;

/**
 * A `dns.lookup` stand-in that resolves the given names to 127.0.0.1 (so a test can use real-looking
 * host names such as registry-1.docker.io for its fake servers) and every other name as the system does.
 */
export function resolveToLoopback(names: string[]) {
  const mapped = new Set(names.map((name) => name.toLowerCase()));
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    if (!mapped.has(hostname.toLowerCase())) {
      systemLookup(hostname, options as LookupAllOptions, callback as never);
      return;
    }
    if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  };
}
