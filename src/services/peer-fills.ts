// The follower side of cluster-wide single flight (README "Running several replicas"): a blob whose
// fill another replica owns is streamed from that replica's peer listener (http/peer-routes.ts), which
// serves it from its own fill's follower. So the bytes come with the owner's guarantee: the end of the
// stream is held back until the owner verified the blob, and a fill that fails or an owner that dies
// breaks the transfer (the response here is then destroyed too), never a complete-looking wrong one.
import type { Readable } from 'node:stream';
import { Agent } from '../upstream/undici.ts';
import { signPeerRequest } from '../auth/peer-signature.ts';
import type { Metrics } from '../metrics.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import type { ByteRange, ObjectStore } from '../storage/object-store.ts';
import type { JoinedFill } from './blob-fills.ts';

/** The peer listener's path of a fill in flight, by its single-flight key. */
export const PEER_FILL_PATH = '/cluster/v1/fills';
/** Headers of the peer listener's answer: the object's digest, and its size (empty while unknown). */
export const PEER_DIGEST_HEADER = 'manifold-digest';
export const PEER_SIZE_HEADER = 'manifold-size';

export type PeerJoin =
  | { kind: 'joined'; fill: JoinedFill }
  /** The owner has no fill of this key in flight (any more): it committed or failed; look again. */
  | { kind: 'gone' }
  /** The owner did not answer: it died (its lease expires) or cannot be reached. */
  | { kind: 'unreachable'; cause: string };

export class PeerFills {
  readonly #secret: string;
  readonly #store: ObjectStore;
  readonly #metrics: Metrics;
  // Headers wait for the owner's upstream to answer (its headers timeout); bodies for its next bytes.
  readonly #agent = new Agent({ connectTimeout: 2_000, headersTimeout: 90_000, bodyTimeout: 90_000, keepAliveTimeout: 4_000 });

  constructor(options: { secret: string; store: ObjectStore; metrics: Metrics }) {
    this.#secret = options.secret;
    this.#store = options.store;
    this.#metrics = options.metrics;
  }

  /** Asks the owner at `url` about its fill of `key`: what it holds, and a way to stream it. */
  async join(url: string, key: string): Promise<PeerJoin> {
    const path = `${PEER_FILL_PATH}?key=${encodeURIComponent(key)}`;
    try {
      const answer = await this.#agent.request({ origin: new URL(url).origin, path, method: 'HEAD', headers: { authorization: signPeerRequest(this.#secret, 'HEAD', path) } });
      await answer.body.dump();
      if (answer.statusCode === 404) return { kind: 'gone' };
      const digest = answer.headers[PEER_DIGEST_HEADER];
      const size = answer.headers[PEER_SIZE_HEADER];
      if (answer.statusCode !== 200 || typeof digest !== 'string' || typeof size !== 'string') return { kind: 'unreachable', cause: `the replica at ${url} answered ${answer.statusCode}` };
      return { kind: 'joined', fill: new PeerFill({ url, path, digest, size: size === '' ? null : Number(size), peers: this }) };
    } catch (error) {
      return { kind: 'unreachable', cause: `the replica at ${url} cannot be reached: ${(error as Error).message}` };
    }
  }

  /** The owner's stream of the fill (or a range of it); the store's object when the fill ended meanwhile. */
  async stream(fill: PeerFill, range: ByteRange | undefined): Promise<Result<Readable>> {
    const headers: Record<string, string> = { authorization: signPeerRequest(this.#secret, 'GET', fill.path) };
    if (range) headers.range = `bytes=${range.start}-${Number.isFinite(range.end) ? range.end : ''}`;
    try {
      const answer = await this.#agent.request({ origin: new URL(fill.url).origin, path: fill.path, method: 'GET', headers });
      if (answer.statusCode === 200 || answer.statusCode === 206) {
        this.#metrics.clusterFillsFollowed.inc({ kind: 'blob' });
        return ok(answer.body);
      }
      await answer.body.dump();
      if (answer.statusCode !== 404) return err('upstream_unavailable', `the replica at ${fill.url} filling ${fill.digest} answered ${answer.statusCode}`);
    } catch (error) {
      return err('upstream_unavailable', `the replica at ${fill.url} filling ${fill.digest} cannot be reached: ${(error as Error).message}`);
    }
    // The owner's fill ended between the two requests: committed (the shared store has it) or failed.
    const stored = await this.#store.read(fill.digest, range);
    return stored ? ok(stored) : err('upstream_unavailable', `the fill of ${fill.digest} on the replica at ${fill.url} failed`);
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** A fill another replica owns, as the requests of this replica see it. */
class PeerFill implements JoinedFill {
  readonly digest: string;
  readonly size: number | null;
  readonly stored = false;
  readonly url: string;
  readonly path: string;
  readonly #peers: PeerFills;

  constructor(options: { url: string; path: string; digest: string; size: number | null; peers: PeerFills }) {
    this.url = options.url;
    this.path = options.path;
    this.digest = options.digest;
    this.size = options.size;
    this.#peers = options.peers;
  }

  attach(range?: ByteRange): Promise<Result<Readable>> {
    return this.#peers.stream(this, range);
  }
}
