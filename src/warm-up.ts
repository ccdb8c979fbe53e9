// Start-up work done before `manifold serve` listens (issue 19): a JavaScript runtime compiles each code
// path on its first use, and the first pull after a start paid for it (the first /v2 request, the first
// registry token, undici's HTTP parser, which is WebAssembly compiled on first use). Here those paths run
// once against nothing that matters: a token for nobody, requests answered 401, a loopback listener of
// our own. Nothing is written and no upstream is asked.
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { ANONYMOUS } from './auth/policy.ts';
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
    await upstreamClientPaths();
  } catch (error) {
    manifold.logger.warn({ err: error }, 'the warm-up before listening failed; the first requests will be slower');
  }
  return performance.now() - started;
}

/** undici's parser (compiled once per process) and its request path, against a listener on loopback. */
async function upstreamClientPaths(): Promise<void> {
  const server = createServer((_request, response) => response.end('{}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const response = await request(`http://127.0.0.1:${port}/v2/`, { headers: { accept: 'application/json' } });
    await response.body.text();
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
