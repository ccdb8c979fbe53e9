// Other loopback addresses for the mirror tests: a TCP forwarder that makes a server listening on
// 127.0.0.1 reachable on 127.0.0.2 (a "hostname" a registry claims) or reach it from 127.0.0.3 (a client
// outside anonymous_networks), and a trap that counts every connection (a host Manifold must never dial).
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

export interface Forwarder {
  /** `<address>:<port>` clients connect to. */
  host: string;
  port: number;
  close(): Promise<void>;
}

function listen(server: Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve((server.address() as AddressInfo).port));
  });
}

function closeAll(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Listens on `listenAddress` and forwards every connection to 127.0.0.1:`targetPort`, connecting from
 * `fromAddress` (default 127.0.0.1), so the target sees that client address.
 */
export async function forwarder(listenAddress: string, targetPort: number, fromAddress = '127.0.0.1'): Promise<Forwarder> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort, localAddress: fromAddress });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  const port = await listen(server, listenAddress);
  return { host: `${listenAddress}:${port}`, port, close: () => closeAll(server, sockets) };
}

export interface Trap {
  host: string;
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/** A listener that accepts and counts connections and closes them at once. */
export async function trap(): Promise<Trap> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  const port = await listen(server, '127.0.0.1');
  return {
    host: `127.0.0.1:${port}`,
    port,
    get connections() {
      return connections;
    },
    close: () => closeAll(server, sockets),
  };
}
