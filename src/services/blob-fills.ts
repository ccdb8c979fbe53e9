// Single flight for blob fills (DESIGN §3.2): one upstream fetch per object however many clients ask;
// every client streams from the growing temporary object, none waits for the end. A client that
// disconnects does not stop the fill; with nobody attached it stops after a grace period. A blob the
// storage quota cannot hold (spec.admit) is not stored: each client gets the upstream's stream, checked
// against the digest on its way through (a pass-through). With several replicas (DESIGN §8) the fill is
// claimed through a lease first (fill-leases.ts): the owner fills, the others stream from the owner's
// peer listener (peer-fills.ts).
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import type { ByteRange, ObjectInfo, ObjectStore, ObjectWriter } from '../storage/object-store.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { isDatabaseUnavailable, unavailable } from './database.ts';
import type { FillLeases } from './fill-leases.ts';
import type { PeerFills } from './peer-fills.ts';

/** Several replicas: the fill's lease decides who fetches, the others stream from the owner. */
export interface FillCluster {
  leases: FillLeases;
  peers: PeerFills;
}

/** How often a replica looks again while the owner of a fill cannot be reached (until its lease expires). */
const UNREACHABLE_RETRY_MS = 250;
/** A fill that just ended on its owner: its lease is released a moment later. */
const GONE_RETRY_MS = 50;

export interface BlobSource {
  body: Readable;
  /** From the upstream's Content-Length; null when it sent none. */
  size: number | null;
}

export interface BlobFillSpec {
  /** Who fills what: one fill per key at a time (upstream id + relative path). */
  key: string;
  digest: string;
  /**
   * The object when a fill of this key has already committed (asked inside the single flight, so a
   * caller that looked before that fill's entry existed does not fetch the blob again).
   */
  stored(): Promise<ObjectInfo | null>;
  /** Fetches the body from the upstream; the signal aborts the fetch. */
  open(signal: AbortSignal): Promise<Result<BlobSource>>;
  /** Runs after the object is committed (creates the cache entry). */
  onCommit(info: ObjectInfo): Promise<void>;
  /** Whether storage may take an object of this size; false: a pass-through (default: always). */
  admit?(size: number): boolean;
}

/** A fill joined by a request: what it will hold, and a stream of it for each client. */
export interface JoinedFill {
  readonly digest: string;
  /** Size of the whole object; null while filling from an upstream that sent no length. */
  readonly size: number | null;
  /** True when the object was already stored (no fill ran for this request). */
  readonly stored: boolean;
  /** A stream of the object (or a range of it) for one more client; an error once the fill failed. */
  attach(range?: ByteRange): Promise<Result<Readable>>;
}

/** The error a client's stream ends with when the fill behind it fails: the response must break. */
export class FillFailedError extends Error {
  /** The status Fastify answers with when no byte was sent yet. */
  readonly statusCode = 503;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FillFailedError';
  }
}

/** One fill in flight. */
export class BlobFill implements JoinedFill {
  readonly digest: string;
  readonly size: number | null;
  readonly stored = false;
  /** Settles when the object is committed (and its entry recorded) or the fill failed. */
  readonly done: Promise<Result<ObjectInfo>>;
  #writer: ObjectWriter;
  #store: ObjectStore;
  #attached = 0;
  #committed = false;
  /** The backend holds the object (its entry may not be recorded yet). */
  #objectStored = false;
  #failed: string | null = null;
  #graceTimer: NodeJS.Timeout | null = null;
  #graceMs: number;
  #abort: AbortController;
  #metrics: Metrics;

  /** @param settled runs once the fill committed (and its entry is recorded) or failed, before done settles (releases the lease). */
  constructor(options: { digest: string; source: BlobSource; writer: ObjectWriter; store: ObjectStore; graceMs: number; abort: AbortController; metrics: Metrics; logger: Logger; onCommit(info: ObjectInfo): Promise<void>; settled?: () => Promise<void> }) {
    this.digest = options.digest;
    this.size = options.source.size;
    this.#writer = options.writer;
    this.#store = options.store;
    this.#graceMs = options.graceMs;
    this.#abort = options.abort;
    this.#metrics = options.metrics;
    const settled = options.settled;
    const pumped = this.#pump(options.source, options.onCommit, options.logger);
    this.done = settled ? pumped.then(async (result) => {
      await settled();
      return result;
    }) : pumped;
  }

  async #pump(source: BlobSource, onCommit: (info: ObjectInfo) => Promise<void>, logger: Logger): Promise<Result<ObjectInfo>> {
    try {
      for await (const chunk of source.body) await this.#writer.write(chunk as Buffer);
      if (source.size !== null && this.#writer.bytesWritten !== source.size) {
        throw new Error(`upstream sent ${this.#writer.bytesWritten} of ${source.size} bytes`);
      }
      const verified = await this.#writer.verify(source.size ?? undefined);
      if (!verified.ok) {
        logger.warn({ digest: this.digest, reason: verified.message }, 'upstream blob failed verification; nothing stored');
        this.#metrics.fills.inc({ kind: 'blob', outcome: 'verification_failed' });
        this.#failed = verified.message;
        return err('upstream_unavailable', `the upstream's blob does not match its digest ${this.digest}; not stored`);
      }
      // Clients got their last bytes at the verification; storing the object no longer concerns them.
      const committed = await this.#writer.commit();
      if (!committed.ok) throw new Error(committed.message);
      this.#objectStored = true;
      await onCommit(committed.value);
      this.#committed = true;
      this.#metrics.fills.inc({ kind: 'blob', outcome: 'committed' });
      return committed;
    } catch (error) {
      source.body.destroy();
      await this.#writer.abort(error as Error).catch(() => {});
      const aborted = this.#abort.signal.aborted;
      this.#metrics.fills.inc({ kind: 'blob', outcome: aborted ? 'abandoned' : 'upstream_failed' });
      if (!aborted) logger.warn({ digest: this.digest, err: (error as Error).message }, 'blob fill failed');
      this.#failed = (error as Error).message;
      return err('upstream_unavailable', `fill of ${this.digest} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      this.#clearGrace();
    }
  }

  async attach(range?: ByteRange): Promise<Result<Readable>> {
    if (this.#failed !== null) return err('upstream_unavailable', `fill of ${this.digest} failed: ${this.#failed}`);
    // Once committed, the spool may be gone (a backend that copied it): clients read the store.
    if (this.#objectStored) {
      const stream = await this.#store.read(this.digest, range);
      if (stream) return ok(stream);
    }
    // The follower holds back the end of the client's stream until the bytes are verified.
    const stream = this.#writer.follow(range, (reason) => new FillFailedError(`the fill failed: ${reason.message}`, { cause: reason }));
    // Attached until the client's stream closes.
    this.#attached++;
    this.#metrics.fillFollowers.inc();
    this.#clearGrace();
    stream.once('close', () => {
      this.#attached--;
      this.#metrics.fillFollowers.dec();
      if (this.#attached === 0 && !this.#committed && this.#failed === null) this.#startGrace();
    });
    return ok(stream);
  }

  #startGrace(): void {
    this.#clearGrace();
    this.#graceTimer = setTimeout(() => {
      if (this.#attached === 0) this.#abort.abort(new Error('no client attached within the grace period'));
    }, this.#graceMs);
    this.#graceTimer.unref();
  }

  #clearGrace(): void {
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
  }
}

/** An object another fill already committed: clients read it from the store. */
class StoredBlob implements JoinedFill {
  readonly digest: string;
  readonly size: number;
  readonly stored = true;
  #store: ObjectStore;

  constructor(store: ObjectStore, info: ObjectInfo) {
    this.#store = store;
    this.digest = info.digest;
    this.size = info.size;
  }

  async attach(range?: ByteRange): Promise<Result<Readable>> {
    const stream = await this.#store.read(this.digest, range);
    return stream ? ok(stream) : err('object_not_present', `the object ${this.digest} is no longer stored`);
  }
}

/**
 * A blob streamed from the upstream to one client without being stored. The first client gets the
 * body already opened, a client joining later opens its own. The last chunk is held back until the
 * bytes match the digest, so a client never receives a complete body with the wrong bytes.
 */
class PassThroughBlob implements JoinedFill {
  readonly digest: string;
  readonly size: number;
  readonly stored = false;
  #first: BlobSource | null;
  #open: () => Promise<Result<BlobSource>>;

  constructor(digest: string, source: BlobSource & { size: number }, open: () => Promise<Result<BlobSource>>) {
    this.digest = digest;
    this.size = source.size;
    this.#first = source;
    this.#open = open;
  }

  async attach(range?: ByteRange): Promise<Result<Readable>> {
    let source = this.#first;
    this.#first = null;
    if (!source) {
      const opened = await this.#open();
      if (!opened.ok) return opened;
      source = opened.value;
    }
    const checked = verifiedSlice(this.digest, range);
    source.body.once('error', (error) => checked.destroy(new FillFailedError(`the upstream stream failed: ${error.message}`, { cause: error })));
    checked.once('close', () => source.body.destroy());
    source.body.pipe(checked);
    return ok(checked);
  }
}

/** Passes on the bytes of `range` (all by default), holding back the last chunk until the whole body matches `digest`. */
function verifiedSlice(digest: string, range?: ByteRange): Transform {
  const [algorithm, hex] = digest.split(':');
  const hash = createHash(algorithm);
  let offset = 0;
  let held: Buffer | null = null;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      const start = offset;
      offset += chunk.length;
      const from = range ? Math.max(0, range.start - start) : 0;
      const to = range ? Math.min(chunk.length, range.end - start + 1) : chunk.length;
      if (held) this.push(held);
      held = to > from ? chunk.subarray(from, to) : null;
      done();
    },
    flush(done) {
      if (hash.digest('hex') !== hex) {
        done(new FillFailedError(`the upstream's blob does not match its digest ${digest}`));
        return;
      }
      if (held) this.push(held);
      done();
    },
  });
}

export interface BlobFillsDeps {
  store: ObjectStore;
  metrics: Metrics;
  logger: Logger;
  graceMs: number;
  /** Set with several replicas (PostgreSQL and cluster.advertiseUrl); one process otherwise. */
  cluster?: FillCluster;
}

export class BlobFills {
  #fills = new Map<string, Promise<Result<JoinedFill>>>();
  /** Digests being filled now, and how many fills of each. */
  #filling = new Map<string, number>();
  #deps: BlobFillsDeps;

  constructor(deps: BlobFillsDeps) {
    this.#deps = deps;
  }

  /** True while a fill of this digest is in flight in this process (the destroyer leaves its object alone). */
  filling(digest: string): boolean {
    return this.#filling.has(digest);
  }

  /** This replica's own fill of `key` in flight, for the peer listener; null when it has none (or follows another replica's). */
  async ownFill(key: string): Promise<BlobFill | null> {
    const joined = this.#fills.get(key);
    if (!joined) return null;
    const result = await joined;
    return result.ok && result.value instanceof BlobFill ? result.value : null;
  }

  /** Joins the fill for spec.key, or starts it. */
  join(spec: BlobFillSpec): Promise<Result<JoinedFill>> {
    const existing = this.#fills.get(spec.key);
    if (existing) return existing;
    const started = this.#start(spec);
    // Registered synchronously: every later caller joins this one until it has settled.
    this.#fills.set(spec.key, started);
    void started.then((result) => {
      if (!result.ok || !(result.value instanceof BlobFill)) {
        this.#fills.delete(spec.key);
        return;
      }
      this.#deps.metrics.fillsInFlight.inc();
      this.#filling.set(spec.digest, (this.#filling.get(spec.digest) ?? 0) + 1);
      // Removed only after the entry was recorded (done settles after onCommit): a caller that comes
      // later either finds the entry or, having looked too early, finds it through spec.stored().
      void result.value.done.finally(() => {
        this.#fills.delete(spec.key);
        this.#deps.metrics.fillsInFlight.dec();
        const left = (this.#filling.get(spec.digest) ?? 1) - 1;
        if (left > 0) this.#filling.set(spec.digest, left);
        else this.#filling.delete(spec.digest);
      });
    });
    return started;
  }

  /** Fills in flight now. */
  get size(): number {
    return this.#fills.size;
  }

  /** Waits for every fill in flight to settle (graceful shutdown). */
  async settle(): Promise<void> {
    const fills = await Promise.all(this.#fills.values());
    await Promise.all(fills.map((f) => (f.ok && f.value instanceof BlobFill ? f.value.done : null)));
  }

  async #start(spec: BlobFillSpec): Promise<Result<JoinedFill>> {
    try {
      return await (this.#deps.cluster ? this.#startInCluster(spec, this.#deps.cluster) : this.#fill(spec));
    } catch (error) {
      if (isDatabaseUnavailable(error)) return unavailable(error);
      return err('persistence_error', `cannot look up the cache: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Claims the fill's lease: the owner fills; the others stream from the owner, or, when it cannot be
   * reached, look again until its lease expires and one of them takes the fill over.
   */
  async #startInCluster(spec: BlobFillSpec, cluster: FillCluster): Promise<Result<JoinedFill>> {
    let unreachableSince: number | null = null;
    for (;;) {
      const claim = await cluster.leases.claim(spec.key);
      if (claim.kind === 'owned') {
        let filling: Result<JoinedFill> | null = null;
        try {
          filling = await this.#fill(spec, claim.release);
          return filling;
        } finally {
          // A fill that started releases its lease when it settles (after its entry is recorded).
          if (!filling?.ok || !(filling.value instanceof BlobFill)) await claim.release();
        }
      }
      const joined = await cluster.peers.join(claim.url, spec.key);
      if (joined.kind === 'joined') return ok(joined.fill);
      if (joined.kind === 'gone') {
        unreachableSince = null;
        await sleep(GONE_RETRY_MS);
        continue;
      }
      unreachableSince ??= Date.now();
      // A dead owner's lease expires within leaseExpiryMs; one that lives but cannot be reached keeps renewing it.
      if (Date.now() - unreachableSince > 2 * cluster.leases.expiryMs) {
        return err('upstream_unavailable', `${joined.cause}; it holds the fill of ${spec.digest} (check cluster.advertiseUrl and the peer port)`);
      }
      await sleep(UNREACHABLE_RETRY_MS);
    }
  }

  /** Fills from the upstream (the object may have been committed meanwhile: then it is read from the store). */
  async #fill(spec: BlobFillSpec, settled?: () => Promise<void>): Promise<Result<JoinedFill>> {
    const stored = await spec.stored();
    if (stored) return ok(new StoredBlob(this.#deps.store, stored));
    const abort = new AbortController();
    const source = await spec.open(abort.signal);
    if (!source.ok) return source;
    const size = source.value.size;
    if (size !== null && spec.admit && !spec.admit(size)) {
      this.#deps.metrics.passThroughs.inc({ reason: 'over_quota' });
      this.#deps.metrics.passThroughBytes.inc(size);
      return ok(new PassThroughBlob(spec.digest, { ...source.value, size }, () => spec.open(new AbortController().signal)));
    }
    let writer: ObjectWriter;
    try {
      writer = await this.#deps.store.createWriter(spec.digest);
    } catch (error) {
      source.value.body.destroy();
      return err('persistence_error', `cannot write to storage: ${(error as Error).message}`, { cause: error });
    }
    source.value.body.once('error', () => {});
    abort.signal.addEventListener('abort', () => source.value.body.destroy(abort.signal.reason as Error), { once: true });
    return ok(new BlobFill({ digest: spec.digest, source: source.value, writer, store: this.#deps.store, graceMs: this.#deps.graceMs, abort, metrics: this.#deps.metrics, logger: this.#deps.logger, onCommit: spec.onCommit, settled }));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
