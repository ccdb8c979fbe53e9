// The change feed (DESIGN §8): what a write changed, told to every in-memory cache of this process at
// once and, on PostgreSQL, to every other replica through LISTEN/NOTIFY, so that a change made through
// any replica's API (or the CLI) takes effect everywhere within a second instead of a cache's TTL.
//
// - Writers publish after their transaction committed (a rolled-back write tells nobody anything).
// - Local subscribers hear a change synchronously inside publish(); other replicas hear it when
//   PostgreSQL delivers the NOTIFY (milliseconds), on a dedicated listening connection per process.
// - That connection is watched (errors, its end, a heartbeat with a timeout) and opened again after the
//   database went away; whenever it starts listening, subscribers hear `{ kind: 'all' }`: notifications
//   may have been missed meanwhile, so everything remembered must be read again.
// - On SQLite the feed is local: one process owns the file (a CLI write reaches a server only through
//   the caches' TTLs there).
// - A publish whose NOTIFY fails (the database went away right after the commit) is logged and counted;
//   the other replicas then lose their listening connection too and drop everything when it is back,
//   and every cache's TTL bounds what is left.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../log.ts';

/**
 * One change, with the ids a cache needs to drop narrowly. A subscriber that does not know a kind (or
 * does not want to be narrow) drops everything it remembers of that sort.
 */
export type Change =
  /** A registry: created, renamed, its anonymous-pull settings or hostnames changed, deleted. */
  | { kind: 'registry'; id: number }
  /** A registry's upstream list: an upstream linked, unlinked or moved. */
  | { kind: 'registry_upstreams'; registryId: number }
  /** An upstream: its URL, credentials, token URL or freshness policy changed, or it was deleted. */
  | { kind: 'upstream'; id: number }
  /** The instance's mirror routing table. */
  | { kind: 'mirror_routes' }
  /** A group: renamed (its path is in every canonical name) or deleted. */
  | { kind: 'group'; id: number }
  /** A user's membership of a group: added, its role changed, removed. */
  | { kind: 'membership'; groupId: number; userId: number }
  /** An access token: revoked or deleted. */
  | { kind: 'token'; id: number }
  /** A user: blocked or unblocked, admin or not, password changed, deleted (its sessions and tokens go with it). */
  | { kind: 'user'; id: number }
  /** A console session ended. */
  | { kind: 'session'; id: number }
  /** Cache entries of these upstreams were marked for destruction (a purge, a deleted entry or upstream). */
  | { kind: 'cache_entries'; upstreamIds: number[] }
  /** Anything may have changed (notifications were missed): drop everything remembered. */
  | { kind: 'all' };

export type ChangeKind = Change['kind'];
export type ChangeListener = (change: Change) => void;

export interface ChangeFeedStats {
  /** NOTIFYs sent to the other replicas (one per publish). */
  sent: number;
  /** NOTIFYs that could not be sent (the database went away after the commit). */
  sendFailures: number;
  /** Notifications received from other replicas (or processes, such as the CLI). */
  received: number;
  /** Times the listening connection started listening (1 + reconnections). */
  listens: number;
  /** True while the listening connection is up (always false on SQLite). */
  listening: boolean;
}

/** The transport to other processes: sends one payload, and delivers the others' payloads. */
export interface ChangeTransport {
  send(payload: string): Promise<void>;
  /** Starts delivering other processes' payloads; `onListening` runs whenever listening (re)starts. */
  listen(onPayload: (payload: string) => void, onListening: () => void): void;
  readonly listening: boolean;
  close(): Promise<void>;
}

/** PostgreSQL limits a NOTIFY payload to 8000 bytes; a larger batch is sent as "everything changed". */
const MAX_PAYLOAD_BYTES = 7_900;
const KINDS: ReadonlySet<string> = new Set<ChangeKind>(['registry', 'registry_upstreams', 'upstream', 'mirror_routes', 'group', 'membership', 'token', 'user', 'session', 'cache_entries', 'all']);

export class ChangeFeed {
  /** Tells this process's notifications from the others' (PostgreSQL delivers them to their sender too). */
  readonly #origin = randomBytes(8).toString('hex');
  readonly #listeners = new Set<ChangeListener>();
  readonly #transport: ChangeTransport | null;
  readonly #logger: Pick<Logger, 'warn' | 'error' | 'info'> | undefined;
  readonly #stats = { sent: 0, sendFailures: 0, received: 0, listens: 0 };

  constructor(options: { transport?: ChangeTransport; logger?: Pick<Logger, 'warn' | 'error' | 'info'> } = {}) {
    this.#transport = options.transport ?? null;
    this.#logger = options.logger;
  }

  /** Hears every change, this process's and (once `listen` ran) the other replicas'. Returns the unsubscribe. */
  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Tells every subscriber of this process now, then the other replicas. Call it after the write's
   * transaction committed. Never rejects: a NOTIFY that fails is logged and counted.
   */
  async publish(...changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    this.#deliver(changes);
    if (!this.#transport) return;
    let payload = JSON.stringify({ origin: this.#origin, changes });
    if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) payload = JSON.stringify({ origin: this.#origin, changes: [{ kind: 'all' }] });
    try {
      await this.#transport.send(payload);
      this.#stats.sent += 1;
    } catch (error) {
      this.#stats.sendFailures += 1;
      this.#logger?.warn({ err: { message: (error as Error).message }, changes: changes.map((c) => c.kind) }, 'a change could not be told to the other replicas; their caches catch up within their TTL');
    }
  }

  /** Starts hearing the other replicas (the server does; one-shot commands such as the CLI only publish). */
  listen(): void {
    this.#transport?.listen(
      (payload) => this.#received(payload),
      () => {
        this.#stats.listens += 1;
        // Whatever happened while nobody listened is unknown: every cache reads again.
        this.#deliver([{ kind: 'all' }]);
      },
    );
  }

  stats(): ChangeFeedStats {
    return { ...this.#stats, listening: this.#transport?.listening ?? false };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    await this.#transport?.close();
  }

  #received(payload: string): void {
    let message: { origin?: unknown; changes?: unknown };
    try {
      message = JSON.parse(payload) as typeof message;
    } catch {
      message = {};
    }
    if (message.origin === this.#origin) return;
    this.#stats.received += 1;
    const changes = Array.isArray(message.changes) ? message.changes : [];
    // A kind this version does not know (a newer replica during an upgrade) or a malformed payload: drop everything.
    const known = changes.length > 0 && changes.every((change) => typeof change === 'object' && change !== null && KINDS.has((change as { kind?: string }).kind ?? ''));
    this.#deliver(known ? changes as Change[] : [{ kind: 'all' }]);
  }

  #deliver(changes: readonly Change[]): void {
    for (const change of changes) {
      for (const listener of this.#listeners) {
        try {
          listener(change);
        } catch (error) {
          // One cache's bug must not keep the change from the others.
          this.#logger?.error({ err: error, change }, 'a change subscriber failed');
        }
      }
    }
  }
}

export interface PostgresTransportOptions {
  url: string;
  searchPath?: string;
  connectTimeoutMs: number;
  logger?: Pick<Logger, 'warn' | 'info'>;
  /** How often the listening connection is asked whether it is alive (a peer may vanish silently). */
  heartbeatMs?: number;
  /** The first wait before reconnecting; it doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /**
   * Sends through the pool the services use (one round trip, no connection of its own):
   * `select pg_notify(<channel>, <payload>)` with the channel computed from the current schema.
   */
  query: (text: string, values: unknown[]) => Promise<unknown>;
}

/**
 * The channel of one Manifold installation: replicas on one schema share it, tests on other schemas
 * of the same database do not hear each other. A NOTIFY channel is at most 63 bytes.
 */
const CHANNEL_SQL = "left('manifold_changes:' || current_schema(), 63)";
const HEARTBEAT_MS = 5_000;
const POOL_RETRY_MS = 100;

/** LISTEN/NOTIFY on PostgreSQL: NOTIFY through the pool, LISTEN on a dedicated connection that comes back. */
export class PostgresChangeTransport implements ChangeTransport {
  readonly #options: PostgresTransportOptions;
  #client: pg.Client | null = null;
  #listening = false;
  #closed = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #failures = 0;
  #onPayload: ((payload: string) => void) | null = null;
  #onListening: (() => void) | null = null;

  constructor(options: PostgresTransportOptions) {
    this.#options = options;
  }

  get listening(): boolean {
    return this.#listening;
  }

  async send(payload: string): Promise<void> {
    await this.#options.query(`select pg_notify(${CHANNEL_SQL}, $1)`, [payload]);
  }

  listen(onPayload: (payload: string) => void, onListening: () => void): void {
    if (this.#onPayload) return;
    this.#onPayload = onPayload;
    this.#onListening = onListening;
    void this.#connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    const client = this.#client;
    this.#client = null;
    this.#listening = false;
    await client?.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    this.#retryTimer = null;
    if (this.#closed) return;
    const { url, searchPath, connectTimeoutMs } = this.#options;
    const heartbeatMs = this.#options.heartbeatMs ?? HEARTBEAT_MS;
    const client = new pg.Client({
      connectionString: url,
      options: searchPath ? `-c search_path=${searchPath}` : undefined,
      connectionTimeoutMillis: connectTimeoutMs,
      // A server that stops answering (frozen, a dead peer) fails the heartbeat instead of hanging it;
      // generous, so that a loaded machine's slow answer is not taken for a lost connection.
      query_timeout: 2 * heartbeatMs,
      keepAlive: true,
    });
    this.#client = client;
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost || this.#closed) return;
      lost = true;
      this.#lostConnection(client, error);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (message) => {
      if (message.payload !== undefined) this.#onPayload?.(message.payload);
    });
    try {
      await client.connect();
      const { rows } = await client.query<{ channel: string }>(`select ${CHANNEL_SQL} as channel`);
      await client.query(`listen ${pg.escapeIdentifier(rows[0].channel)}`);
    } catch (error) {
      onLost(error as Error);
      return;
    }
    if (this.#closed || lost) return;
    this.#heartbeat = setInterval(() => {
      client.query('select 1').catch((error: Error) => onLost(error));
    }, heartbeatMs);
    this.#heartbeat.unref();
    // Caches are told to drop everything only once the services can read again: right after a restart
    // the pool may count the database as down a moment longer, and until then what the caches remember
    // is what serves cached content (notifications heard meanwhile are delivered as they come).
    while (!(await this.#poolAnswers())) {
      await new Promise((resolve) => setTimeout(resolve, POOL_RETRY_MS));
      if (this.#closed || lost) return;
    }
    if (this.#failures > 0) this.#options.logger?.info({}, 'listening for changes of other replicas again');
    this.#failures = 0;
    this.#listening = true;
    this.#onListening?.();
  }

  async #poolAnswers(): Promise<boolean> {
    try {
      await this.#options.query('select 1', []);
      return true;
    } catch {
      return false;
    }
  }

  #lostConnection(client: pg.Client, error: Error | undefined): void {
    const wasListening = this.#listening;
    this.#listening = false;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    if (this.#client === client) this.#client = null;
    // The socket may still be open (a heartbeat that timed out): close it, whatever it says.
    client.removeAllListeners('notification');
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (wasListening || this.#failures === 0) {
      this.#options.logger?.warn({ err: error === undefined ? undefined : { code: (error as { code?: unknown }).code, message: error.message } }, 'the connection listening for changes of other replicas is lost; reconnecting');
    }
    const retryMs = this.#options.retryMs ?? 250;
    const delay = Math.min(this.#options.maxRetryMs ?? 5_000, retryMs * 2 ** Math.min(this.#failures, 10));
    this.#failures += 1;
    if (this.#closed) return;
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
    this.#retryTimer.unref();
  }
}
