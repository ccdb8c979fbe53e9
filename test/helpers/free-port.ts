// A port on 127.0.0.1 that nothing listens on at the time of the call: for a daemon a test starts (which binds
// it a moment later) or for a connection that must be refused. The kernel's next ephemeral port can be one it
// handed out before, to another daemon of this process that has not bound it yet; no port is handed out twice
// here. Another process can still take one in between: startWithFreePorts tries again with new ports.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** Runs `start` (which takes its ports from freePort) again while it fails because an address was in use. */
export async function startWithFreePorts<T>(start: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt >= attempts || !/EADDRINUSE|address already in use/i.test(String((error as Error).message))) throw error;
    }
  }
}
