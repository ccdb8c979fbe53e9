// The PostgreSQL connection pool as Kysely sees it, made to survive the database going away:
// - every client and the pool have an 'error' listener (a terminated backend, a restart, a failover
//   are logged, the broken client is dropped, the process goes on);
// - connects and statements have timeouts, the statement one twice (server side, and client side for
//   a server that no longer answers at all, e.g. frozen);
// - errors of unavailability become DatabaseUnavailableError (see unavailable.ts);
// - an outage, once seen, makes every query fail at once instead of each waiting for its timeout,
//   until a probe on a connection of its own answers again: then everything works as before.
import pg from 'pg';
import { PeriodicTask } from '../lib/periodic-task.ts';
import { SingleFlight } from '../lib/single-flight.ts';
import type { Logger } from '../log.ts';
import { DatabaseUnavailableError, classifyDatabaseError, isDatabaseUnavailable } from './unavailable.ts';

export interface PostgresPoolOptions {
  url: string;
  poolSize: number;
  searchPath?: string;
  connectTimeoutMs: number;
  /** 0: none (migrations). */
  statementTimeoutMs: number;
  logger?: Pick<Logger, 'warn' | 'info' | 'error'>;
}

/** A query still running after this long makes the pool ask whether the server is frozen. */
const SLOW_QUERY_MS = 1_500;
/** How long the probe's `select 1` may take before the server counts as unavailable. */
export const PROBE_TIMEOUT_MS = 900;
const PROBE_INTERVAL_MS = 500;

// bigint ids, times and sizes fit in a double (2^53); services see plain numbers on both databases.
const TYPES = { getTypeParser: (oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) } as pg.CustomTypesConfig;

interface Tracked {
  client: pg.PoolClient;
  /** When the running query started, or null between queries. */
  busySince: number | null;
  broken: boolean;
}

/** What Kysely's PostgresDialect uses of a pool: connect() → a client with query() and release(). */
export class GuardedPool {
  readonly #pool: pg.Pool;
  readonly #options: PostgresPoolOptions;
  readonly #checkedOut = new Set<Tracked>();
  #down = false;
  #probing: Promise<void> | null = null;
  readonly #probes = new SingleFlight<boolean>();
  #checking = false;
  #probeClient: pg.Client | null = null;
  readonly #watchdog: PeriodicTask<void>;
  #ended = false;

  constructor(options: PostgresPoolOptions) {
    this.#options = options;
    this.#pool = new pg.Pool(clientConfig(options, options.poolSize));
    // An idle client whose backend ended (pg_terminate_backend, restart): pg-pool drops it; without
    // this listener the 'error' event would end the process.
    this.#pool.on('error', (error) => this.#options.logger?.warn({ err: describe(error) }, 'an idle database connection failed; it is replaced'));
    // pg-pool takes its idle listener off a client before handing it out, and pg can emit an error before
    // the caller (connect() below) adds its own: a terminated backend's goodbye in the same packet as the
    // end of the start-up. This listener, on every client from its first connect, keeps that from ending
    // the process; the client's next query fails as unavailable.
    this.#pool.on('connect', (client) => client.on('error', () => undefined));
    this.#watchdog = new PeriodicTask({ name: 'slow query watchdog', intervalMs: SLOW_QUERY_MS / 3, logger: options.logger, run: async () => this.#checkSlowQueries() });
    this.#watchdog.start();
  }

  /** False while an outage is known (queries fail at once then). */
  get available(): boolean {
    return !this.#down;
  }

  async connect(): Promise<GuardedClient> {
    if (this.#down) throw new DatabaseUnavailableError('outage in progress', null);
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.#failed(error);
    }
    const tracked: Tracked = { client, busySince: null, broken: false };
    // Between queries of a checked-out client nobody listens for its errors: this one does.
    const onError = (error: Error) => {
      tracked.broken = true;
      this.#options.logger?.warn({ err: describe(error) }, 'a database connection in use failed');
    };
    client.on('error', onError);
    this.#checkedOut.add(tracked);
    return {
      query: async (text: string, values?: unknown[]) => {
        tracked.busySince = Date.now();
        try {
          return await client.query(text, values);
        } catch (error) {
          if (isDatabaseUnavailable(error)) tracked.broken = true;
          throw this.#failed(error);
        } finally {
          tracked.busySince = null;
        }
      },
      release: (destroy?: boolean) => {
        this.#checkedOut.delete(tracked);
        client.removeListener('error', onError);
        // A client that saw its connection fail (or a query time out unanswered) is not reused.
        client.release(destroy || tracked.broken ? true : undefined);
      },
    };
  }

  /** `select 1` on the probe's own connection within PROBE_TIMEOUT_MS (a busy pool does not delay it). */
  async ping(): Promise<boolean> {
    if (this.#down) return false;
    const answered = await this.#probe();
    if (!answered) this.#markDown('no answer to a probe');
    return answered;
  }

  async end(): Promise<void> {
    this.#ended = true;
    void this.#watchdog.stop();
    await this.#probing;
    await this.#closeProbeClient();
    await this.#pool.end();
  }

  #failed(error: unknown): unknown {
    const classified = classifyDatabaseError(error);
    if (classified instanceof DatabaseUnavailableError && classified.kind !== 'statement timeout') this.#markDown(classified.kind, error);
    return classified;
  }

  #markDown(kind: string, error?: unknown): void {
    if (this.#down || this.#ended) return;
    this.#down = true;
    this.#options.logger?.warn({ kind, err: error === undefined ? undefined : describe(error) }, 'the database is unavailable; probing until it answers');
    // Queries stuck on a server that stopped answering fail now rather than at their timeout.
    for (const tracked of this.#checkedOut) {
      if (tracked.busySince !== null) {
        tracked.broken = true;
        streamOf(tracked.client)?.destroy();
      }
    }
    this.#probing = this.#probeUntilUp();
  }

  async #probeUntilUp(): Promise<void> {
    while (!this.#ended) {
      if (await this.#probe()) {
        this.#down = false;
        this.#probing = null;
        this.#options.logger?.info({}, 'the database answers again');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS).unref());
    }
  }

  /** One probe at a time: concurrent callers share its answer. */
  #probe(): Promise<boolean> {
    return this.#probes.run('probe', () => this.#probeOnce());
  }

  async #probeOnce(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
    });
    // A probe connection that was cut (pg_terminate_backend, a restart) gets one fresh try.
    const attempt = (async () => {
      for (let tries = 0; tries < 2 && !this.#ended; tries++) {
        try {
          if (!this.#probeClient) {
            const client = new pg.Client({ ...clientConfig(this.#options, 1), connectionTimeoutMillis: PROBE_TIMEOUT_MS });
            client.on('error', () => undefined);
            this.#probeClient = client;
            await client.connect();
          }
          await this.#probeClient.query('select 1');
          return true;
        } catch {
          await this.#closeProbeClient();
        }
      }
      return false;
    })();
    const answered = await Promise.race([attempt, deadline]);
    clearTimeout(timer);
    if (!answered) await this.#closeProbeClient();
    return answered;
  }

  async #closeProbeClient(): Promise<void> {
    const client = this.#probeClient;
    this.#probeClient = null;
    if (!client) return;
    // A frozen server would never answer the goodbye: drop the socket.
    streamOf(client)?.destroy();
    await client.end().catch(() => undefined);
  }

  /** A query running for long on a healthy server is fine; on a frozen one the probe says so. */
  #checkSlowQueries(): void {
    if (this.#down || this.#checking) return;
    const now = Date.now();
    const slow = [...this.#checkedOut].some((tracked) => tracked.busySince !== null && now - tracked.busySince > SLOW_QUERY_MS);
    if (!slow) return;
    this.#checking = true;
    void this.ping().finally(() => {
      this.#checking = false;
    });
  }
}

export interface GuardedClient {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
  release(destroy?: boolean): void;
}

function clientConfig(options: PostgresPoolOptions, max: number): pg.PoolConfig {
  const settings: string[] = [];
  if (options.searchPath) settings.push(`-c search_path=${options.searchPath}`);
  return {
    connectionString: options.url,
    max,
    options: settings.length > 0 ? settings.join(' ') : undefined,
    connectionTimeoutMillis: options.connectTimeoutMs,
    // Server side: a statement running too long is cancelled (57014).
    statement_timeout: options.statementTimeoutMs > 0 ? options.statementTimeoutMs : undefined,
    // Client side, a little later: a server that does not answer at all (frozen, a dead peer).
    query_timeout: options.statementTimeoutMs > 0 ? options.statementTimeoutMs + 1_000 : undefined,
    keepAlive: true,
    types: TYPES,
  };
}

/** An error for the log: its code and message (a pg error's message may name the host; logs may). */
function describe(error: unknown): { code?: unknown; message: string } {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return { code, message: typeof message === 'string' ? message : String(error) };
}

/** The client's socket (not in pg's public types). */
function streamOf(client: pg.Client | pg.PoolClient): { destroy(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
}
