// A fake upstream for the end-to-end fault tests: the in-process FakeRegistry, plus per-blob behaviour a
// real registry cannot be made to show on demand: bodies sent slowly (a throttle), held at a byte offset
// until the test releases them (a gate), or bytes that do not match the digest they are served under.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeRegistry } from './fake-registry.ts';
import type { FakeRegistryOptions, RequestContext } from './fake-registry.ts';

export interface Throttle {
  chunkBytes: number;
  intervalMs: number;
}

export interface Gate {
  /** Resolves once the body was sent up to the gate's offset. */
  reached: Promise<void>;
  /** Lets the body go on. */
  release(): void;
}

interface BlobBehaviour {
  throttle?: Throttle;
  /** Sent instead of the blob's bytes (same length or not): a blob that fails verification. */
  wrongBytes?: Buffer;
  gate?: { afterBytes: number; reached: PromiseWithResolvers<void>; released: PromiseWithResolvers<void> };
}

const BLOB_PATH = /^\/v2\/(.+)\/blobs\/([^/]+)$/;

export class SlowRegistry extends FakeRegistry {
  readonly #blobs = new Map<string, Buffer>();
  readonly #behaviour = new Map<string, BlobBehaviour>();
  readonly #holds: { method: string; path: string; reached: PromiseWithResolvers<void>; released: PromiseWithResolvers<void> }[] = [];

  static override async start(options: FakeRegistryOptions = {}): Promise<SlowRegistry> {
    const registry = new SlowRegistry(options);
    await registry.listen();
    return registry;
  }

  override addBlob(repository: string, bytes: Buffer): string {
    const digest = super.addBlob(repository, bytes);
    this.#blobs.set(`${repository}@${digest}`, bytes);
    return digest;
  }

  /** Sends this blob's body `chunkBytes` at a time, one chunk every `intervalMs`. */
  throttle(digest: string, throttle: Throttle): this {
    this.#set(digest, { throttle });
    return this;
  }

  /** Serves `bytes` under this digest (a corrupt upstream) until fix(). */
  corrupt(digest: string, bytes: Buffer): this {
    this.#set(digest, { wrongBytes: bytes });
    return this;
  }

  /** Serves the right bytes again. */
  fix(digest: string): this {
    const behaviour = this.#behaviour.get(digest);
    if (behaviour) delete behaviour.wrongBytes;
    return this;
  }

  /** Holds the next GET of this blob after `afterBytes` bytes until released. */
  gate(digest: string, afterBytes: number): Gate {
    const gate = { afterBytes, reached: Promise.withResolvers<void>(), released: Promise.withResolvers<void>() };
    this.#set(digest, { gate });
    return { reached: gate.reached.promise, release: () => gate.released.resolve() };
  }

  /** Holds the next request with this method and path, before any answer, until released. */
  holdNext(method: string, path: string): Gate {
    const hold = { method, path, reached: Promise.withResolvers<void>(), released: Promise.withResolvers<void>() };
    this.#holds.push(hold);
    return { reached: hold.reached.promise, release: () => hold.released.resolve() };
  }

  #set(digest: string, behaviour: BlobBehaviour): void {
    this.#behaviour.set(digest, { ...this.#behaviour.get(digest), ...behaviour });
  }

  protected override async handle(request: IncomingMessage, response: ServerResponse, context: RequestContext): Promise<void> {
    const held = this.#holds.findIndex((hold) => hold.method === request.method && hold.path === context.url.pathname);
    if (held >= 0) {
      const [hold] = this.#holds.splice(held, 1);
      hold.reached.resolve();
      await hold.released.promise;
    }
    const match = BLOB_PATH.exec(context.url.pathname);
    const behaviour = match ? this.#behaviour.get(match[2]) : undefined;
    const bytes = match ? this.#blobs.get(`${match[1]}@${match[2]}`) : undefined;
    if (!match || !behaviour || !bytes || request.headers.range) return super.handle(request, response, context);
    return this.#sendSlowly(request, response, match[2], bytes, behaviour);
  }

  async #sendSlowly(request: IncomingMessage, response: ServerResponse, digest: string, right: Buffer, behaviour: BlobBehaviour): Promise<void> {
    const body = behaviour.wrongBytes ?? right;
    response.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'docker-content-digest': digest,
      'docker-distribution-api-version': 'registry/2.0',
    });
    if (request.method === 'HEAD') return void response.end();
    const gate = behaviour.gate;
    // A gate holds one GET; later ones run free.
    if (gate) delete behaviour.gate;
    const chunkBytes = behaviour.throttle?.chunkBytes ?? 64 * 1024;
    let sent = 0;
    while (sent < body.length) {
      if (response.destroyed) return;
      let end = Math.min(sent + chunkBytes, body.length);
      if (gate && sent < gate.afterBytes) end = Math.min(end, gate.afterBytes);
      const chunk = body.subarray(sent, end);
      sent = end;
      if (!response.write(chunk)) await untilEither(response, 'drain');
      if (gate && sent === gate.afterBytes) {
        gate.reached.resolve();
        await Promise.race([gate.released.promise, untilEither(response)]);
      }
      if (behaviour.throttle) await this.sleep(behaviour.throttle.intervalMs);
    }
    if (!response.destroyed) response.end();
  }
}

/** Resolves at `event` (if given) or when the response closes, whichever comes first; leaves no listener behind. */
function untilEither(response: ServerResponse, event?: 'drain'): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      if (event) response.off(event, done);
      response.off('close', done);
      resolve();
    };
    if (event) response.once(event, done);
    response.once('close', done);
  });
}
