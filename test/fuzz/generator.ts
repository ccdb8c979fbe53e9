// A seeded, bounded generator of hostile requests for the fuzz test (test/fuzz/fuzz.test.ts) and the long
// runner (test/fuzz/run.ts): names, references, digests, headers, ranges, methods, `ns`, JSON bodies, ids
// and pagination, mixed from valid and broken pieces so that requests get past the first check often
// enough to reach the deeper ones. The same seed gives the same requests. Every URL a body names points at
// this machine (loopback) or is malformed: a fuzzed upstream never sends traffic anywhere else.
import type { RawRequest } from '../helpers/raw-http.ts';

/** mulberry32: small, fast, seedable; the sequence is what matters, not its quality. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzContext {
  /** The valid repository name of a cached image, e.g. `acme/hub/library/app`. */
  repository: string;
  tag: string;
  /** Digests of that image's manifest and blobs. */
  digests: string[];
  /** Credentials a client may hold: a pull token, an API token. */
  tokens: string[];
  /** Loopback port of the real upstream (for URLs in bodies). */
  upstreamPort: number;
}

export interface FuzzRequest extends RawRequest {
  method: string;
  /** What the generator meant (for the report of a failure). */
  label: string;
}

const HEX = '0123456789abcdef';

export class HostileRequests {
  readonly #next: () => number;
  readonly #context: FuzzContext;

  constructor(seed: number, context: FuzzContext) {
    this.#next = random(seed);
    this.#context = context;
  }

  #int(max: number): number {
    return Math.floor(this.#next() * max);
  }

  #chance(p: number): boolean {
    return this.#next() < p;
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#int(items.length)];
  }

  #hex(length: number): string {
    let text = '';
    for (let i = 0; i < length; i++) text += HEX[this.#int(16)];
    return text;
  }

  /** A few bytes no client would send: controls, quotes, non-ASCII, percent-escapes valid and not. */
  #nasty(): string {
    return this.#pick([
      '%00', '%0d%0a', '%22', '%5c', '%2f', '%2e%2e', '..', '//', '%', '%zz', '%C0%AF', '%FF', '%E2%80%AE', '%F0%9F%92%A9',
      '"', "'", '<script>', '${jndi:x}', '\\', ' ', '%20', '+', ';', ',', '=', '*', '~', 'A', 'É', '%C4%80', 'x'.repeat(300),
    ]);
  }

  #name(): string {
    const valid = this.#context.repository;
    switch (this.#int(12)) {
      case 0: return valid;
      case 1: return valid;
      case 2: return `${valid}${this.#nasty()}`;
      case 3: return valid.toUpperCase();
      case 4: return valid.split('/').slice(0, 1 + this.#int(3)).join('/');
      case 5: return `${valid}/${'a/'.repeat(this.#int(200))}x`;
      case 6: return `acme/${this.#nasty()}/app`;
      case 7: return `library/alpine`; // a mirror-style name without group and registry
      case 8: return `${this.#nasty()}`;
      case 9: return `acme/hub/${'a'.repeat(250 + this.#int(20))}`;
      case 10: return `_catalog`;
      default: return `acme/hub/library/${this.#pick(['app', 'missing', 'a-b', 'a__b', 'a..b', '-a', 'a-'])}`;
    }
  }

  #digest(): string {
    const { digests } = this.#context;
    switch (this.#int(9)) {
      case 0:
      case 1:
      case 2: return this.#pick(digests);
      case 3: return `sha256:${this.#hex(64)}`;
      case 4: return `sha256:${this.#hex(this.#int(70))}`;
      case 5: return `sha512:${this.#hex(128)}`;
      case 6: return `md5:${this.#hex(32)}`;
      case 7: return `sha256:${this.#hex(64).toUpperCase()}`;
      default: return `${this.#pick(['sha256', 'SHA256', 'sha256+b64', ''])}:${this.#nasty()}`;
    }
  }

  #reference(): string {
    switch (this.#int(6)) {
      case 0:
      case 1: return this.#context.tag;
      case 2: return this.#digest();
      case 3: return this.#pick(['latest', 'v1', 'missing', '-bad', '.bad', 'a'.repeat(129), 'tag:with:colons']);
      default: return this.#nasty();
    }
  }

  #query(): string {
    const parts: string[] = [];
    const count = this.#int(4);
    for (let i = 0; i < count; i++) {
      const key = this.#pick(['ns', 'n', 'last', 'artifactType', 'page', 'per_page', 'search', 'scope', 'service', 'account', 'grant_type', this.#nasty()]);
      const value = this.#pick(['docker.io', 'ghcr.io', 'evil.example', '127.0.0.1', '0', '-1', '1', '100', '101', '1e9', '9007199254740993', 'x', '', this.#nasty(),
        `repository:${this.#context.repository}:pull`, 'repository:acme/hub/library/app:push,pull', 'registry:catalog:*', 'manifold']);
      parts.push(`${key}=${value}`);
    }
    return parts.length ? `?${parts.join('&')}` : '';
  }

  #id(): string {
    return this.#pick(['1', '2', '3', '4', '5', '0', '-1', '1.5', '1e3', '9007199254740993', '99999999999999999999', 'abc', 'acme', '%00', 'null', this.#nasty()]);
  }

  /** A value of any JSON type, often the wrong one, sometimes hostile. */
  #value(depth = 0): unknown {
    switch (this.#int(depth > 2 ? 8 : 10)) {
      case 0: return this.#pick(['', ' ', 'hub', 'acme', 'a\u0000b', 'line\nbreak', 'x'.repeat(5000), '\u202egnp.exe', 'ÄÖÜ', '../../etc/passwd', this.#nasty()]);
      case 1: return this.#pick([0, -1, 1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 366, 100000]);
      case 2: return this.#chance(0.5);
      case 3: return null;
      case 4: return this.#url();
      case 5: return this.#pick(['api', 'read_api', 'read_virtual_registry', 'root', 'guest', 'developer', 'owner', 'king']);
      case 6: return new Date(Date.now() + this.#pick([-1, 1, 400]) * 86_400_000).toISOString();
      case 7: return this.#pick(['2099-13-45', 'yesterday', '2026-01-01T00:00:00', '0']);
      case 8: return Array.from({ length: this.#int(4) }, () => this.#value(depth + 1));
      default: return Object.fromEntries(Array.from({ length: this.#int(4) }, () => [this.#key(), this.#value(depth + 1)]));
    }
  }

  #key(): string {
    return this.#pick(['name', 'path', 'description', 'url', 'username', 'password', 'token_url', 'scopes', 'role', 'expires_at', 'position',
      'upstream_id', 'user_id', 'email', 'admin', 'cache_validity_hours', 'keep_n_days_after_download', 'cadence_days', 'enabled',
      'current_password', 'new_password', '__proto__', 'constructor', '', this.#nasty()]);
  }

  /** Upstream URLs: loopback (the real upstream or nothing), or malformed. Never another host. */
  #url(): string {
    const port = this.#context.upstreamPort;
    return this.#pick([
      `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/v2/`, `http://localhost:${port}`, 'http://127.0.0.1:1', `http://[::1]:${port}`,
      'http://[::ffff:127.0.0.1]:1', 'http://[::127.0.0.1]:1', 'http://0x7f.1:1', 'ftp://127.0.0.1', 'javascript:alert(1)', 'http://', 'http://user:pw@127.0.0.1:1',
      `http://127.0.0.1:${port}/?q=1`, `http://127.0.0.1:${port}/#f`, 'not a url', '', `http://127.0.0.1:${port}/${'a'.repeat(3000)}`,
    ]);
  }

  #body(): string {
    switch (this.#int(8)) {
      case 0: return '';
      case 1: return '{';
      case 2: return '[]';
      case 3: return '"just a string"';
      case 4: return '{"a":'.repeat(200) + '1' + '}'.repeat(200);
      case 5: return JSON.stringify({ name: this.#value(), url: this.#url(), username: this.#value(), password: this.#value() });
      default: return JSON.stringify(Object.fromEntries(Array.from({ length: 1 + this.#int(5) }, () => [this.#key(), this.#value()])));
    }
  }

  #authorization(): Record<string, string> {
    const token = this.#pick(this.#context.tokens);
    switch (this.#int(12)) {
      case 0:
      case 1:
      case 2:
      case 3: return { authorization: `Basic ${Buffer.from(`token:${token}`).toString('base64')}` };
      case 4:
      case 5: return { authorization: `Bearer ${token}` };
      case 6: return { 'private-token': token };
      case 7: return { authorization: `Basic ${Buffer.from(`admin:${this.#pick(['wrong', '', ':', 'x'.repeat(1000)])}`).toString('base64')}` };
      case 8: return { authorization: this.#pick(['Basic', 'Basic !!!', 'Bearer', 'Bearer eyJhbGciOiJub25lIn0.e30.', 'Bearer mfpat_forged', 'Negotiate x', 'Basic ' + 'A'.repeat(5000), 'Basic Og==']) };
      case 9: return { authorization: `Bearer ${this.#hex(20)}.${this.#hex(40)}.${this.#hex(20)}` };
      default: return {};
    }
  }

  #headers(): Record<string, string> {
    const headers: Record<string, string> = { ...this.#authorization() };
    if (this.#chance(0.3)) headers.range = this.#pick(['bytes=0-0', 'bytes=0-', 'bytes=-1', 'bytes=5-2', 'bytes=0-1,3-4', 'bytes=99999999999-', 'bytes=-0', 'items=0-1', 'bytes=x-y', 'bytes=' + '0-1,'.repeat(500)]);
    if (this.#chance(0.3)) headers.accept = this.#pick(['*/*', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'text/html', '', 'a'.repeat(2000), 'application/json;q=x']);
    if (this.#chance(0.2)) headers['if-none-match'] = this.#pick(['*', `"${this.#digest()}"`, 'W/"x"', '"', '']);
    if (this.#chance(0.1)) headers['if-unmodified-since'] = this.#pick(['Thu, 01 Jan 1970 00:00:00 GMT', 'tomorrow', '']);
    if (this.#chance(0.2)) headers.host = this.#pick(['evil.example.com', '127.0.0.1', 'a"b', '[::1]:1', 'x'.repeat(300)]);
    if (this.#chance(0.1)) headers['x-forwarded-for'] = this.#pick(['1.2.3.4', 'garbage', '::1, 10.0.0.1']);
    if (this.#chance(0.1)) headers['x-request-id'] = this.#pick(['id', 'x'.repeat(5000), '"\'<>']);
    return headers;
  }

  #target(): string {
    switch (this.#int(16)) {
      case 0: return '/v2/';
      case 1: return `/v2/${this.#name()}/manifests/${this.#reference()}${this.#query()}`;
      case 2:
      case 3: return `/v2/${this.#name()}/manifests/${this.#reference()}`;
      case 4:
      case 5: return `/v2/${this.#name()}/blobs/${this.#digest()}${this.#chance(0.2) ? this.#query() : ''}`;
      case 6: return `/v2/${this.#name()}/referrers/${this.#digest()}${this.#query()}`;
      case 7: return `/v2/${this.#name()}/tags/list${this.#query()}`;
      case 8: return `/v2/_catalog${this.#query()}`;
      case 9: return `/auth/token${this.#query()}`;
      case 10: return `/v2${this.#pick(['', '/', '//', '/%2e%2e/api/v1/user', '/../api/v1/user', `/${this.#nasty()}`])}`;
      case 11: return this.#pick(['/healthz', '/readyz', '/metrics', '/', '/api', '/api/v1', '/api/v1/openapi.json', '/api/v1/docs', `/${this.#nasty()}`]);
      default: return this.#apiTarget();
    }
  }

  #apiTarget(): string {
    const id = () => this.#id();
    const path = this.#pick([
      '/user', '/user/personal_access_tokens', `/user/personal_access_tokens/${id()}`, '/users', `/users/${id()}`, `/users/${id()}/block`, `/users/${id()}/unblock`,
      '/groups', `/groups/${id()}`, `/groups/${id()}/members`, `/groups/${id()}/members/${id()}`, `/groups/${id()}/access_tokens`, `/groups/${id()}/deploy_tokens`,
      `/groups/${id()}/registries`, `/groups/${id()}/upstreams`, `/groups/${id()}/upstreams/test`, `/groups/${id()}/cleanup_policy`, `/groups/${id()}/audit_events`,
      `/registries/${id()}`, `/registries/${id()}/upstreams`, `/registries/${id()}/upstream_links`, `/registries/${id()}/cache`, `/registry_upstreams/${id()}`,
      `/upstreams/${id()}`, `/upstreams/${id()}/test`, `/upstreams/${id()}/cache_entries`, `/upstreams/${id()}/cache`, `/cache_entries/${id()}`, '/audit_events',
    ]);
    return `/api/v1${path}${this.#query()}`;
  }

  next(): FuzzRequest {
    const target = this.#target();
    const isApi = target.startsWith('/api/');
    const method = this.#chance(0.6) ? (this.#chance(0.8) ? 'GET' : 'HEAD')
      : this.#pick(isApi ? ['POST', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'] : ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL']);
    const headers = this.#headers();
    let body: string | undefined;
    if (method !== 'GET' && method !== 'HEAD' && this.#chance(0.8)) {
      body = this.#body();
      headers['content-type'] = this.#pick(['application/json', 'application/json', 'application/json; charset=utf-8', 'application/x-www-form-urlencoded', 'text/plain', 'application/xml', '']);
      if (headers['content-type'] === 'application/x-www-form-urlencoded') body = this.#pick(['grant_type=password&username=admin&password=wrong', 'grant_type=refresh_token', 'a=%zz', '&&&', body]);
    }
    return { method, target, headers, body, label: `${method} ${target}` };
  }
}
