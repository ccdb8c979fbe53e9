// One validated configuration: defaults < YAML file < environment (DESIGN §7).
// Every leaf setting `a.bCd` can be set as MANIFOLD_A_B_CD; PORT and DATABASE_URL are honoured too.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const seconds = (value: number) => z.number().int().min(0).default(value);
const positive = (value: number) => z.number().int().min(1).default(value);

/** `host` or `host:port` as a Host header names it: a DNS name, an IPv4 address or a bracketed IPv6 one. */
const HOST_AND_PORT = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/;

export const configSchema = z.object({
  /** Where the embedded defaults keep their files: SQLite database, objects, keys. */
  dataDir: z.string().min(1).default('./data'),
  /** Password of the admin user created on first start; generated and printed once when unset. */
  adminPassword: z.string().min(12, 'must be at least 12 characters').optional(),
  server: z.object({
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(5000),
    /** The URL clients use to reach Manifold; the token realm is built from it. Default: from the request. */
    publicUrl: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * Without publicUrl: the Host names (`host` matches any port, `host:port` that one) whose requests get
     * a token realm on that host. Any other Host gets the realm of the address the client connected to.
     */
    allowedHosts: z.array(z.string().trim().toLowerCase().regex(HOST_AND_PORT, 'must be host or host:port')).default([]),
    trustProxy: z.boolean().default(false),
    shutdownTimeoutSeconds: seconds(30),
  }).prefault({}),
  database: z.object({
    /** postgres://… selects PostgreSQL; unset uses SQLite at sqlitePath. */
    url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
    sqlitePath: z.string().min(1).optional(),
    poolSize: positive(10),
    /** PostgreSQL: time to open a connection (or to wait for one of the pool). */
    connectTimeoutMs: positive(5_000),
    /** PostgreSQL: longest statement (server side; the client gives up 1 s later on a server that is silent). */
    statementTimeoutMs: positive(15_000),
    /** SQLite: how long a statement waits for a lock held by another connection (blocks the process meanwhile). */
    sqliteBusyTimeoutMs: z.number().int().min(0).max(5_000).default(500),
    /** While the database is unavailable, permissions and cache entries read this recently still serve cached content. */
    outageMemorySeconds: z.number().int().min(0).max(600).default(60),
  }).prefault({}),
  storage: z.object({
    driver: z.enum(['filesystem', 's3']).default('filesystem'),
    /** Filesystem: where objects live (fills spool in <path>/tmp, on the same filesystem). */
    path: z.string().min(1).optional(),
    /** S3: the local directory fills spool into before the verified object is uploaded. */
    spoolPath: z.string().min(1).optional(),
    s3: z.object({
      bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name').optional(),
      /** Key prefix inside the bucket, e.g. `manifold/` (objects are `<prefix><algorithm>/<hex>`). */
      prefix: z.string().regex(/^[^/].*\/$|^$/, 'must be empty or end with / (and not start with /)').default(''),
      /** Unset: the SDK's chain (AWS_REGION, shared config); us-east-1 when that has none either. */
      region: z.string().min(1).optional(),
      /** An S3-compatible endpoint (MinIO, Ceph, R2); unset: AWS. */
      endpoint: z.url({ protocol: /^https?$/ }).optional(),
      forcePathStyle: z.boolean().default(false),
      /** Unset: the SDK's default credential chain (environment, shared files, instance or task role). */
      accessKeyId: z.string().min(1).optional(),
      secretAccessKey: z.string().min(1).optional(),
      sessionToken: z.string().min(1).optional(),
      /** Answer blob GETs on hits with a 307 to a pre-signed URL: clients then read from the bucket. */
      redirect: z.boolean().default(false),
      redirectExpirySeconds: z.number().int().min(60).max(7 * 24 * 3600).default(1200),
      /** Multipart part size in MiB for uploads of a verified spool (memory per upload: about twice this). */
      partSizeMb: z.number().int().min(5).max(512).default(8),
    }).prefault({}),
    /** The instance's size limit in bytes (unique objects of live entries); 0 = none (DESIGN §4, eviction). */
    maxBytes: z.number().int().min(0).default(0),
    /** Above this share of maxBytes (or of a group's quota) entries are evicted, least recently pulled first… */
    highWatermarkPercent: z.number().int().min(1).max(100).default(90),
    /** …until storage is under this share. */
    lowWatermarkPercent: z.number().int().min(1).max(100).default(80),
    /** Entries younger than this are never evicted (a fill that has just finished keeps its object). */
    evictionGraceSeconds: seconds(60),
    /** How often storage is measured against the limits (a fill that crosses the high watermark also triggers it). */
    quotaCheckSeconds: positive(30),
  }).prefault({}).superRefine((storage, ctx) => {
    if (storage.lowWatermarkPercent >= storage.highWatermarkPercent) {
      ctx.addIssue({ code: 'custom', path: ['lowWatermarkPercent'], message: 'must be below highWatermarkPercent' });
    }
    if (storage.driver === 's3' && !storage.s3.bucket) ctx.addIssue({ code: 'custom', path: ['s3', 'bucket'], message: 'required when storage.driver is s3' });
    if (!storage.s3.accessKeyId !== !storage.s3.secretAccessKey) {
      ctx.addIssue({ code: 'custom', path: ['s3', storage.s3.accessKeyId ? 'secretAccessKey' : 'accessKeyId'], message: 'accessKeyId and secretAccessKey go together' });
    }
  }),
  auth: z.object({
    /** The `service` of the Bearer challenge and the audience of registry tokens. */
    service: z.string().min(1).regex(/^[\x20-\x7e]+$/, 'must be printable ASCII').default('manifold'),
    issuer: z.string().min(1).default('manifold'),
    tokenTtlSeconds: z.number().int().min(60).max(3600).default(300),
    /** PEM file with the registry token signing key; created in dataDir on first start when unset. */
    signingKeyPath: z.string().min(1).optional(),
    /** Brute-force protection of passwords and tokens (src/auth/login-throttle.ts). */
    throttle: z.object({
      addressFailures: positive(10),
      usernameFailures: positive(5),
      windowSeconds: positive(3600),
      baseBlockSeconds: positive(1),
      maxBlockSeconds: positive(900),
      refusalDelayMs: z.number().int().min(0).max(60_000).default(1000),
    }).prefault({}),
    /** Worker threads that compute scrypt, and checks that may wait for one (more are refused with 429). */
    passwordHashThreads: z.number().int().min(1).max(64).default(1),
    passwordHashQueue: positive(32),
    /** Console sessions end this long after sign-in, whatever their use. */
    sessionTtlHours: z.number().int().min(1).max(24 * 30).default(12),
    /** …or when unused this long. */
    sessionIdleMinutes: z.number().int().min(1).max(24 * 60).default(60),
  }).prefault({}),
  secrets: z.object({
    /** base64 of 32 random bytes; encrypts upstream credentials. Created in dataDir on first start when unset. */
    encryptionKey: z.base64().refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64').optional(),
  }).prefault({}),
  limits: z.object({
    registriesPerGroup: positive(5),
    upstreamsPerRegistry: z.number().int().min(1).max(20).default(5),
    maxManifestBytes: positive(4 * 1024 * 1024),
    maxBlobBytes: positive(64 * 1024 * 1024 * 1024),
  }).prefault({}),
  upstream: z.object({
    /** Allow upstreams on loopback, private and link-local addresses (on-premises registries, tests). */
    allowPrivate: z.boolean().default(false),
    connectTimeoutMs: positive(10_000),
    headersTimeoutMs: positive(30_000),
    bodyTimeoutMs: positive(60_000),
    probeTimeoutMs: positive(5_000),
    probeConcurrency: z.number().int().min(1).max(16).default(3),
    /** The limit of one revalidation HEAD of a stale tag; past it the cached copy is served (DESIGN §3.5). */
    revalidateTimeoutMs: positive(2_000),
    /** Consecutive failures of an upstream that open its circuit (a timeout opens it at once). */
    circuitFailureThreshold: positive(3),
    /** The first backoff window of an open circuit; each failed probe doubles it, up to circuitMaxOpenSeconds. */
    circuitOpenSeconds: positive(10),
    circuitMaxOpenSeconds: positive(300),
    /** How long a 429 without Retry-After (or ratelimit-remaining 0 without a reset) limits an upstream. */
    rateLimitDefaultSeconds: positive(60),
  }).prefault({}),
  cache: z.object({
    /** How long a fill goes on after its last client disconnected. */
    fillGraceSeconds: seconds(60),
    counterFlushSeconds: positive(5),
    destroyIntervalSeconds: positive(30),
    /** How often the cleanup policies that are due are looked for (each runs on its own cadence). */
    cleanupCheckSeconds: positive(60),
    referrersTtlSeconds: seconds(60),
    /** How long an upstream's tag list is used before it is asked again (the last good list is kept for outages). */
    tagsTtlSeconds: seconds(30),
  }).prefault({}),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
  /**
   * Several replicas on one PostgreSQL database and one bucket (README "Running several replicas"). Setting
   * advertiseUrl turns cluster mode on: a fill is owned by one replica through a lease in the database,
   * and the other replicas stream it from the owner's peer listener instead of asking the upstream.
   */
  cluster: z.object({
    /** The URL the other replicas reach this replica's peer listener at, e.g. `http://manifold-1:5001`. */
    advertiseUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Shared by every replica: signs and checks requests to the peer listener (at least 32 characters). */
    secret: z.string().min(32, 'must be at least 32 characters').optional(),
    /** The peer listener: an address of its own, so that a load balancer in front of server.port never exposes it. */
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(5001),
    /** How often the owner of a fill renews its lease. */
    heartbeatMs: z.number().int().min(100).max(60_000).default(1_000),
    /** A lease not renewed for this long has expired: the next replica that needs the object takes the fill over. */
    leaseExpiryMs: z.number().int().min(500).max(300_000).default(5_000),
  }).prefault({}).superRefine((cluster, ctx) => {
    if (cluster.advertiseUrl && !cluster.secret) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'required when cluster.advertiseUrl is set' });
    if (cluster.leaseExpiryMs < 2 * cluster.heartbeatMs) ctx.addIssue({ code: 'custom', path: ['leaseExpiryMs'], message: 'must be at least twice cluster.heartbeatMs' });
  }),
}).superRefine((config, ctx) => {
  if (config.cluster.advertiseUrl && !config.database.url) {
    ctx.addIssue({ code: 'custom', path: ['cluster', 'advertiseUrl'], message: 'several replicas need PostgreSQL (database.url); on SQLite Manifold is one process' });
  }
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

type Leaf = { path: string[]; type: string };

function leaves(schema: unknown, prefix: string[] = []): Leaf[] {
  const node = schema as { type?: string | string[]; properties?: Record<string, unknown>; anyOf?: unknown[] };
  if (node.properties) {
    return Object.entries(node.properties).flatMap(([key, child]) => leaves(child, [...prefix, key]));
  }
  const type = Array.isArray(node.type) ? node.type[0] : (node.type ?? 'string');
  return [{ path: prefix, type }];
}

const settingLeaves = leaves(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }));

/** The environment variable that sets one setting: `upstream.allowPrivate` → MANIFOLD_UPSTREAM_ALLOW_PRIVATE. */
export function envName(settingPath: string[]): string {
  return 'MANIFOLD_' + settingPath.map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function coerce(value: string, type: string): unknown {
  if (type === 'array') return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (type === 'integer' || type === 'number') return value.trim() !== '' && !Number.isNaN(Number(value)) ? Number(value) : value;
  if (type === 'boolean') {
    if (/^(true|1|yes)$/i.test(value)) return true;
    if (/^(false|0|no)$/i.test(value)) return false;
  }
  return value;
}

function setAt(target: Record<string, unknown>, at: string[], value: unknown): void {
  let node = target;
  for (const key of at.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[at[at.length - 1]] = value;
}

export class ConfigError extends Error {}

/** Reads defaults, the optional YAML file (MANIFOLD_CONFIG) and the environment into one validated Config. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigInput = {}): Config {
  const raw: Record<string, unknown> = {};
  const file = env.MANIFOLD_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`Invalid configuration: cannot read ${file}: ${(error as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(`Invalid configuration: ${file} must hold a mapping of settings`);
    }
    Object.assign(raw, parsed ?? {});
  }
  for (const leaf of settingLeaves) {
    const value = env[envName(leaf.path)];
    if (value !== undefined) setAt(raw, leaf.path, coerce(value, leaf.type));
  }
  if (env.PORT !== undefined) setAt(raw, ['server', 'port'], coerce(env.PORT, 'integer'));
  if (env.DATABASE_URL) setAt(raw, ['database', 'url'], env.DATABASE_URL);
  for (const [section, values] of Object.entries(overrides)) {
    if (values !== null && typeof values === 'object') {
      raw[section] = { ...(raw[section] as object | undefined), ...values };
    } else raw[section] = values;
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const setting = issue.path.join('.');
      const leaf = settingLeaves.find((l) => l.path.join('.') === setting);
      return `  ${setting || '(root)'}${leaf ? ` (${envName(leaf.path)})` : ''}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/** Paths that default to places inside dataDir. */
export function resolvedPaths(config: Config) {
  return {
    sqlitePath: config.database.sqlitePath ?? path.join(config.dataDir, 'manifold.db'),
    objectsPath: config.storage.path ?? path.join(config.dataDir, 'objects'),
    spoolPath: config.storage.spoolPath ?? path.join(config.dataDir, 'spool'),
    signingKeyPath: config.auth.signingKeyPath ?? path.join(config.dataDir, 'signing-key.pem'),
    encryptionKeyPath: path.join(config.dataDir, 'encryption.key'),
  };
}

/** All settings with their environment variable names, for documentation. */
export function settingsReference(): { setting: string; env: string; type: string }[] {
  return settingLeaves.map((leaf) => ({ setting: leaf.path.join('.'), env: envName(leaf.path), type: leaf.type }));
}
