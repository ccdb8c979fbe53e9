// A reverse proxy in front of a real upstream (Debian's Distribution) that forwards every request as it
// is, and can hold the body of the next GET of one path after a number of bytes until the test lets it
// go: "halfway through a layer" made deterministic while the bytes, headers and access log stay the
// real registry's. A client of the proxy that goes away aborts the request to the upstream.
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Gate } from './slow-registry.ts';

interface PendingGate {
  path: string;
  afterBytes: number;
  reached: PromiseWithResolvers<void>;
  released: PromiseWithResolvers<void>;
}

/** Passes `afterBytes` bytes, then waits for the release before passing the rest. */
function gated(gate: PendingGate): Transform {
  let passed = 0;
  let held = false;
  return new Transform({
    async transform(chunk: Buffer, _encoding, done) {
      if (held || passed + chunk.length < gate.afterBytes) {
        passed += chunk.length;
        return done(null, chunk);
      }
      const head = chunk.subarray(0, gate.afterBytes - passed);
      if (head.length > 0) this.push(head);
      passed += chunk.length;
      held = true;
      gate.reached.resolve();
      await gate.released.promise;
      done(null, chunk.subarray(head.length));
    },
  });
}

export class GatedProxy {
  readonly url: string;
  readonly #server: Server;
  #gates: PendingGate[] = [];
  readonly #taken: PendingGate[] = [];

  private constructor(server: Server) {
    this.#server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(target: string): Promise<GatedProxy> {
    const proxy: { value?: GatedProxy } = {};
    const server = createServer((req, res) => {
      const forwarded = request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const gate = req.method === 'GET' ? proxy.value!.#take(new URL(req.url ?? '/', target).pathname) : null;
        void pipeline(gate ? [answer, gated(gate), res] : [answer, res]).catch(() => {});
      });
      forwarded.on('error', () => res.destroy());
      res.on('close', () => {
        if (!res.writableFinished) forwarded.destroy();
      });
      req.pipe(forwarded);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy.value = new GatedProxy(server);
    return proxy.value;
  }

  /** Holds the body of the next GET of `path` after `afterBytes` bytes, until released. */
  gate(path: string, afterBytes: number): Gate {
    const gate: PendingGate = { path, afterBytes, reached: Promise.withResolvers<void>(), released: Promise.withResolvers<void>() };
    this.#gates.push(gate);
    return { reached: gate.reached.promise, release: () => gate.released.resolve() };
  }

  #take(path: string): PendingGate | null {
    const index = this.#gates.findIndex((gate) => gate.path === path);
    if (index === -1) return null;
    const [gate] = this.#gates.splice(index, 1);
    this.#taken.push(gate);
    return gate;
  }

  async close(): Promise<void> {
    for (const gate of [...this.#gates, ...this.#taken]) gate.released.resolve();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
