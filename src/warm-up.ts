// Start-up work done before `manifold serve` listens (issue 19): a JavaScript runtime compiles each code
// path on its first use, and the first pull after a start paid for it (the first /v2 request, the first
// registry token, undici's HTTP parser, which is WebAssembly compiled on first use, the blob fill's
// streaming). Here those paths run once against nothing that matters: a token for nobody, requests
// answered 401, a loopback listener of our own, a fill whose bytes fail verification. Nothing is written
// (the fill's temporary file is removed) and no upstream is asked.
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ANONYMOUS } from './auth/policy.ts';
import { createLogger } from './log.ts';
import { createMetrics } from './metrics.ts';
import { ok } from './result.ts';
import { BlobFills } from './services/blob-fills.ts';
import { dropSpareBuffers } from './storage/object-stream.ts';
import { Agent } from './upstream/undici.ts';
import type { Manifold } from './server.ts';

// Not an ES import: importing node:http evaluates its lazy WebSocket getters, which load Node's bundled
// fetch (undici, about 8 MB resident) that nothing here uses (issue 19).
const { createServer } = process.getBuiltinModule('node:http');

/** Runs the warm-up; returns how long it took (ms). Failures are logged and do not stop the start. */
export async function warmUp(manifold: Manifold): Promise<number> {
  const started = performance.now();
  try {
    const { app, services } = manifold;
    // Registry tokens: signing and verifying (jose, the key's WebCrypto import).
    const issued = await services.registryTokens.issue(ANONYMOUS, []);
    await services.registryTokens.verify(issued.token);
    // The /v2 handler: routing, authentication, mirror routing, error bodies, the request log line.
    await app.inject({ method: 'GET', url: '/v2/' });
    await app.inject({ method: 'GET', url: '/v2/warm-up/warm-up/image/manifests/latest', headers: { authorization: `Bearer ${issued.token}` } });
    await withLoopbackListener(async (origin) => {
      const agent = new Agent();
      try {
        await upstreamClientPaths(agent, origin);
        await blobFillPath(agent, origin, manifold);
      } finally {
        await agent.close();
        // The fill's copy buffers are not kept for reuse: a server that never fills a blob should not
        // hold them (1 MiB of an idle server).
        dropSpareBuffers();
      }
    });
  } catch (error) {
    manifold.logger.warn({ err: error }, 'the warm-up before listening failed; the first requests will be slower');
  }
  return performance.now() - started;
}

/**
 * The size of the warm-up's blob: enough chunks for the streaming code to be optimized, as a first layer
 * would. 512 KiB warms the first pull as well as 1 MiB did (bench/first-pull.ts, within its noise), and a
 * 1 MiB fill left ~4 MB more in the C allocator's heap of an idle server (smaps: [heap] 7.6 against 4.6 MB).
 */
const WARM_UP_BLOB_BYTES = 512 * 1024;

/** A loopback listener answering `/v2/` with `{}` and anything else with WARM_UP_BLOB_BYTES random bytes. */
async function withLoopbackListener(run: (url: string) => Promise<void>): Promise<void> {
  let blob: Buffer | null = randomBytes(WARM_UP_BLOB_BYTES);
  const server = createServer((incoming, response) => {
    if (incoming.url === '/v2/' || !blob) return response.end('{}');
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length });
    response.end(blob);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    // Let go of the bytes now: the listener is kept alive a while by what Node's HTTP module remembers of it.
    blob = null;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** undici's parser (compiled once per process) and its request path. */
async function upstreamClientPaths(agent: Agent, origin: string): Promise<void> {
  const response = await agent.request({ origin, path: '/v2/', method: 'GET', headers: { accept: 'application/json' } });
  await response.body.text();
}

/**
 * The blob fill (services/blob-fills.ts) as a first layer runs it: the upstream's body streamed into the
 * store's writer and out to a follower. The bytes are not those of the digest asked for, so verification
 * fails and the writer removes its temporary file: the store is left as it was. Its own metrics and a
 * silent logger: the failure is the warm-up's, not the server's.
 */
async function blobFillPath(agent: Agent, origin: string, manifold: Manifold): Promise<void> {
  const digest = `sha256:${createHash('sha256').update('manifold warm-up: no such bytes').digest('hex')}`;
  const fills = new BlobFills({ store: manifold.store, metrics: createMetrics({ defaultMetrics: false }), logger: createLogger('silent'), graceMs: 0 });
  const joined = await fills.join({
    key: 'warm-up',
    digest,
    stored: async () => null,
    open: async (signal) => {
      const response = await agent.request({ origin, path: `/v2/warm-up/blobs/${digest}`, method: 'GET', signal });
      return ok({ body: response.body, size: Number(response.headers['content-length']) });
    },
    onCommit: async () => {
      throw new Error('the warm-up fill was committed');
    },
  });
  if (!joined.ok) throw new Error(joined.message);
  const follower = await joined.value.attach();
  if (!follower.ok) throw new Error(follower.message);
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  const failed = await pipeline(follower.value, discard).then(() => false, () => true);
  await fills.settle();
  if (!failed) throw new Error('the warm-up fill was not refused');
}
